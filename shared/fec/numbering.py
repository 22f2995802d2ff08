"""EcritureNum continuity, judged against the numbering scheme the file follows.

The article A47 A-1 asks for "le numéro sur une séquence continue de l'écriture comptable"; the
BOFiP (BOI-CF-IOR-60-40-20, § 100) adds that the numbering "peut être unique sur l'ensemble du
fichier ou être propre à chaque journal". Files use either, and some restart each year. So every
entry's number (its numeric tail; the text before it names the series: `AC000123`, `2023-000123`)
is booked under four candidate schemes, each a set of series:

- `file`: one sequence per prefix over the whole file;  `journal`: one per journal and prefix;
- `file_year`, `journal_year`: the same, per year of EcritureDate (a numbering restarting in January).

Each series is a set of numbers kept as sorted ranges, so the file's order does not matter (a file
sorted by date or by journal is as continuous as one sorted by number). At the end, a scheme that
gives a number to two entries (its count of distinct numbers is below the finest scheme's) is not
the file's; of the others, the one with the fewest holes, then the fewest series, is chosen, and
each hole in it is one `ecriturenum_gap` naming the numbers on either side. A scheme with more than
MAX_RANGES ranges is dropped as it grows (a file numbered over the file is thousands of holes per
journal): memory stays bounded, and a file no scheme fits (every one dropped) is reported as
`none`, with no gap warnings. See docs/fec-validation.md.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable, Iterable, Iterator, Sequence
from itertools import compress, repeat
from operator import ne, or_, sub
from typing import Any

from shared.fec.rules import Findings

SCHEMES = ("journal", "file", "journal_year", "file_year")  # the order of preference on a tie
YEARLY = {"journal_year": "journal", "file_year": "file"}
MAX_RANGES = 10_000  # ranges a scheme may hold before it is dropped (about 300 bytes each)
DIGITS = "0123456789"
KEYS = {"file": ("prefix",), "journal": ("journal", "prefix"), "file_year": ("year", "prefix"),
        "journal_year": ("year", "journal", "prefix")}  # the columns naming a scheme's series


class Numbers:
    """Each run's EcritureNum split once, for the entry book and the numbering: its prefix (the text
    before its numeric tail), its digits, and their values (None when a number has no digits); and
    the batch grouped by series, which the numbering makes and the entry book reads too."""

    __slots__ = ("digits", "grouping", "numbers", "prefixes", "values")

    def __init__(self, numbers: list[str]) -> None:
        self.numbers = numbers
        self.grouping: Grouping | None = None
        joined = "".join(numbers)
        if joined.isascii() and joined.isdigit():  # numbers without prefix: no per-number strip
            self.prefixes: list[str] = [""] * len(numbers)
            self.digits = numbers
        else:
            self.prefixes = list(map(str.rstrip, numbers, repeat(DIGITS)))
            self.digits = list(map(str.removeprefix, numbers, self.prefixes))
        self.values = None if "" in self.digits else list(map(int, self.digits))


class Grouping:
    """A batch's entries grouped by series, for every scheme at once.

    A scheme's order is a stable sort on one column at a time (no key tuple per entry), built on
    the order of the coarser scheme: sorting the prefix order by journal gives the journal scheme's,
    and when journals do not split any prefix's entries (a prefix per journal, the common case)
    it is the same list, so the ordered numbers and their steps are computed once for both."""

    def __init__(self, columns: dict[str, Sequence[Hashable]], values: list[int]) -> None:
        self.columns = columns
        self.values = values
        self.size = len(values)
        self.varying = {name for name, column in columns.items() if column.count(column[0]) != len(column)}
        self.orders: dict[tuple[str, ...], list[int] | None] = {(): None}  # None: the file's order
        self.steps: dict[int, tuple[list[int], list[bool]]] = {}  # id(order): ordered numbers, breaks
        self.changes: dict[tuple[str, int], list[bool]] = {}
        self.runs_of: dict[tuple[str, ...], list[tuple[Any, int, int]]] = {}

    def add(self, name: str, column: Sequence[Hashable]) -> None:
        self.columns[name] = column
        if column.count(column[0]) != len(column):
            self.varying.add(name)

    def order(self, names: tuple[str, ...]) -> list[int] | None:
        if names in self.orders:
            return self.orders[names]
        base = self.order(names[1:])
        order = base
        if names[0] in self.varying:
            order = sorted(range(self.size) if base is None else base, key=self.columns[names[0]].__getitem__)
            if order == base:
                order = base
        self.orders[names] = order
        return order

    def _breaks(self, order: list[int] | None) -> tuple[list[int], list[bool]]:
        """The numbers in `order`, and where one is not the previous + 1 (every order is kept in
        self.orders, so its id names it)."""
        known = self.steps.get(id(order))
        if known is None:
            ordered = self.values if order is None else list(map(self.values.__getitem__, order))
            known = self.steps[id(order)] = (ordered, list(map((1).__ne__, map(sub, ordered[1:], ordered[:-1]))))
        return known

    def _changes(self, name: str, order: list[int] | None) -> list[bool]:
        """Where column `name` changes, in `order`."""
        known = self.changes.get((name, id(order)))
        if known is None:
            column = self.columns[name]
            ordered = column if order is None else list(map(column.__getitem__, order))
            known = self.changes[name, id(order)] = list(map(ne, ordered[1:], ordered[:-1]))
        return known

    def runs(self, names: tuple[str, ...], split: tuple[str, ...] = ()) -> list[tuple[Any, int, int]]:
        """(series key, first entry, last entry) of each maximal run of consecutive numbers of a
        series, series after series, each in file order; the key is the column's value, or the
        tuple of the columns' values. `split`: more key columns that break runs where they change,
        without ordering them (a key of them may then have runs apart: the caller checks)."""
        known = self.runs_of.get(names + split)
        if known is None:
            known = self.runs_of[names + split] = list(self._runs(names, split))
        return known

    def _runs(self, names: tuple[str, ...], split: tuple[str, ...]) -> Iterator[tuple[Any, int, int]]:
        order = self.order(names)
        _, breaks = self._breaks(order)
        names += split
        for name in names:
            if name in self.varying:
                breaks = list(map(or_, breaks, self._changes(name, order)))
        starts = [0, *compress(range(1, self.size), breaks)]
        ends = [start - 1 for start in starts[1:]]
        ends.append(self.size - 1)
        if order is not None:
            starts, ends = list(map(order.__getitem__, starts)), list(map(order.__getitem__, ends))
        columns = [map(self.columns[name].__getitem__, starts) for name in names]
        keys = columns[0] if len(columns) == 1 else zip(*columns, strict=True)
        return zip(keys, starts, ends, strict=True)


class Ranges:
    """A set of integers as sorted disjoint ranges, with the text and first line of each low end
    and the text of each high end (what a gap warning names)."""

    __slots__ = ("high_texts", "highs", "low_lines", "low_texts", "lows")

    def __init__(self) -> None:
        self.lows: list[int] = []
        self.highs: list[int] = []
        self.low_texts: list[str] = []
        self.low_lines: list[int] = []
        self.high_texts: list[str] = []

    def copy(self) -> Ranges:
        other = Ranges()
        for name in self.__slots__:
            setattr(other, name, list(getattr(self, name)))
        return other

    def add(self, low: int, high: int, low_text: str, line: int, high_text: str) -> int:
        """Add the numbers low..high; return the change in the number of ranges."""
        lows, highs = self.lows, self.highs
        at = bisect_right(lows, low) - 1
        added = 0
        if at >= 0 and highs[at] >= low - 1:
            if high <= highs[at]:
                return 0
            highs[at], self.high_texts[at] = high, high_text
        else:
            at += 1
            lows.insert(at, low)
            highs.insert(at, high)
            self.low_texts.insert(at, low_text)
            self.low_lines.insert(at, line)
            self.high_texts.insert(at, high_text)
            added = 1
        end = at + 1
        while end < len(lows) and lows[end] <= highs[at] + 1:
            if highs[end] > highs[at]:
                highs[at], self.high_texts[at] = highs[end], self.high_texts[end]
            end += 1
        if end > at + 1:
            for column in (lows, highs, self.low_texts, self.low_lines, self.high_texts):
                del column[at + 1:end]
        return added - (end - at - 1)

    @property
    def total(self) -> int:
        return sum(self.highs) - sum(self.lows) + len(self.lows)

    def holes(self) -> list[tuple[int, str, str, int]]:
        """(line, number after the hole, number before it, numbers missing) for each hole."""
        lows, highs = self.lows, self.highs
        return [(self.low_lines[at], self.low_texts[at], self.high_texts[at - 1], lows[at] - highs[at - 1] - 1)
                for at in range(1, len(lows))]


class Scheme:
    def __init__(self, name: str) -> None:
        self.name = name
        self.series: dict[Any, Ranges] = {}
        self.ranges = 0

    def book(self, runs: Iterable[tuple[Any, int, int]], values: list[int], numbers: Sequence[str],
             lines: Sequence[int]) -> None:
        """Add each run of consecutive numbers of a series (Grouping.runs) as one range."""
        series = self.series
        for key, first, last in runs:
            ranges = series.get(key)
            if ranges is None:
                ranges = series[key] = Ranges()
            self.ranges += ranges.add(values[first], values[last], numbers[first], lines[first], numbers[last])

    @property
    def total(self) -> int:
        return sum(ranges.total for ranges in self.series.values())

    @property
    def gaps(self) -> int:
        return self.ranges - len(self.series)


class Numbering:
    """Books every entry's number under each candidate scheme; decides the file's at the end."""

    def __init__(self) -> None:
        self.schemes = {name: Scheme(name) for name in SCHEMES if name not in YEARLY}
        self.dropped: set[str] = set()
        self.year: str | None = None  # the only year seen so far; None once there are two
        self.unnumbered = 0

    def book(self, journals: Sequence[str], numbers: Numbers, days: Sequence[str | None],
             lines: Sequence[int]) -> None:
        """Entries starting a run: JournalCode, EcritureNum, EcritureDate (None if unreadable), line."""
        texts, prefixes, values = numbers.numbers, numbers.prefixes, numbers.values
        if values is None:  # numbers without digits are not judged
            kept = list(map(bool, numbers.digits))
            self.unnumbered += kept.count(False)
            journals, texts, lines, prefixes, days = (
                list(compress(column, kept)) for column in (journals, texts, lines, prefixes, days))
            if not texts:
                return
            values = list(map(int, compress(numbers.digits, kept)))
        years = self._years(days)
        self._split_years(years)
        columns: dict[str, Sequence[Hashable]] = {"prefix": prefixes, "journal": journals}
        if self.year is None and years is not None:  # None: no yearly scheme is left
            columns["year"] = years
        grouping = Grouping(columns, values)
        if numbers.values is not None:
            numbers.grouping = grouping
        for name, scheme in list(self.schemes.items()):
            scheme.book(grouping.runs(KEYS[name]), values, texts, lines)
            if scheme.ranges > MAX_RANGES:
                del self.schemes[name]
                self.dropped.add(name)

    def _years(self, days: Sequence[str | None]) -> list[str] | None:
        """The year of each entry ("" if its date is unreadable); None when every one is in the one
        year of the file so far, or no yearly scheme is left (the common case: no list is built)."""
        if self.year is None and self.dropped >= YEARLY.keys():
            return None
        if self.year is not None and None not in days and min(days)[:4] == self.year == max(days)[:4]:  # type: ignore[index, type-var]
            return None
        return ["" if day is None else day[:4] for day in days]

    def _split_years(self, years: list[str] | None) -> None:
        """While the file has one year, the yearly schemes are the others; at the second year they
        start as copies of them, their series keyed by that first year."""
        if years is None or (self.year is None and (self.schemes.keys() & YEARLY or self.dropped & YEARLY.keys())):
            return
        first = self.year if self.year is not None else years[0]
        if years.count(first) == len(years):
            self.year = first
            return
        for yearly, base in YEARLY.items():
            scheme = self.schemes.get(base)
            if scheme is None:
                self.dropped.add(yearly)
                continue
            copy = self.schemes[yearly] = Scheme(yearly)
            copy.series = {(first, *(key if isinstance(key, tuple) else (key,))): ranges.copy()
                           for key, ranges in scheme.series.items()}
            copy.ranges = scheme.ranges
        self.year = None

    def _chosen(self) -> Scheme | None:
        if not self.schemes:
            return None
        reference = max(scheme.total for scheme in self.schemes.values())
        followed = [scheme for scheme in self.schemes.values() if scheme.total == reference]
        return min(followed, key=lambda scheme: (scheme.gaps, len(scheme.series), SCHEMES.index(scheme.name)))

    def finish(self, findings: Findings) -> dict[str, Any]:
        """Report each hole of the chosen scheme, in line order; return the summary of the decision."""
        chosen = self._chosen()
        if chosen is not None:
            holes = [(hole, key) for key, ranges in chosen.series.items() for hole in ranges.holes()]
            for (line, number, previous, missing), key in sorted(holes, key=lambda item: item[0][0]):
                findings.add("ecriturenum_gap", line, column="EcritureNum", value=number, previous=previous,
                             sequence=_sequence(chosen.name, key), missing=missing)
        reference = max((scheme.total for scheme in self.schemes.values()), default=0)
        schemes = {name: self._scheme(name) for name in SCHEMES}
        return {
            "scheme": chosen.name if chosen is not None else "none",
            "series": len(chosen.series) if chosen is not None else 0,
            "gaps": {name: None if scheme is None else scheme.gaps for name, scheme in schemes.items()},
            "reused": {name: None if scheme is None else reference - scheme.total for name, scheme in schemes.items()},
            "unnumbered_entries": self.unnumbered,
        }

    def _scheme(self, name: str) -> Scheme | None:
        """A scheme, None if dropped; a yearly one never split off (the file has one year) is its base."""
        if name in self.schemes or name in self.dropped:
            return self.schemes.get(name)
        return self.schemes.get(YEARLY[name])


def _sequence(scheme: str, key: Any) -> str:
    """The series a hole is in, for its message: "journal 'AC'", "the file, year 2023", ..."""
    parts = key if isinstance(key, tuple) else (key,)
    year = parts[0] if scheme in YEARLY else None
    parts = parts[1:] if year is not None else parts
    journal = parts[0] if scheme.startswith("journal") else None
    prefix = parts[-1]
    where = f"journal {journal!r}" if journal is not None else "the file"
    return where + (f", prefix {prefix!r}" if prefix else "") + (f", year {year}" if year else "")
