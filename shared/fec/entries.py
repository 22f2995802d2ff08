"""Entries (JournalCode, EcritureNum): balance, distinct count and numbering, in bounded memory.

Lines arrive in runs of the same entry. A run's sum (debit - credit, micro-units) is added to its
entry; an entry that is not balanced when its run ends is kept open, since its other lines may come
later (files sorted by account rather than by entry interleave every entry). Distinct entries are
counted by remembering a hash of every key.

Both memories are bounded: past MAX_OPEN open entries or MAX_SEEN hashes, they are moved to a
temporary SQLite file (stdlib, imported only then) where runs of the same entry are summed exactly
(as decimal text, never floats) and the first line kept. A file sorted by entry never gets there;
a file sorted by account is checked as exactly, at disk speed. See docs/fec-validation.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from operator import sub
from typing import Any, overload

from shared.fec.layout import format_micro
from shared.fec.numbering import Grouping, Numbers
from shared.fec.rules import Findings

MAX_OPEN = 25_000  # open entries kept in memory (about 250 bytes each, and up to 20 line numbers)
MAX_SEEN = 200_000  # key hashes kept in memory (about 60 bytes each)
MAX_TAINTED = 10_000  # past this many unreadable entries, no entry's balance is reported
MAX_SERIES = 10_000  # numbering series whose entries are counted as a range of numbers
MAX_JOURNAL_IDS = 256  # journals that can own numbers of a file-wide range (one byte each)
MAX_ENTRY_LINES = 20  # line numbers kept for an open entry (its report lists them; the count is exact)
DIGITS = "0123456789"
SQL_SAFE = 1 << 62  # two integers below this add up inside SQLite's 64 bits; larger ones are summed as text

Key = tuple[str, str]
# An open entry: (debit - credit, first line, debit, line count, its first line numbers), micro-units.
Open = tuple[int, int, int, int, tuple[int, ...]]
NOTHING: tuple[int, ...] = ()


class Runs:
    """Where each run of a batch starts among the batch's booked rows, with the rows' line numbers
    and debits: what the report of an unbalanced entry shows (its debit, its lines). Read only for
    the runs of entries left open, so a balanced batch costs nothing more."""

    __slots__ = ("debits", "numbers", "scale", "starts")

    def __init__(self, numbers: Sequence[int], starts: list[int], debits: Sequence[int], scale: int) -> None:
        self.numbers, self.starts, self.debits, self.scale = numbers, starts, debits, scale

    def add_to(self, debit: int, count: int, lines: tuple[int, ...], run: int) -> tuple[int, int, tuple[int, ...]]:
        """(debit, line count, first line numbers) of an entry, with run `run` (0 to len - 1) added."""
        starts = self.starts
        start = starts[run]
        end = starts[run + 1] if run + 1 < len(starts) else len(self.numbers)
        room = MAX_ENTRY_LINES - len(lines)
        if end - start == 1:  # a file sorted by account: runs of one line
            return (debit + self.debits[start] * self.scale, count + 1,
                    (*lines, self.numbers[start]) if room > 0 else lines)
        kept = lines + tuple(self.numbers[start:min(end, start + room)]) if room > 0 else lines
        return debit + sum(self.debits[start:end]) * self.scale, count + end - start, kept


class Keys(Sequence[Key]):
    """The entry key (JournalCode, EcritureNum) of each run of a batch, kept as columns with the
    numbers already split (Numbers): the batch-wise booking reads the columns, no tuple per entry."""

    __slots__ = ("journals", "numbers")

    def __init__(self, journals: list[str], numbers: Numbers) -> None:
        self.journals = journals
        self.numbers = numbers

    def __len__(self) -> int:
        return len(self.journals)

    @overload
    def __getitem__(self, at: int) -> Key: ...
    @overload
    def __getitem__(self, at: slice) -> list[Key]: ...
    def __getitem__(self, at: int | slice) -> Key | list[Key]:
        if isinstance(at, slice):
            return list(zip(self.journals[at], self.numbers.numbers[at], strict=True))
        return self.journals[at], self.numbers.numbers[at]

    def __iter__(self) -> Iterator[Key]:
        return zip(self.journals, self.numbers.numbers, strict=True)


class _Spill:
    """Open entries and seen keys on disk: a temporary SQLite database, deleted when closed."""

    def __init__(self) -> None:
        import sqlite3  # noqa: PLC0415 - only files that interleave very many entries get here

        self.db = sqlite3.connect("")
        self.db.create_function("add_text", 2, lambda a, b: str(int(a) + int(b)), deterministic=True)
        self.db.executescript(
            "PRAGMA cache_size = -4096; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
            "CREATE TABLE entry (h INTEGER PRIMARY KEY, journal TEXT, num TEXT, total TEXT, line INTEGER,"
            " debit TEXT, count INTEGER, lines TEXT);"
            "CREATE TABLE seen (h INTEGER PRIMARY KEY);"
        )

    def add_open(self, open_entries: dict[Key, Open]) -> None:
        """Add open entries, summed into the rows of their earlier parts. An entry's parts come in the
        order of the file (a part kept in memory starts after its spilled ones), so its line numbers
        are appended until it holds MAX_ENTRY_LINES, and `unbalanced` keeps the first of them."""
        self.db.executemany(
            "INSERT INTO entry VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(h) DO UPDATE SET"  # noqa: S608 - the module's constants
            " total = add_text(total, excluded.total), line = min(line, excluded.line),"
            f" debit = CASE WHEN abs(debit) < {SQL_SAFE} AND abs(excluded.debit) < {SQL_SAFE}"
            " THEN debit + excluded.debit ELSE add_text(debit, excluded.debit) END, count = count + excluded.count,"
            f" lines = CASE WHEN count >= {MAX_ENTRY_LINES} THEN lines ELSE lines || ',' || excluded.lines END",
            ((hash(key), key[0], key[1], str(total), line, debit if -SQL_SAFE < debit < SQL_SAFE else str(debit),
              count, ",".join(map(str, lines)))
             for key, (total, line, debit, count, lines) in open_entries.items()),
        )

    def add_seen(self, hashes: set[int]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", ((h,) for h in hashes))

    def distinct(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM seen").fetchone()[0])

    def unbalanced(self) -> Iterator[tuple[Key, Open]]:
        rows = self.db.execute(
            "SELECT journal, num, total, line, debit, count, lines FROM entry WHERE total != '0' ORDER BY line")
        for journal, number, total, line, debit, count, lines in rows:
            kept = tuple(sorted(map(int, filter(None, lines.split(",")))))[:MAX_ENTRY_LINES]
            yield (journal, number), (int(total), line, int(debit), count, kept)

    def close(self) -> None:
        self.db.close()


def _consecutive(columns: dict[str, Sequence[Any]], values: list[int]) -> list[tuple[Any, int, int]] | None:
    """(key, first, last) for each key (the columns' values, as a tuple) if, in file order, each of
    its values is the previous one + 1; else None."""
    ends = []
    previous = None
    for key, first, last in Grouping(columns, values).runs(tuple(columns)):
        if key == previous:  # a key's runs come one after the other: a second one is a break
            return None
        ends.append((key, values[first], values[last]))
        previous = key
    return ends


def _series_ends(keys: Keys, first: int, widths: list[int], values: list[int]) -> list[tuple[Any, int, int]] | None:
    """_consecutive for the new entries keys[first:] (widths and values are theirs), keyed by
    (journal, prefix, digit count), read from the numbering's grouping of the whole batch by
    (journal, prefix), split where the digit count changes. The entry carried from the last batch,
    if any, is the first of its series: its run, less itself, is still one."""
    grouping = keys.numbers.grouping
    if grouping is None:
        columns = {"journal": keys.journals[first:], "prefix": keys.numbers.prefixes[first:], "width": widths}
        return _consecutive(columns, values)
    grouping.add("width", [len(keys.numbers.digits[0]), *widths] if first else widths)
    numbers = grouping.values
    ends = []
    seen = set()
    for key, start, end in grouping.runs(("journal", "prefix"), ("width",)):
        if start < first and start == end:
            continue  # the carried entry alone: its series' new entries are the next run
        if key in seen:
            return None
        ends.append((key, numbers[start] + 1 if start < first else numbers[start], numbers[end]))
        seen.add(key)
    return ends


class EntryBook:
    """Books runs of lines into entries; reports unbalanced entries and counts distinct ones.

    Distinct entries are counted in one of three places, each entry in one only: a range of
    numbers of its journal's series (journal, prefix, digit count), a range of the file-wide series
    (prefix, digit count) with the journal of each number (a file numbered over the file, journals
    interleaved), or the hashes. A range grows only by its next number, and only above every number
    of its series held elsewhere, so no entry is counted twice. Numbering continuity is judged
    apart (fec_numbering), on the numbers alone."""

    def __init__(self, findings: Findings) -> None:
        self.findings = findings
        self.open: dict[Key, Open] = {}
        self.seen: set[int] = set()  # hashes of the entries no range holds
        self.series: dict[tuple[str, str, int], list[int]] = {}  # (journal, prefix, digits): [low, high, top]
        self.wide: dict[tuple[str, int], list[Any]] = {}  # (prefix, digits): [low, high, journal ids]
        self.wide_top: dict[tuple[str, int], int] = {}  # (prefix, digits): highest number held elsewhere
        self.journal_ids: dict[str, int] = {}
        self.spill: _Spill | None = None
        self.key: Key | None = None
        self.sum = 0
        self.line = 0
        self.carried: tuple[int, int, tuple[int, ...]] = (0, 0, NOTHING)  # debit, count, lines of `key`
        self.tainted: set[Key] = set()
        self.taint_next = False
        self.balance_unknown = False

    def book_runs(self, keys: Keys, lines: Sequence[int], sums: Iterable[int], runs: Runs) -> None:
        """Add runs of lines: the run starting at `lines[i]` belongs to entry `keys[i]` and sums to
        `sums[i]` (debit - credit, micro-units); `runs` gives each run's debit and line numbers."""
        sums = list(sums)
        if not self._book_in_sequence(keys, lines, sums, runs):
            self._book_each(keys, lines, sums, runs)

    def _book_in_sequence(self, keys: Keys, lines: Sequence[int], sums: list[int], runs: Runs) -> bool:
        """The common batch, booked whole: every entry balanced where its run ends (but the last,
        which may go on in the next batch), none open before, and the entries new and numbered one
        after the other, in each journal or over the file: nothing to report, nothing kept open.
        False when the batch is not that; nothing has changed then."""
        if self.open or self.taint_next or not keys:
            return False
        first = 1 if keys[0] == self.key else 0
        closing = self.sum + sums[0] if first else self.sum  # the entry carried from the last batch
        if first == len(keys):
            self.sum = closing
            self.carried = runs.add_to(*self.carried, 0)
            return True
        if closing or any(sums[first:-1]):
            return False
        numbers = keys.numbers
        digits = numbers.digits[first:]
        if numbers.values is not None:
            values = numbers.values[first:]
        elif "" in digits:
            return False
        else:
            values = list(map(int, digits))
        journals, prefixes, widths = keys.journals[first:], numbers.prefixes[first:], list(map(len, digits))
        if not (self._count_per_journal(keys, first, widths, values)
                or self._count_over_file(journals, prefixes, widths, values)):
            return False
        self.key, self.sum, self.line = keys[-1], sums[-1], lines[-1]
        self.carried = runs.add_to(0, 0, NOTHING, len(keys) - 1)
        return True

    def _count_per_journal(self, keys: Keys, first: int, widths: list[int], values: list[int]) -> bool:
        """Count new entries (keys[first:]) numbered, in each journal's series, one after the other
        from the end of its range; False (nothing counted) if they are not that."""
        bounds = self.series.get((keys.journals[first], keys.numbers.prefixes[first], widths[0]))
        if bounds is None or bounds[1] != values[0] - 1:
            return False  # the first entry does not follow its series: no grouping needed to know
        ends = _series_ends(keys, first, widths, values)
        if ends is None:
            return False
        grown = []
        for key, low, high in ends:
            bounds, wide = self.series.get(key), self.wide.get(key[1:])
            if bounds is None or not (bounds[1] == low - 1 and low > bounds[2]) or (wide and low <= wide[1]):
                return False
            grown.append((bounds, key[1:], high))
        for bounds, wide_key, high in grown:
            bounds[1] = high
            self.wide_top[wide_key] = max(self.wide_top.get(wide_key, -1), high)
        return True

    def _count_over_file(self, journals: Sequence[str], prefixes: list[str], widths: list[int],
                         values: list[int]) -> bool:
        """Count new entries numbered over the file, journals interleaved, one after the other from
        the end of the file-wide range; False (nothing counted) if they are not that."""
        ids = list(map(self.journal_ids.get, journals))
        if None in ids:
            return False
        if prefixes.count(prefixes[0]) != len(prefixes) or widths.count(widths[0]) != len(widths):
            return False  # a new prefix or digit count: run by run
        key = (prefixes[0], widths[0])
        wide = self.wide.get(key)
        if wide is None or values[0] != wide[1] + 1 or values[0] <= self.wide_top.get(key, -1) or any(
                map((1).__ne__, map(sub, values[1:], values[:-1]))):
            return False
        wide[1] = values[-1]
        wide[2] += bytes(ids)  # type: ignore[arg-type]
        return True

    def _book_each(self, keys: Sequence[Key], lines: Sequence[int], sums: list[int], runs: Runs) -> None:
        """Run by run: the hot loop of the uncommon batch, local names only. An entry's debit and
        lines are read (from `runs`) only when it is left open: `at` is its run in this batch."""
        open_entries = self.open
        key, total, first = self.key, self.sum, self.line
        debit, count, kept = self.carried
        at = -1
        for run, (new, line, amount) in enumerate(zip(keys, lines, sums, strict=True)):
            if new != key:
                if total:
                    open_entries[key] = (total, first, *(  # type: ignore[index]
                        runs.add_to(debit, count, kept, at) if at >= 0 else (debit, count, kept)))
                    if len(open_entries) > MAX_OPEN:
                        self._spill().add_open(open_entries)
                        open_entries.clear()
                key = new
                total, first, debit, count, kept = (
                    open_entries.pop(new, (0, line, 0, 0, NOTHING)) if open_entries else (0, line, 0, 0, NOTHING))
                if self.taint_next:
                    self.taint_next = False
                    self.taint(new)
                self._count(*new)
            at = run
            total += amount
        self.key, self.sum, self.line = key, total, first
        self.carried = runs.add_to(debit, count, kept, at) if at >= 0 else (debit, count, kept)

    def _count(self, journal: str, number: str) -> None:
        """An entry starting a run: counted if new, in a range if one can take it, else by hash."""
        prefix = number.rstrip(DIGITS)
        if len(prefix) == len(number):
            self._hash(journal, number)
            return
        value, wide_key = int(number[len(prefix):]), (prefix, len(number) - len(prefix))
        bounds, wide = self.series.get((journal, *wide_key)), self.wide.get(wide_key)  # type: ignore[arg-type]
        ident = self.journal_ids.get(journal)
        if ident is None and len(self.journal_ids) < MAX_JOURNAL_IDS:
            ident = self.journal_ids[journal] = len(self.journal_ids)
        if (bounds is not None and bounds[0] <= value <= bounds[1]) or (
                wide is not None and wide[0] <= value <= wide[1] and wide[2][value - wide[0]] == ident):
            return  # seen
        top = self.wide_top.get(wide_key, -1)
        if bounds is not None and value == bounds[1] + 1 and value > bounds[2] and (wide is None or value > wide[1]):
            bounds[1] = value
        elif ident is not None and wide is not None and value == wide[1] + 1 and value > top:
            wide[1] = value
            wide[2].append(ident)
            return
        elif bounds is None and len(self.series) < MAX_SERIES:
            self.series[(journal, *wide_key)] = [value, value, -1]  # type: ignore[index]
        elif ident is not None and wide is None and value > top:
            self.wide[wide_key] = [value, value, bytearray((ident,))]
            return
        else:
            self._hash(journal, number)
            if bounds is not None:
                bounds[2] = max(bounds[2], value)
        self.wide_top[wide_key] = max(top, value)

    def _hash(self, journal: str, number: str) -> None:
        self.seen.add(hash((journal, number)))
        if len(self.seen) > MAX_SEEN:
            self._spill().add_seen(self.seen)
            self.seen.clear()

    def _spill(self) -> _Spill:
        if self.spill is None:
            self.spill = _Spill()
        return self.spill

    def taint(self, key: Key | None) -> None:
        """An entry with an unreadable line has no knowable balance: its line is reported, not a
        consequence of it. The file's total is then unknowable too."""
        self.balance_unknown = True
        if key is not None and len(self.tainted) <= MAX_TAINTED:
            self.tainted.add(key)

    @property
    def distinct(self) -> int:
        ranged = sum(high - low + 1 for low, high, _ in self.series.values())
        ranged += sum(high - low + 1 for low, high, _ in self.wide.values())
        if self.spill is None:
            return ranged + len(self.seen)
        self.spill.add_seen(self.seen)
        self.seen.clear()
        return ranged + self.spill.distinct()

    def finish(self) -> None:
        """Report every entry left unbalanced, in the order of their first lines."""
        if self.sum:
            self.open[self.key] = (self.sum, self.line, *self.carried)  # type: ignore[index]
        self.sum = 0
        if self.spill is not None:
            self.spill.add_open(self.open)
            self.open.clear()
            unbalanced: Any = self.spill.unbalanced()
        else:
            unbalanced = sorted(self.open.items(), key=lambda item: item[1][1])
        if len(self.tainted) > MAX_TAINTED:
            return
        for (journal, number), (total, line, debit, count, lines) in unbalanced:
            if (journal, number) not in self.tainted:
                self.findings.add("unbalanced_entry", line, column="EcritureNum", value=number, journal=journal,
                                  number=number, debit=format_micro(debit), credit=format_micro(debit - total),
                                  difference=format_micro(total), line_count=count, lines=list(lines))

    def close(self) -> None:
        if self.spill is not None:
            self.spill.close()
