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

import re
from collections.abc import Iterator
from typing import Any

from shared.fec_layout import format_micro
from shared.fec_rules import Findings

MAX_OPEN = 50_000  # open entries kept in memory (about 250 bytes each)
MAX_SEEN = 400_000  # key hashes kept in memory (about 60 bytes each)
MAX_TAINTED = 10_000  # past this many unreadable entries, no entry's balance is reported
MAX_JOURNALS = 10_000  # journals whose last EcritureNum is remembered for the sequence check
TRAILING_NUMBER = re.compile(r"(.*?)(\d+)\s*$", re.DOTALL)

Key = tuple[str, str]


def continues(previous: str, number: str) -> bool:
    """Whether `number` may follow `previous` in one journal: same prefix and the next number.

    A number without digits, or a new prefix (a new series: another year, another sub-journal),
    cannot be judged and passes."""
    before = TRAILING_NUMBER.match(previous)
    after = TRAILING_NUMBER.match(number)
    if before is None or after is None or before[1].strip() != after[1].strip():
        return True
    return int(after[2]) - int(before[2]) in (0, 1)


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
        self.seen: set[int] = set()
        self.spill: _Spill | None = None
        self.key: Key | None = None
        self.sum = 0
        self.line = 0
        self.last_numbers: dict[str, str] = {}
        self.tainted: set[Key] = set()
        self.taint_next = False
        self.balance_unknown = False

    def book(self, key: Key, line: int, amount: int) -> None:
        """Add a run of lines of one entry, starting at `line`, summing to `amount`."""
        if key != self.key:
            self.switch(key, line)
        self.sum += amount

    def switch(self, key: Key, line: int) -> None:
        """A run of another entry starts at `line`."""
        if self.sum:
            self.open[self.key] = (self.sum, self.line)  # type: ignore[index]
            if len(self.open) > MAX_OPEN:
                self._spill().add_open(self.open)
                self.open.clear()
        self.key = key
        self.seen.add(hash(key))
        if len(self.seen) > MAX_SEEN:
            self._spill().add_seen(self.seen)
            self.seen.clear()
        self.sum, self.line = self.open.pop(key, (0, line)) if self.open else (0, line)
        if self.taint_next:
            self.taint_next = False
            self.taint(key)
        self._sequence(key, line)

    def _sequence(self, key: Key, line: int) -> None:
        journal, number = key
        previous = self.last_numbers.get(journal)
        if previous == number:
            return
        if previous is not None or len(self.last_numbers) < MAX_JOURNALS:
            self.last_numbers[journal] = number
        if previous is not None and not continues(previous, number):
            self.findings.add("ecriturenum_gap", line, column="EcritureNum", value=number, previous=previous,
                              journal=journal)

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
        if self.spill is None:
            return len(self.seen)
        self.spill.add_seen(self.seen)
        self.seen.clear()
        return self.spill.distinct()

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
