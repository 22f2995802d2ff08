"""The rule bodies: the field-by-field path, and the cross-line checks both paths feed.

Per batch of lines: if every line matches the fast regex (shared.fec.fast), the batch is booked column by
column with C-level map/zip/accumulate; otherwise each line is read by the fast regex when it
matches and by `Checker.check` (the detailed path, which reports what is wrong) when it does not,
and the resulting rows are booked the same way. A row is (line number, JournalCode, EcritureNum,
EcritureDate, PieceDate, ValidDate, debit, credit): dates are valid AAAAMMJJ strings or None.
"""

from __future__ import annotations

import re
from bisect import bisect
from collections.abc import Iterable, Sequence
from itertools import accumulate, compress, count, repeat
from operator import gt, lt, mul, ne, or_, sub
from typing import Any

from shared.fec.entries import EntryBook, Keys, Runs
from shared.fec.fast import NUL, FastPath, build
from shared.fec.layout import (
    CASH_OPTIONAL,
    CENT,
    DISPLAY,
    OPTIONAL_DATES,
    REQUIRED,
    REQUIRED_DATES,
    SENS_VALUES,
    Layout,
    fold,
    format_micro,
    is_calendar_date,
    is_zero_date,
    parse_amount,
)
from shared.fec.lines import LINE_TOO_LONG
from shared.fec.numbering import DIGITS, Numbering, Numbers
from shared.fec.rules import Findings

Row = tuple[int, str, str, str | None, str | None, str | None, int, int]
DEBIT_SENS = frozenset({"D", "+1"})
NO_DATE_YET = ("99999999", "00000000")  # (first, last) before any EcritureDate was read
MAX_CACHED_DATES = 20_000
MAX_JOURNALS_LISTED = 1000
MAX_LEFT_OUT_LISTED = 20


def _cents(amounts: list[str]) -> list[int]:
    """Amounts the fast regex accepted (` *-?\\d+,\\d\\d *`) in cents."""
    return list(map(int, map(str.replace, amounts, repeat(","), repeat(""))))


class Checker:
    """Checks records against the layout and keeps the running totals.

    `mode` is for tests: "detailed" reads every line field by field, "lines" never books a batch
    column-wise from the regex alone; "auto" uses the fastest path that applies.
    """

    mode = "auto"

    def __init__(self, layout: Layout, findings: Findings, period: tuple[str, str] | None = None) -> None:
        """`period`: the (earliest, closing) EcritureDate the file name allows, as AAAAMMJJ, if it gives one."""
        self.layout = layout
        self.findings = findings
        self.width = len(layout.names)
        index = layout.index
        optional = CASH_OPTIONAL if layout.kind in ("ba", "bnc") else frozenset()
        self.required = [(index[name], DISPLAY[name]) for name in REQUIRED if name not in optional]
        self.journal_required = "journalcode" not in optional
        self.montant_sens = layout.kind == "montant_sens"
        self.i_amounts = (index["montant"], index["sens"]) if self.montant_sens else (index["debit"], index["credit"])
        self.dates = [(index[name], DISPLAY[name], name not in optional) for name in REQUIRED_DATES]
        self.dates += [(index[name], DISPLAY[name], False) for name in OPTIONAL_DATES if name in index]
        self.i_journal, self.i_num = index["journalcode"], index["ecriturenum"]
        self.i_account = index["comptenum"]
        self.i_devise, self.i_idevise = index.get("montantdevise"), index.get("idevise")
        self.valid_dates: dict[str, str] = {}  # short raw values already found to be real dates
        self.fast: FastPath | None = None if self.mode == "detailed" else build(layout, optional)
        self.book = EntryBook(findings)
        self.records = 0
        self.total_debit = 0
        self.total_credit = 0
        self.first_date, self.last_date = NO_DATE_YET
        self.last_valid: dict[str, tuple[str, int, str, str]] = {}  # journal: (prefix, number, ValidDate, EcritureNum)
        self.numbering = Numbering()
        self.numbering_summary: dict[str, Any] | None = None
        self.journals: set[str] = set()
        self.unreadable_keys: list[int] = []  # lines of this batch whose entry key is unreadable
        self.left_out = 0  # lines holding a record left out of the totals and the balance (unreadable)
        self.left_out_lines: list[int] = []  # the first MAX_LEFT_OUT_LISTED of them
        self.period = period
        self.period_warned: tuple[str, str] | None = None  # the last entry warned outside the period

    def consume(self, batches: Iterable[tuple[int, list[str]]]) -> None:
        """Check every record of every batch (number of its first line, lines)."""
        for start, batch in batches:
            self._batch(start, batch)

    def _batch(self, start: int, batch: list[str]) -> None:
        fast = self.fast
        if fast and batch and self.mode == "auto" and self._book_columns(start, batch, fast):
            return
        matches: list[Any] = list(map(fast.match, batch)) if fast else [None] * len(batch)
        rows = [
            self._row(number, match) if match else self.check(number, line)
            for number, line, match in zip(count(start), batch, matches, strict=False)
        ]
        present = [row for row in rows if row is not None]
        if self.unreadable_keys:
            self._taint_neighbours(present)
        if present:
            self._book(*zip(*present, strict=True), scale=1)  # type: ignore[arg-type]

    def _taint_neighbours(self, rows: list[Row]) -> None:
        """A line whose entry key cannot be read belongs, most likely, to the entry of the record
        before or after it: neither entry's balance can be known."""
        numbers = [row[0] for row in rows]
        for number in self.unreadable_keys:
            after = bisect(numbers, number)
            self.book.taint((rows[after - 1][1], rows[after - 1][2]) if after else self.book.key)
            if after < len(rows):
                self.book.taint((rows[after][1], rows[after][2]))
            else:
                self.book.taint_next = True
        self.unreadable_keys.clear()

    def _book_columns(self, start: int, batch: list[str], fast: FastPath) -> bool:
        """Book a batch whose lines the fast regex all accepts, column by column; False if not.

        Every line has the layout's columns, so one split of the joined lines gives them all, column
        k of the batch being every width-th value from k (the NUL of each joint stays at the start
        of the next line's first value: JournalCode)."""
        width, index, separator = self.width, self.layout.index, self.layout.separator
        joined = (separator + NUL).join(batch)
        if not fast.batch(joined):
            return False
        values = joined.split(separator)
        del joined

        def column(name: str) -> list[str]:
            return values[index[name]::width]

        if self.montant_sens:
            amounts = _cents(column("montant"))
            debits = [amount if side in DEBIT_SENS else 0
                      for amount, side in zip(amounts, column("sens"), strict=True)]
            credits = list(map(sub, amounts, debits))
        else:
            debits, credits = _cents(column("debit")), _cents(column("credit"))
        valids: list[str | None] = column("validdate")
        complete = "" not in valids  # BA, BNC: ValidDate may be blank
        if not complete:
            valids = [valid or None for valid in valids]
        self.records += len(batch)
        journals = list(map(str.lstrip, column("journalcode"), repeat(NUL)))
        self._book(range(start, start + len(batch)), journals, column("ecriturenum"),
                   column("ecrituredate"), column("piecedate"), valids, debits, credits, scale=CENT, complete=complete)
        return True

    def _row(self, number: int, match: re.Match[str]) -> Row:
        """One line the fast regex accepted, in a batch that also has other lines."""
        fast = self.fast
        groups = match.groups()
        amounts = [groups[i] for i in fast.amounts]  # type: ignore[union-attr]
        if self.montant_sens:
            amount = int(amounts[0] + amounts[1]) * CENT
            debit, credit = (amount, 0) if amounts[2] in DEBIT_SENS else (0, amount)
        else:
            debit, credit = int(amounts[0] + amounts[1]) * CENT, int(amounts[2] + amounts[3]) * CENT
        self.records += 1
        return (number, groups[0].strip(), groups[1].strip(), groups[fast.day], groups[fast.piece],  # type: ignore[union-attr]
                groups[fast.valid], debit, credit)  # type: ignore[union-attr]

    def _book(  # noqa: PLR0917 - the columns of a batch's rows
        self, numbers: Sequence[int], journals: Sequence[str], nums: Sequence[str],
              days: Sequence[str | None], pieces: Sequence[str | None], valids: Sequence[str | None],
              debits: Sequence[int], credits: Sequence[int], *, scale: int, complete: bool = False) -> None:
        """The cross-line rules and the totals, for rows given as columns; amounts in units of `scale`.
        `complete`: no date is None (no column is scanned for one)."""
        self.total_debit += sum(debits) * scale
        self.total_credit += sum(credits) * scale
        self._amount_pairs(numbers, debits, credits)
        span = self._dates(numbers, days, pieces, complete)
        prefix = [0, *accumulate(map(sub, debits, credits))]
        size = len(nums)
        changes = map(ne, nums[1:], nums[:-1])  # where the entry changes: compared column by column,
        if journals[1:] != journals[:-1]:  # without a key tuple a line
            changes = map(or_, changes, map(ne, journals[1:], journals[:-1]))
        starts = [0, *compress(range(1, size), changes)]
        run_journals = list(map(journals.__getitem__, starts))
        if len(self.journals) < MAX_JOURNALS_LISTED:  # every journal starts a run
            self.journals.update(journal[:80] for journal in set(run_journals))
        run_nums, run_lines = list(map(nums.__getitem__, starts)), list(map(numbers.__getitem__, starts))
        if self.period and span and (span[0] < self.period[0] or span[1] > self.period[1]):
            self._outside_period(numbers, days, starts, run_journals, run_nums)
        run_days = list(map(days.__getitem__, starts))
        if valids != days:  # a ValidDate that is its record's EcritureDate says nothing of validation
            self._validation_dates(numbers, days, valids, complete)
            self._validation_order(run_lines, run_journals, run_nums, run_days, list(map(valids.__getitem__, starts)))
        parsed = Numbers(run_nums)
        self.numbering.book(run_journals, parsed, run_days, run_lines)
        ends = [*starts[1:], size]
        sums = map(sub, map(prefix.__getitem__, ends), map(prefix.__getitem__, starts))
        if scale != 1:
            sums = map(scale.__mul__, sums)
        self.book.book_runs(Keys(run_journals, parsed), run_lines, sums, Runs(numbers, starts, debits, scale))

    def _amount_pairs(self, numbers: Sequence[int], debits: Sequence[int], credits: Sequence[int]) -> None:
        if any(map(mul, debits, credits)):  # both non-zero
            for number, debit, credit in zip(numbers, debits, credits, strict=True):
                if debit and credit:
                    self.findings.add("debit_and_credit", number)
        if not all(map(or_, debits, credits)):
            for number, debit, credit in zip(numbers, debits, credits, strict=True):
                if not (debit or credit):
                    self.findings.add("zero_amounts", number)

    def _dates(self, numbers: Sequence[int], days: Sequence[str | None], pieces: Sequence[str | None],
               complete: bool) -> tuple[str, str] | None:
        """PieceDate after EcritureDate; the first and last EcritureDate. Returns the batch's (None: none)."""
        missing = not complete and (None in days or None in pieces)
        present = [day for day in days if day] if missing else days
        span = None
        if present:
            span = min(present), max(present)  # type: ignore[type-var]
            self.first_date = min(self.first_date, span[0])  # type: ignore[type-var]
            self.last_date = max(self.last_date, span[1])  # type: ignore[type-var]
        if missing:  # a missing date never compares: "" < any date < "~"
            days = ["~" if day is None else day for day in days]
            pieces = ["" if piece is None else piece for piece in pieces]
        if any(map(gt, pieces, days)):
            for number, piece, day in zip(numbers, pieces, days, strict=True):
                if piece > day:  # type: ignore[operator]
                    self.findings.add("piece_after_entry", number, column="PieceDate", value=piece, entry_date=day)
        return span  # type: ignore[return-value]

    def _outside_period(self, numbers: Sequence[int], days: Sequence[str | None], starts: list[int],
                        journals: list[str], nums: list[str]) -> None:
        """One warning per entry dated outside the period the file name gives: after its closing date,
        or more than 24 months before it; at the entry's first line so dated. An entry is its run of
        lines (the one carried over from the last batch is not warned twice)."""
        earliest, closing = self.period  # type: ignore[misc]
        ends = [*starts[1:], len(days)]
        for run, (start, end) in enumerate(zip(starts, ends, strict=True)):
            key = (journals[run], nums[run])
            if run == 0 and key == self.period_warned:
                continue
            for at in range(start, end):
                day = days[at]
                if day is not None and not earliest <= day <= closing:
                    self.findings.add("date_outside_period", numbers[at], column="EcritureDate", value=day,
                                      closing=closing, earliest=earliest,
                                      side="after" if day > closing else "before")
                    self.period_warned = key
                    break

    def _validation_dates(self, numbers: Sequence[int], days: Sequence[str | None], valids: Sequence[str | None],
                          complete: bool) -> None:
        """A record validated before the date it is booked at."""
        if not complete and (None in valids or None in days):  # a missing date never compares
            valids = ["~" if valid is None else valid for valid in valids]
            days = ["" if day is None else day for day in days]
        if any(map(lt, valids, days)):
            for number, valid, day in zip(numbers, valids, days, strict=True):
                if valid < day:  # type: ignore[operator]
                    self.findings.add("validdate_order", number, column="ValidDate", value=valid,
                                      previous=f"its EcritureDate {day}")

    def _validation_order(self, lines: list[int], journals: list[str], nums: list[str], days: list[str | None],
                          valids: list[str | None]) -> None:
        """Entries starting a run whose ValidDate is a validation date (not their EcritureDate): in
        each journal, one numbered above the journal's previous such entry but validated before it.
        Each is compared with the one before it in that order, so one wrong date gives one warning,
        and a record gets one warning of this rule at most."""
        last = self.last_valid
        for at in compress(range(len(lines)), map(ne, valids, days)):
            valid, number, journal, day = valids[at], nums[at], journals[at], days[at]
            prefix = number.rstrip(DIGITS)
            if valid is None or (day is not None and valid < day) or len(prefix) == len(number):
                continue  # no date, already reported as before its EcritureDate, or no number
            value = int(number[len(prefix):])
            previous = last.get(journal)
            if previous is None or previous[0] != prefix:
                if previous is not None or len(last) < MAX_JOURNALS_LISTED:
                    last[journal] = (prefix, value, valid, number)
                continue
            if value <= previous[1]:
                continue  # an entry coming back, or numbered below: not a step of the sequence
            if valid < previous[2]:
                self.findings.add("validdate_order", lines[at], column="ValidDate", value=valid,
                                  previous=f"{previous[2]}, the ValidDate of {previous[3]!r} numbered before it"
                                           f" in journal {journal!r}")
            last[journal] = (prefix, value, valid, number)

    def check(self, number: int, line: str) -> Row | None:
        """The detailed path: report what is wrong; return the row, or None to leave the line out."""
        if line is LINE_TOO_LONG:
            self._leave_out(number)
            return None
        fields = line.split(self.layout.separator)
        if len(fields) != self.width:
            self._wrong_width(number, line, fields)
            return None
        if fields[0][:1] in "Jj" and fold(fields[0]) == "journalcode":
            self.findings.add("repeated_header", number)
            return None
        self.records += 1
        for position, name in self.required:
            if not fields[position].strip():
                self.findings.add("required_empty", number, column=name)
        day, piece, valid = self._line_dates(number, fields)[:3]
        amounts = self._amounts(number, fields)
        self._account_and_currency(number, fields)
        journal, entry_number = fields[self.i_journal].strip(), fields[self.i_num].strip()
        if not entry_number or (self.journal_required and not journal):
            self.unreadable_keys.append(number)
            self._leave_out(number)
            return None
        if amounts is None:
            self.book.taint((journal, entry_number))
            self._leave_out(number)
            return None
        return number, journal, entry_number, day, piece, valid, amounts[0], amounts[1]

    def _wrong_width(self, number: int, line: str, fields: list[str]) -> None:
        if [fold(name) for name in fields] == self.layout.names:
            self.findings.add("repeated_header", number)
        elif not line.strip(" \t|"):
            blank = self.layout.separator not in line
            self.findings.add("empty_line" if blank else "only_separators", number)
        else:
            self.findings.add("column_count", number, value=line, count=len(fields), width=self.width)
            self._leave_out(number)
            if len(fields) > max(self.i_journal, self.i_num):
                self.book.taint((fields[self.i_journal].strip(), fields[self.i_num].strip()))
            else:
                self.unreadable_keys.append(number)

    def _leave_out(self, number: int) -> None:
        """A line that holds a record but could not be read: out of the totals, and counted as such."""
        self.left_out += 1
        if len(self.left_out_lines) < MAX_LEFT_OUT_LISTED:
            self.left_out_lines.append(number)

    def _line_dates(self, number: int, fields: list[str]) -> list[str | None]:
        """Each date column's valid AAAAMMJJ, or None (blank, all-zero optional, or reported)."""
        found: list[str | None] = []
        for position, name, required in self.dates:
            value = fields[position]
            known = self.valid_dates.get(value)
            if known is not None:
                found.append(known)
                continue
            found.append(self._date(number, name, value, required))
        return found

    def _date(self, number: int, name: str, value: str, required: bool) -> str | None:
        stripped = value.strip()
        if not stripped or (not required and is_zero_date(stripped)):
            return None  # blank: required_empty already says so when it must not be
        if not is_calendar_date(stripped):
            self.findings.add("invalid_date", number, column=name, value=stripped)
            return None
        if not ("19" <= stripped[:2] <= "20"):
            self.findings.add("date_year", number, column=name, value=stripped)
        elif len(value) <= 16 and len(self.valid_dates) < MAX_CACHED_DATES:
            self.valid_dates[value] = stripped
        return stripped

    def _amount(self, number: int, fields: list[str], position: int, name: str) -> int | None:
        """The amount in micro-units (blank reads as 0, as the DGFiP reads it); None if unreadable."""
        value = parse_amount(fields[position])
        if isinstance(value, str):
            self.findings.add(value, number, column=name, value=fields[position].strip())
            return None
        return value or 0

    def _amounts(self, number: int, fields: list[str]) -> tuple[int, int] | None:
        first, second = self.i_amounts
        if self.montant_sens:
            amount = self._amount(number, fields, first, "Montant")
            sens = fields[second].strip().upper()
            direction = SENS_VALUES.get(sens)
            if direction is None:
                self.findings.add("invalid_sens", number, column="Sens", value=sens)
            if amount is None or direction is None:
                return None
            return (amount, 0) if direction > 0 else (0, amount)
        debit = self._amount(number, fields, first, "Debit")
        credit = self._amount(number, fields, second, "Credit")
        return None if debit is None or credit is None else (debit, credit)

    def _account_and_currency(self, number: int, fields: list[str]) -> None:
        account = fields[self.i_account].strip()
        if account and not account[:3].isdigit():
            self.findings.add("account_number", number, column="CompteNum", value=account)
        if self.i_devise is None:
            return
        currency = parse_amount(fields[self.i_devise])
        if isinstance(currency, str):
            self.findings.add(currency, number, column="Montantdevise", value=fields[self.i_devise].strip())
        if currency and self.i_idevise is not None and not fields[self.i_idevise].strip():
            self.findings.add("devise_without_idevise", number, column="Montantdevise",
                              value=fields[self.i_devise].strip())

    def finish(self) -> None:
        self.book.finish()
        self.numbering_summary = self.numbering.finish(self.findings)
        if self.total_debit != self.total_credit and not self.book.balance_unknown:
            self.findings.add("unbalanced_file", None, debit=format_micro(self.total_debit),
                              credit=format_micro(self.total_credit))
        if self.last_date == NO_DATE_YET[1]:
            self.first_date = self.last_date = None  # type: ignore[assignment]
