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
from collections.abc import Hashable, Sequence
from itertools import compress, repeat
from operator import ne, or_, sub
from typing import Any

from shared.fec.rules import Findings

SCHEMES = ("journal", "file", "journal_year", "file_year")  # the order of preference on a tie
YEARLY = {"journal_year": "journal", "file_year": "file"}
MAX_RANGES = 10_000  # ranges a scheme may hold before it is dropped (about 300 bytes each)
DIGITS = "0123456789"


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

    def book(self, keys: Sequence[Hashable], values: list[int], numbers: Sequence[str], lines: Sequence[int]) -> None:
        """Book entries (a batch's run starts, in file order): each maximal run of consecutive
        numbers of one series, in the order the file gives them, is added as one range."""
        size = len(values)
        if keys.count(keys[0]) == size:  # one series: the file's order as it is
            order: Sequence[int] = range(size)
            ordered = values
            breaks = map((1).__ne__, map(sub, values[1:], values[:-1]))
        else:
            order = sorted(range(size), key=keys.__getitem__)  # stable: each series in file order
            ordered = list(map(values.__getitem__, order))
            ordered_keys = list(map(keys.__getitem__, order))
            steps = map((1).__ne__, map(sub, ordered[1:], ordered[:-1]))
            breaks = map(or_, steps, map(ne, ordered_keys[1:], ordered_keys[:-1]))
        starts = [0, *compress(range(1, size), breaks)]
        series = self.series
        for start, end in zip(starts, [*starts[1:], size], strict=True):
            first, last = order[start], order[end - 1]
            ranges = series.get(keys[first])
            if ranges is None:
                ranges = series[keys[first]] = Ranges()
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

    def book(self, journals: Sequence[str], numbers: Sequence[str], days: Sequence[str | None],
             lines: Sequence[int]) -> None:
        """Entries starting a run: JournalCode, EcritureNum, EcritureDate (None if unreadable), line."""
        prefixes = list(map(str.rstrip, numbers, repeat(DIGITS)))
        digits = list(map(str.removeprefix, numbers, prefixes))
        years = ["" if day is None else day[:4] for day in days] if None in days else [day[:4] for day in days]  # type: ignore[index]
        if "" in digits:  # numbers without digits are not judged
            kept = list(map(bool, digits))
            self.unnumbered += kept.count(False)
            journals, numbers, lines, prefixes, digits, years = (
                list(compress(column, kept)) for column in (journals, numbers, lines, prefixes, digits, years))
            if not digits:
                return
        self._split_years(years)
        values = list(map(int, digits))
        keys: dict[str, Sequence[Hashable]] = {"file": prefixes, "journal": list(zip(journals, prefixes, strict=True))}
        if self.year is None:
            keys["file_year"] = list(zip(years, prefixes, strict=True))
            keys["journal_year"] = list(zip(years, journals, prefixes, strict=True))
        for name, scheme in list(self.schemes.items()):
            scheme.book(keys[name], values, numbers, lines)
            if scheme.ranges > MAX_RANGES:
                del self.schemes[name]
                self.dropped.add(name)

    def _split_years(self, years: list[str]) -> None:
        """While the file has one year, the yearly schemes are the others; at the second year they
        start as copies of them, their series keyed by that first year."""
        if self.year is None and (self.schemes.keys() & YEARLY or self.dropped & YEARLY.keys()):
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
