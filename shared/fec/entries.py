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
from itertools import compress, repeat
from operator import ne, sub
from typing import Any

from shared.fec.layout import format_micro
from shared.fec.rules import Findings

MAX_OPEN = 25_000  # open entries kept in memory (about 250 bytes each)
MAX_SEEN = 200_000  # key hashes kept in memory (about 60 bytes each)
MAX_TAINTED = 10_000  # past this many unreadable entries, no entry's balance is reported
MAX_JOURNALS = 10_000  # journals whose last EcritureNum is remembered for the sequence check
MAX_SERIES = 10_000  # numbering series whose entries are counted as a range of numbers
DIGITS = "0123456789"

Key = tuple[str, str]


class _Spill:
    """Open entries and seen keys on disk: a temporary SQLite database, deleted when closed."""

    def __init__(self) -> None:
        import sqlite3  # noqa: PLC0415 - only files that interleave very many entries get here

        self.db = sqlite3.connect("")
        self.db.create_function("add_text", 2, lambda a, b: str(int(a) + int(b)), deterministic=True)
        self.db.executescript(
            "PRAGMA cache_size = -4096; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
            "CREATE TABLE entry (h INTEGER PRIMARY KEY, journal TEXT, num TEXT, total TEXT, line INTEGER);"
            "CREATE TABLE seen (h INTEGER PRIMARY KEY);"
        )

    def add_open(self, open_entries: dict[Key, tuple[int, int]]) -> None:
        self.db.executemany(
            "INSERT INTO entry VALUES (?, ?, ?, ?, ?) ON CONFLICT(h) DO UPDATE SET"
            " total = add_text(total, excluded.total), line = min(line, excluded.line)",
            ((hash(key), key[0], key[1], str(total), line) for key, (total, line) in open_entries.items()),
        )

    def add_seen(self, hashes: set[int]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", ((h,) for h in hashes))

    def distinct(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM seen").fetchone()[0])

    def unbalanced(self) -> Iterator[tuple[Key, int, int]]:
        rows = self.db.execute("SELECT journal, num, total, line FROM entry WHERE total != '0' ORDER BY line")
        for journal, number, total, line in rows:
            yield (journal, number), int(total), line

    def close(self) -> None:
        self.db.close()


class EntryBook:
    """Books runs of lines into entries; reports unbalanced entries and breaks in the numbering."""

    def __init__(self, findings: Findings) -> None:
        self.findings = findings
        self.open: dict[Key, tuple[int, int]] = {}
        self.seen: set[int] = set()  # hashes of the entries no series range holds
        self.series: dict[tuple[str, str, int], list[int]] = {}  # (journal, prefix, digits): [low, high, top]
        self.spill: _Spill | None = None
        self.key: Key | None = None
        self.sum = 0
        self.line = 0
        self.last_numbers: dict[str, tuple[str, str, int]] = {}  # journal: (EcritureNum, prefix, number)
        self.tainted: set[Key] = set()
        self.taint_next = False
        self.balance_unknown = False

    def book_runs(self, keys: Sequence[Key], lines: Sequence[int], sums: Iterable[int]) -> None:
        """Add runs of lines: the run starting at `lines[i]` belongs to entry `keys[i]` and sums to
        `sums[i]` (debit - credit, micro-units)."""
        sums = list(sums)
        if not self._book_in_sequence(keys, lines, sums):
            self._book_each(keys, lines, sums)

    def _book_in_sequence(self, keys: Sequence[Key], lines: Sequence[int], sums: list[int]) -> bool:
        """The common batch, booked whole: every entry balanced where its run ends (but the last,
        which may go on in the next batch), none open before, and in each journal the entries
        numbered in sequence after the journal's last one: nothing to report, nothing kept open.
        False when the batch is not that; nothing has changed then."""
        if self.open or self.taint_next or not keys:
            return False
        first = 1 if keys[0] == self.key else 0
        closing = self.sum + sums[0] if first else self.sum  # the entry carried from the last batch
        if first == len(keys):
            self.sum = closing
            return True
        if closing or any(sums[first:-1]):
            return False
        ends = self._journal_ends(*zip(*keys[first:], strict=True))
        if ends is None:
            return False
        for journal, bounds, number, prefix, value in ends:
            bounds[1] = value
            self.last_numbers[journal] = (number, prefix, value)
        self.key, self.sum, self.line = keys[-1], sums[-1], lines[-1]
        return True

    def _journal_ends(self, journals: tuple[str, ...], numbers: tuple[str, ...]) -> list[Any] | None:
        """For entries (all new runs) numbered, in each journal, one after the other from the
        journal's last number, in the series range that ends there: each journal's last entry, to
        extend the range to (what `_number` would do run by run, with nothing to report); else None."""
        prefixes = list(map(str.rstrip, numbers, repeat(DIGITS)))
        digits = list(map(str.removeprefix, numbers, prefixes))
        if "" in digits:
            return None
        values = list(map(int, digits))
        order = sorted(range(len(values)), key=journals.__getitem__)  # stable: each journal's runs in order
        ordered = list(map(values.__getitem__, order))
        steps = list(map(sub, ordered[1:], ordered[:-1]))
        heads = [0]  # where each journal starts in `order`
        for at in compress(range(1, len(order)), map(ne, map(journals.__getitem__, order[1:]),
                                                     map(journals.__getitem__, order[:-1]))):
            heads.append(at)
            steps[at - 1] = 1
        if steps.count(1) != len(steps) or len(set(zip(journals, prefixes, map(len, digits), strict=True))) != len(
                heads):
            return None  # a step other than +1, or a journal with a new prefix or width
        ends = []
        for head, end in zip(heads, [*heads[1:], len(order)], strict=True):
            run, last = order[head], order[end - 1]
            journal, prefix, value = journals[run], prefixes[run], values[run]
            previous = self.last_numbers.get(journal)
            bounds = self.series.get((journal, prefix, len(digits[run])))
            if previous is None or bounds is None or previous[1] != prefix or not (
                    previous[2] == bounds[1] == value - 1 and value > bounds[2]):
                return None
            ends.append((journal, bounds, numbers[last], prefix, values[last]))
        return ends

    def _book_each(self, keys: Sequence[Key], lines: Sequence[int], sums: list[int]) -> None:
        """Run by run: the hot loop of the uncommon batch, local names only."""
        open_entries, last = self.open, self.last_numbers
        key, total, first = self.key, self.sum, self.line
        for new, line, amount in zip(keys, lines, sums, strict=True):
            if new != key:
                if total:
                    open_entries[key] = (total, first)  # type: ignore[index]
                    if len(open_entries) > MAX_OPEN:
                        self._spill().add_open(open_entries)
                        open_entries.clear()
                key = new
                total, first = open_entries.pop(new, (0, line)) if open_entries else (0, line)
                if self.taint_next:
                    self.taint_next = False
                    self.taint(new)
                journal, number = new
                previous = last.get(journal)
                if previous is None or previous[0] != number:  # else the journal's last entry, back again
                    self._number(journal, number, previous, line)
            total += amount
        self.key, self.sum, self.line = key, total, first

    def _number(self, journal: str, number: str, previous: tuple[str, str, int] | None, line: int) -> None:
        """An entry starting a run: counted if new, and its EcritureNum judged against the journal's
        last one: continuous within a journal, same prefix, the next number (or the same).

        A number without digits, or a new prefix (a new series: another year, another sub-journal),
        cannot be judged and passes."""
        prefix = number.rstrip(DIGITS)
        value = int(number[len(prefix):]) if len(prefix) < len(number) else -1
        if previous is not None:
            if value >= 0 and previous[2] >= 0 and prefix == previous[1] and value - previous[2] not in (0, 1):
                self.findings.add("ecriturenum_gap", line, column="EcritureNum", value=number, previous=previous[0],
                                  journal=journal)
            self.last_numbers[journal] = (number, prefix, value)
        elif len(self.last_numbers) < MAX_JOURNALS:
            self.last_numbers[journal] = (number, prefix, value)
        if value < 0 or not self._in_series((journal, prefix, len(number) - len(prefix)), value):
            self.seen.add(hash((journal, number)))
            if len(self.seen) > MAX_SEEN:
                self._spill().add_seen(self.seen)
                self.seen.clear()

    def _in_series(self, series: tuple[str, str, int], value: int) -> bool:
        """Count a numbered entry in its series' range of numbers, if it can be: True when it is
        known seen or newly counted there, False when the hashes must decide.

        A series (journal, prefix, digit count) names each of its EcritureNum by its value alone.
        Its range [low, high] holds numbers all seen; it grows only by the next number, and only
        when that number is above every one of the series given to the hashes (`top`), so the range
        and the hashes never hold the same entry. A file numbered in sequence needs three integers a
        journal, where a hash an entry would spill to disk past MAX_SEEN entries."""
        bounds = self.series.get(series)
        if bounds is None:
            if len(self.series) >= MAX_SERIES:
                return False
            self.series[series] = [value, value, -1]
            return True
        low, high, top = bounds
        if low <= value <= high:
            return True
        if value == high + 1 and value > top:
            bounds[1] = value
            return True
        bounds[2] = max(top, value)
        return False

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
        if self.spill is None:
            return ranged + len(self.seen)
        self.spill.add_seen(self.seen)
        self.seen.clear()
        return ranged + self.spill.distinct()

    def finish(self) -> None:
        """Report every entry left unbalanced, in the order of their first lines."""
        if self.sum:
            self.open[self.key] = (self.sum, self.line)  # type: ignore[index]
        self.sum = 0
        if self.spill is not None:
            self.spill.add_open(self.open)
            self.open.clear()
            unbalanced: Any = self.spill.unbalanced()
        else:
            unbalanced = ((key, total, line) for key, (total, line) in
                          sorted(self.open.items(), key=lambda item: item[1][1]))
        if len(self.tainted) > MAX_TAINTED:
            return
        for (journal, number), total, line in unbalanced:
            if (journal, number) not in self.tainted:
                self.findings.add("unbalanced_entry", line, column="EcritureNum", value=f"{journal}/{number}",
                                  amount=format_micro(total))

    def close(self) -> None:
        if self.spill is not None:
            self.spill.close()
