"""Streaming FEC validator: reads a byte stream once, in bounded memory, and explains what is wrong.

Rules: ../shared/docs/fec-format.md (article A47 A-1 LPF and the DGFiP's Test Compta Demat).
Errors block the import; warnings are recorded and the file is still sent.

How it stays fast and bounded: bytes are cut into complete lines and decoded a batch (about
1 MB) at a time; one regex per layout accepts the common well-formed record, and a batch whose
records all match is checked and booked column by column with map/zip/accumulate; any other
line goes through the field-by-field path, which is the authority and says what is wrong.
Date strings are checked once each (they repeat); amounts are summed as integers of
micro-units, never floats; an entry (JournalCode, EcritureNum) is checked when the next one
starts and only unbalanced ones are kept, so memory does not grow with the file when entries are
contiguous, as they are in practice.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from itertools import accumulate, chain, compress
from operator import add, itemgetter, ne, sub
from pathlib import PurePath
from typing import Any

MAX_LINE_BYTES = 64 * 1024
READ_CHUNK = 1024 * 1024
VALUE_PREVIEW = 80
MICRO = 1_000_000
CENT = MICRO // 100
LINE_TOO_LONG = "\x00 line too long"  # NULs never survive decoding, so no real line is this
MAX_TAINTED_ENTRIES = 100_000
NO_DATE_YET = ("99999999", "00000000")  # (first, last) before any EcritureDate was read

STANDARD = (
    "journalcode", "journallib", "ecriturenum", "ecrituredate", "comptenum", "comptelib",
    "compauxnum", "compauxlib", "pieceref", "piecedate", "ecriturelib", "debit", "credit",
    "ecriturelet", "datelet", "validdate", "montantdevise", "idevise",
)
DISPLAY = {
    name.lower(): name
    for name in (
        "JournalCode", "JournalLib", "EcritureNum", "EcritureDate", "CompteNum", "CompteLib", "CompAuxNum",
        "CompAuxLib", "PieceRef", "PieceDate", "EcritureLib", "Debit", "Credit", "EcritureLet", "DateLet",
        "ValidDate", "Montantdevise", "Idevise", "Montant", "Sens", "DateRglt", "ModeRglt", "NatOp", "IdClient",
    )
}
BA_EXTRA = ("daterglt", "moderglt", "natop")
BNC_EXTRA = (*BA_EXTRA, "idclient")
REQUIRED = (
    "journalcode", "journallib", "ecriturenum", "ecrituredate", "comptenum", "comptelib",
    "pieceref", "piecedate", "ecriturelib", "validdate",
)
# Cash-accounting layouts (BA, BNC: article A47 A-2) may leave these blank; seen in real BNC files.
CASH_OPTIONAL = frozenset({"journalcode", "journallib", "comptenum", "validdate"})
REQUIRED_DATES = ("ecrituredate", "piecedate", "validdate")
OPTIONAL_DATES = ("datelet", "daterglt")
SENS_VALUES = {"D": 1, "C": -1, "+1": 1, "-1": -1}
# AAAAMMJJ in 1900-2099 that is a real date, except 29 February (left to the detailed path).
CALENDAR_DATE = (
    r"(?:19|20)\d\d(?:(?:0[1-9]|1[0-2])(?:0[1-9]|1\d|2[0-8])|(?:0[13-9]|1[0-2])(?:29|30)|(?:0[13578]|1[02])31)"
)

AMOUNT = re.compile(r"([+-]?)(\d*)(?:,(\d+))?([+-]?)")
THOUSANDS = re.compile(r"[+-]?\d{1,3}([ .]\d{3})+(,\d+)?[+-]?")
DOT_DECIMAL = re.compile(r"[+-]?\d*\.\d+[+-]?")
FILE_NAME = re.compile(r"(?i)^\d{9}FEC\d{8}$")


@dataclass(frozen=True)
class Finding:
    rule: str
    line: int | None
    column: str | None
    value: str | None
    message: str
    severity: str = "error"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "line": self.line, "column": self.column, "value": self.value,
                "message": self.message}


@dataclass
class ValidationReport:
    valid: bool
    errors: list[Finding]
    warnings: list[Finding]
    counts: dict[str, int]
    summary: dict[str, Any]
    file_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "file_name": self.file_name,
            "errors": [finding.to_dict() for finding in self.errors],
            "warnings": [finding.to_dict() for finding in self.warnings],
            "counts": dict(self.counts),
            "summary": dict(self.summary),
        }

    def to_text(self) -> str:
        s = self.summary
        lines = [
            f"{self.file_name or 'file'}: {'importable' if self.valid else 'NOT importable'}"
            f" ({sum(self.counts.get(f.rule, 0) for f in _unique(self.errors))} errors,"
            f" {sum(self.counts.get(f.rule, 0) for f in _unique(self.warnings))} warnings)",
            f"  {s.get('records', 0)} records, {s.get('entries', 0)} entries, debit {s.get('total_debit')},"
            f" credit {s.get('total_credit')}, {s.get('first_date') or '?'} to {s.get('last_date') or '?'}",
            f"  layout {s.get('layout')}, encoding {s.get('encoding')}, separator {s.get('separator')!r},"
            f" line ending {s.get('line_ending')}, journals {', '.join(s.get('journals') or [])}",
        ]
        for label, findings in (("error", self.errors), ("warning", self.warnings)):
            for finding in findings:
                where = f"line {finding.line}" if finding.line else "file"
                lines.append(f"  {label} {finding.rule}: {where}: {finding.message}")
        return "\n".join(lines)


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: dict[str, Finding] = {}
    for finding in findings:
        seen.setdefault(finding.rule, finding)
    return list(seen.values())


def fold(name: str) -> str:
    """Header name matching as the DGFiP checker does: case-insensitive, accents folded."""
    decomposed = unicodedata.normalize("NFKD", name.strip().strip("\ufeff"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def _preview(value: str | None) -> str | None:
    if value is None:
        return None
    return value if len(value) <= VALUE_PREVIEW else value[:VALUE_PREVIEW] + "..."


class _Findings:
    """Counts every occurrence; keeps only the first few of each rule."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: Counter[str] = Counter()
        self.errors: list[Finding] = []
        self.warnings: list[Finding] = []

    def add(self, rule: str, line: int | None, message: str, *, column: str | None = None,
            value: str | None = None, warning: bool = False) -> None:
        self.counts[rule] += 1
        if self.counts[rule] <= self.limit:
            target = self.warnings if warning else self.errors
            severity = "warning" if warning else "error"
            target.append(Finding(rule, line, column, _preview(value), message, severity))


def is_calendar_date(text: str) -> bool:
    if len(text) != 8 or not text.isdigit():
        return False
    try:
        date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return False
    return True


def parse_amount(text: str) -> int | str | None:
    """Micro-units as an int; None if empty; the name of the broken rule (a str) if malformed."""
    value = text.strip()
    if not value:
        return None
    match = AMOUNT.fullmatch(value)
    if match is None:
        if THOUSANDS.fullmatch(value):
            return "thousands_separator"
        return "decimal_point" if DOT_DECIMAL.fullmatch(value) else "invalid_amount"
    before, units, decimals, after = match.groups()
    if (before and after) or not (units or decimals):
        return "invalid_amount"
    if decimals and len(decimals) > 6:
        micro = int((Decimal(f"{units or 0}.{decimals}") * MICRO).to_integral_value())
    else:
        micro = int(units or 0) * MICRO + (int(decimals.ljust(6, "0")) if decimals else 0)
    return -micro if "-" in (before, after) else micro


def _format_micro(value: int) -> str:
    amount = Decimal(value) / MICRO
    return str(amount.quantize(Decimal("0.01")) if amount == amount.quantize(Decimal("0.01")) else amount.normalize())


@dataclass
class _Layout:
    names: list[str]
    separator: str
    kind: str
    trailing: bool
    legal_order: bool = True
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {name: position for position, name in enumerate(self.names) if name}


def _read_header(line: str, findings: _Findings) -> _Layout | None:
    separator = "\t" if "\t" in line else "|" if "|" in line else None
    if separator is None:
        findings.add("header_separator", 1, "the header has no TAB or | separator", value=line)
        return None
    names = [fold(name) for name in line.split(separator)]
    trailing = len(names) > 1 and names[-1] == ""
    if trailing:
        findings.add("trailing_separator", 1, "every line ends with a separator", warning=True)
    expected = list(STANDARD)
    kind = "standard"
    if "montant" in names and "sens" in names and "debit" not in names:
        expected[11:13] = ["montant", "sens"]
        kind = "montant_sens"
    missing = [name for name in expected if name not in names]
    if missing:
        shown = ", ".join(DISPLAY.get(name, name) for name in missing)
        findings.add("header_missing_column", 1, f"missing column(s): {shown}", value=line)
        return None
    legal_order = names[: len(expected)] == expected
    if not legal_order:
        findings.add("header_column_order", 1, "the 18 FEC columns are not in the legal order", value=line,
                     warning=True)
    rest = names[len(expected):]
    if tuple(rest[: len(BNC_EXTRA)]) == BNC_EXTRA:
        kind = "bnc"
    elif tuple(rest[: len(BA_EXTRA)]) == BA_EXTRA:
        kind = "ba"
    return _Layout(names, separator, kind, trailing, legal_order)


def _with_sniffable_head(chunks: Iterable[bytes], size: int = 4096) -> Iterator[bytes]:
    """The same bytes, with the first chunk at least `size` long (for BOM and binary sniffing)."""
    iterator = iter(chunks)
    head = b""
    for chunk in iterator:
        head += chunk
        if len(head) >= size:
            break
    if head:
        yield head
    yield from iterator


class _Lines:
    """Splits a byte stream into decoded lines, detecting encoding and line endings as it goes."""

    def __init__(self, findings: _Findings) -> None:
        self.findings = findings
        self.encoding = "utf-8"
        self.bom = False
        self.non_ascii_seen = False
        self.newline: bytes | None = None
        self.ending = "\n"
        self.mixed_endings = False
        self.line_number = 0
        self.final_newline = True
        self.fatal = False

    def _sniff(self, head: bytes) -> bytes | None:
        utf16_pattern = len(head) > 3 and b"\x00\x00" in (head[0:3:2], head[1:4:2])
        if head.startswith((b"\xff\xfe", b"\xfe\xff")) or utf16_pattern:
            self.findings.add("utf16", None, "the file is UTF-16; FEC files must be UTF-8, ISO 8859-15 or ASCII")
            return None
        if head.startswith(b"\xef\xbb\xbf"):
            self.bom = True
            head = head[3:]
        if b"\x00" in head[:65536]:
            self.findings.add("not_text", None, "the file contains NUL bytes: it is binary, not a FEC text file")
            return None
        return head

    def _decode(self, data: bytes) -> str:
        if self.encoding == "utf-8":
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                self.encoding = "iso-8859-15"
                if self.non_ascii_seen:
                    self.findings.add("mixed_encoding", self.line_number + 1,
                                      "bytes that are not UTF-8 after UTF-8 text; read as ISO 8859-15", warning=True)
                return data.decode("iso-8859-15")
            if not self.non_ascii_seen and not data.isascii():
                self.non_ascii_seen = True
            return text
        return data.decode("iso-8859-15")

    def _split(self, data: bytes, last: bool = False) -> list[str]:
        """Decoded lines of `data`, which ends just before a line ending (or at the end of file)."""
        text = self._decode(data)
        if "\x00" in text:
            self.findings.add("nul_byte", self.line_number + 1, "NUL bytes in the text")
            text = text.replace("\x00", "")
        if self.newline == b"\r":
            return text.split("\r")
        ending = self.ending
        if ending == "\n":
            return text.split("\n") if "\r" not in text else self._normalised(text)
        if not last:  # `data` stops just before its last LF: the CRs of that ending are still there
            tail = ending[:-1]
            if not text.endswith(tail):
                return self._normalised(text)
            text = text[: len(text) - len(tail)]
        lines = text.split(ending)
        if text.count("\n") != len(lines) - 1:  # an LF that is not part of the file's line ending
            return self._normalised(text)
        return lines

    def _normalised(self, text: str) -> list[str]:
        """Lines of a file whose line endings are mixed: any of LF, CRLF, CR CR LF ends a line."""
        self.mixed_endings = True
        return text.replace("\r\r\n", "\n").replace("\r\n", "\n").rstrip("\r").split("\n")

    def _detect_newline(self, data: bytes) -> None:
        """The file's line ending, from its first line: LF, CRLF, CR CR LF or CR."""
        lf = data.find(b"\n")
        if lf < 0:
            if b"\r" in data:
                self.newline, self.ending = b"\r", "\r"
            return
        self.newline = b"\n"
        before = data[max(lf - 2, 0):lf]
        self.ending = "\r\r\n" if before == b"\r\r" else "\r\n" if before.endswith(b"\r") else "\n"

    def batches(self, chunks: Iterable[bytes]) -> Iterator[tuple[int, list[str]]]:  # noqa: PLR0912
        carry = b""
        first = True
        skipping = False
        for chunk in _with_sniffable_head(chunks):
            if not chunk:
                continue
            if first:
                chunk = self._sniff(chunk)  # noqa: PLW2901 - the BOM is cut off the first chunk only
                first = False
                if chunk is None:
                    self.fatal = True
                    return
            data = carry + chunk
            if self.newline is None:
                self._detect_newline(data)
            cut = data.rfind(self.newline) if self.newline else -1
            if cut < 0:
                carry = data
                if len(carry) > MAX_LINE_BYTES:
                    if not skipping:
                        self.findings.add("line_too_long", self.line_number + 1,
                                          f"a line longer than {MAX_LINE_BYTES} bytes; it is skipped")
                        self.line_number += 1
                    skipping, carry = True, b""
                continue
            complete, carry = data[:cut], data[cut + 1:]
            if skipping:
                _, found, complete = complete.partition(self.newline)  # type: ignore[arg-type]
                skipping = False
                if not found:
                    continue
            yield self._numbered(complete)
        if first:
            return
        if carry:
            self.final_newline = False
            if skipping:
                return
            if self.newline is None:
                self.newline = b"\n"
            yield self._numbered(carry, last=True)

    def _numbered(self, data: bytes, last: bool = False) -> tuple[int, list[str]]:
        """(number of the first line, lines); lines over the limit are reported and replaced."""
        lines = self._split(data, last)
        start = self.line_number + 1
        self.line_number += len(lines)
        if lines and max(map(len, lines)) > MAX_LINE_BYTES:
            for offset, line in enumerate(lines):
                if len(line) > MAX_LINE_BYTES:
                    self.findings.add("line_too_long", start + offset,
                                      f"a line longer than {MAX_LINE_BYTES} bytes; it is skipped")
                    lines[offset] = LINE_TOO_LONG
        return start, lines

    @property
    def line_ending(self) -> str:
        name = {"\n": "LF", "\r\n": "CRLF", "\r\r\n": "CR CR LF", "\r": "CR"}[self.ending]
        return f"{name} (mixed)" if self.mixed_endings else name


_GROUPS = re.Match.groups


def _no_match(_line: str) -> None:
    return None


@dataclass(frozen=True)
class _FastPath:
    """A regex for the common valid record, and where its groups are."""

    match: Callable[[str], re.Match[str] | None]
    amounts: Callable[[tuple[Any, ...]], tuple[Any, ...]]
    amount_groups: tuple[int, ...]
    day_group: int  # EcritureDate, for the first and last dates


def _fast_path(layout: _Layout, optional: frozenset[str]) -> _FastPath:
    """One regex for the common valid record, so most lines are checked at C speed.

    It accepts a subset of valid records (amounts with two decimals, unpadded dates, accounts
    starting with 3 digits); anything else goes to the field-by-field path, which is the
    authority and the one that explains. Groups 0 and 1 are JournalCode and EcritureNum.
    """
    sep = re.escape(layout.separator)
    text = f"[^{sep}]*"
    required_text = f" *[^{sep} ]{text}"
    parts: list[str] = []
    amounts: list[int] = []
    groups = day_group = 0
    for name in layout.names:
        required = name in REQUIRED and name not in optional
        if name in ("journalcode", "ecriturenum"):
            parts.append(f"({required_text})" if required else f"({text})")
            groups += 1
        elif name == "ecrituredate":
            parts.append(f" *({CALENDAR_DATE}) *")
            day_group = groups
            groups += 1
        elif name in REQUIRED_DATES or name in OPTIONAL_DATES:
            parts.append(f" *{CALENDAR_DATE} *" if required else f" *(?:{CALENDAR_DATE})? *")
        elif name in ("debit", "credit", "montant"):
            parts.append(" *(-?\\d+),(\\d\\d) *")  # int(units + cents) keeps the sign
            amounts += [groups, groups + 1]
            groups += 2
        elif name == "sens":
            parts.append(" *([DC]|[+-]1) *")
            amounts.append(groups)
            groups += 1
        elif name == "comptenum":
            parts.append(f" *\\d{{3}}{text}" if required else f"(?: *\\d{{3}}{text})?")
        elif name == "montantdevise":
            parts.append(" *(?:[+-]?\\d+(?:,\\d+)?|\\d+(?:,\\d+)?[+-])? *")  # one sign, before or after
        else:
            parts.append(required_text if required else text)
    return _FastPath(re.compile(sep.join(parts)).fullmatch, itemgetter(*amounts), tuple(amounts), day_group)


class _Checker:
    """Checks records against the layout and keeps the running totals.

    `consume` holds the hot loop: per line, the fast regex, then the booking of the amounts into
    the current entry, all in local variables. Lines the regex does not accept go to `check`,
    the field-by-field path, which reports what is wrong and returns the line's booking.
    """

    def __init__(self, layout: _Layout, findings: _Findings) -> None:
        self.layout = layout
        self.findings = findings
        self.width = len(layout.names)
        index = layout.index
        optional = CASH_OPTIONAL if layout.kind in ("ba", "bnc") else frozenset()
        self.required = [(index[name], DISPLAY[name]) for name in REQUIRED if name not in optional]
        self.required_amounts = (
            [index["montant"], index["sens"]] if layout.kind == "montant_sens" else [index["debit"], index["credit"]]
        )
        self.dates = [(index[name], DISPLAY[name], name not in optional) for name in REQUIRED_DATES]
        self.dates += [(index[name], DISPLAY[name], False) for name in OPTIONAL_DATES if name in index]
        self.i_journal, self.i_num = index["journalcode"], index["ecriturenum"]
        self.i_date, self.i_account = index["ecrituredate"], index["comptenum"]
        self.i_devise = index.get("montantdevise")
        self.valid_dates: set[str] = set()  # date strings already found to be real dates
        self.fast = _fast_path(layout, optional) if layout.legal_order else None
        self.records = 0
        self.entries = 0
        self.total_debit = 0
        self.total_credit = 0
        # Sentinels while reading, so the hot loops compare strings without None checks.
        self.first_date: str | None = NO_DATE_YET[0]
        self.last_date: str | None = NO_DATE_YET[1]
        self.journals: set[str] = set()
        self.open_entries: dict[tuple[str, str], tuple[int, int]] = {}
        self.entry_key: tuple[str, str] | None = None
        self.entry_sum = 0
        self.entry_line = 0
        self.tainted: set[tuple[str, str]] = set()
        self.balance_unknown = False

    def consume(self, batches: Iterable[tuple[int, list[str]]]) -> None:
        """Check every record of every batch (number of its first line, lines).

        A batch whose lines all match the fast regex is checked and booked column-wise with C-level
        map/zip/accumulate; any other batch goes line by line.
        """
        vectorize = self.fast is not None and self.layout.kind != "montant_sens"
        for start, batch in batches:
            if not (vectorize and self._consume_columns(start, batch)):
                self._consume_lines(start, batch)
        if self.entry_sum:
            self.open_entries[self.entry_key] = (self.entry_sum, self.entry_line)  # type: ignore[index]
        if self.last_date == NO_DATE_YET[1]:
            self.first_date = self.last_date = None

    def _consume_columns(self, start: int, batch: list[str]) -> bool:
        """Book a batch of well-formed records column by column; False (nothing done) otherwise."""
        fast = self.fast
        matches = list(map(fast.match, batch))  # type: ignore[union-attr]
        if not matches or None in matches:
            return False
        columns = list(zip(*map(_GROUPS, matches), strict=True))
        d_units, d_cents, c_units, c_cents = (columns[i] for i in fast.amount_groups)  # type: ignore[union-attr]
        debits = list(map(int, map(add, d_units, d_cents)))
        credits = list(map(int, map(add, c_units, c_cents)))
        if any(map(all, zip(debits, credits, strict=True))):
            for offset, pair in enumerate(zip(debits, credits, strict=True)):
                if all(pair):
                    self.findings.add("debit_and_credit", start + offset, "both Debit and Credit are filled",
                                      warning=True)
        journals = list(map(str.strip, columns[0]))
        keys = list(zip(journals, map(str.strip, columns[1]), strict=True))
        days = columns[fast.day_group]  # type: ignore[union-attr]
        self.first_date = min(self.first_date, *days)  # type: ignore[type-var]
        self.last_date = max(self.last_date, *days)  # type: ignore[type-var]
        if len(self.journals) < 1000:
            self.journals.update(journals)
        self.records += len(batch)
        self.total_debit += sum(debits) * CENT
        self.total_credit += sum(credits) * CENT
        prefix = [0, *accumulate(map(sub, debits, credits))]
        starts = [0, *compress(range(1, len(keys)), map(ne, keys[1:], keys[:-1]))]  # where the entry changes
        for first, end in zip(starts, [*starts[1:], len(keys)], strict=True):
            self._book_entry(keys[first], start + first, (prefix[end] - prefix[first]) * CENT)
        return True

    def _book_entry(self, key: tuple[str, str], line: int, amount: int) -> None:
        """Add a run of lines of one entry (debit - credit, in micro-units) to the entries."""
        if key != self.entry_key:
            if self.entry_sum:
                self.open_entries[self.entry_key] = (self.entry_sum, self.entry_line)  # type: ignore[index]
            self.entry_key = key
            self.entries += 1
            self.entry_sum, self.entry_line = self.open_entries.pop(key, (0, line))
        self.entry_sum += amount

    def _consume_lines(self, start: int, batch: list[str]) -> None:  # noqa: PLR0912, PLR0915 - the hot loop
        """Line by line: the fast regex when it matches, else the field-by-field path."""
        fast = self.fast.match if self.fast else _no_match
        get_amounts = self.fast.amounts if self.fast else None
        day_group = self.fast.day_group if self.fast else 0
        slow, open_entries = self.check, self.open_entries
        montant_sens = self.layout.kind == "montant_sens"
        records, entries = self.records, self.entries
        total_debit, total_credit = self.total_debit, self.total_credit
        entry_key, entry_sum, entry_line = self.entry_key, self.entry_sum, self.entry_line
        first_date, last_date = self.first_date, self.last_date
        last_journal = last_number = None
        for number, line in enumerate(batch, start):
            match = fast(line)
            if match is None:
                booking = slow(number, line)
                if booking is None:
                    continue
                key, debit, credit, day = booking
                last_journal = None
            else:
                groups = match.groups()
                amounts = get_amounts(groups)  # type: ignore[misc]
                if montant_sens:
                    debit, credit = int(amounts[0] + amounts[1]) * CENT, 0
                    if amounts[2] in ("C", "-1"):
                        debit, credit = 0, debit
                else:
                    debit = int(amounts[0] + amounts[1]) * CENT
                    credit = int(amounts[2] + amounts[3]) * CENT
                    if debit and credit:
                        self.findings.add("debit_and_credit", number, "both Debit and Credit are filled",
                                          warning=True)
                day = groups[day_group]
                journal, entry_number = groups[0], groups[1]
                if journal == last_journal and entry_number == last_number:
                    key = entry_key
                else:
                    key = (journal.strip(), entry_number.strip())
                    last_journal, last_number = journal, entry_number
            records += 1
            total_debit += debit
            total_credit += credit
            if key != entry_key:
                if entry_sum:
                    open_entries[entry_key] = (entry_sum, entry_line)
                entry_key = key
                entries += 1
                entry_sum, entry_line = open_entries.pop(key, (0, number)) if open_entries else (0, number)
                if len(self.journals) < 1000:
                    self.journals.add(key[0])
            entry_sum += debit - credit
            if day is not None:
                if day < first_date:  # noqa: PLR1730 - cheaper than min() in the hot loop
                    first_date = day
                if day > last_date:  # noqa: PLR1730
                    last_date = day
        self.records, self.entries = records, entries
        self.total_debit, self.total_credit = total_debit, total_credit
        self.entry_key, self.entry_sum, self.entry_line = entry_key, entry_sum, entry_line
        self.first_date, self.last_date = first_date, last_date

    def check(self, number: int, line: str) -> tuple[tuple[str, str], int, int, str | None] | None:
        """The field-by-field path: report what is wrong; return the booking, or None to skip."""
        if line is LINE_TOO_LONG:
            return None
        fields = line.split(self.layout.separator)
        if len(fields) != self.width:
            return self._wrong_width(number, line, fields)
        if fields[0][:1] in "Jj" and fold(fields[0]) == "journalcode":
            self.findings.add("repeated_header", number, "the header is repeated (split file)", warning=True)
            return None
        self._required_and_dates(number, fields)
        debit, credit = self._amounts(number, fields)
        day = fields[self.i_date].strip()
        account = fields[self.i_account].strip()
        if account and not account[:3].isdigit():
            self.findings.add("account_number", number, f"CompteNum {account!r} does not start with 3 digits",
                              column="CompteNum", value=account, warning=True)
        key = (fields[self.i_journal].strip(), fields[self.i_num].strip())
        return key, debit, credit, day if day in self.valid_dates else None

    def _wrong_width(self, number: int, line: str, fields: list[str]) -> None:
        if [fold(name) for name in fields] == self.layout.names:
            self.findings.add("repeated_header", number, "the header is repeated (split file)", warning=True)
        elif not line.strip(" \t|"):
            empty = not line.strip()
            self.findings.add("empty_line" if empty else "only_separators", number,
                              "an empty line" if empty else "a line of separators only", warning=empty)
        else:
            self.findings.add("column_count", number, f"{len(fields)} columns, the header has {self.width}",
                              value=line)
            readable_key = len(fields) > max(self.i_journal, self.i_num)
            self._taint((fields[self.i_journal].strip(), fields[self.i_num].strip()) if readable_key else None)

    def _required_and_dates(self, number: int, fields: list[str]) -> None:
        for position, name in self.required:
            if not fields[position].strip():
                self.findings.add("required_empty", number, f"{name} is empty", column=name)
        for position, name, required in self.dates:
            value = fields[position]
            if value in self.valid_dates:
                continue
            stripped = value.strip()
            if not stripped and not required:
                continue
            if stripped and is_calendar_date(stripped):
                self.valid_dates.update((value, stripped))
                if not ("19" <= stripped[:2] <= "20"):
                    self.findings.add("date_year", number, f"{name} {stripped} is outside 19xx/20xx",
                                      column=name, value=stripped, warning=True)
            elif stripped:
                self.findings.add("invalid_date", number, f"{name} {stripped} is not a date (AAAAMMJJ)",
                                  column=name, value=stripped)

    def _amount(self, number: int, fields: list[str], position: int, name: str) -> int | None:
        value = parse_amount(fields[position])
        if isinstance(value, str):
            messages = {
                "decimal_point": "uses '.' as decimal mark; the FEC requires a comma",
                "thousands_separator": "has a thousands separator",
                "invalid_amount": "is not an amount",
            }
            self.findings.add(value, number, f"{name} {fields[position].strip()!r} {messages[value]}",
                              column=name, value=fields[position])
            self._taint((fields[self.i_journal].strip(), fields[self.i_num].strip()))
            return 0
        return value

    def _amounts(self, number: int, fields: list[str]) -> tuple[int, int]:
        if self.layout.kind == "montant_sens":
            amount = self._amount(number, fields, self.required_amounts[0], "Montant")
            sens = fields[self.required_amounts[1]].strip().upper()
            direction = SENS_VALUES.get(sens)
            if direction is None:
                self.findings.add("invalid_sens", number, f"Sens {sens!r} is not D, C, +1 or -1",
                                  column="Sens", value=sens)
                direction = 1
            if amount is None:
                self.findings.add("required_empty", number, "Montant is empty", column="Montant")
                amount = 0
            debit, credit = (amount, 0) if direction > 0 else (0, amount)
        else:
            debit = self._amount(number, fields, self.required_amounts[0], "Debit")
            credit = self._amount(number, fields, self.required_amounts[1], "Credit")
            if debit is None:
                self.findings.add("required_empty", number, "Debit is empty", column="Debit")
                debit = 0
            if credit is None:
                self.findings.add("required_empty", number, "Credit is empty", column="Credit")
                credit = 0
            if debit and credit:
                self.findings.add("debit_and_credit", number, "both Debit and Credit are filled", warning=True)
        if self.i_devise is not None and fields[self.i_devise].strip():
            self._amount(number, fields, self.i_devise, "Montantdevise")
        return debit, credit

    def _taint(self, key: tuple[str, str] | None) -> None:
        """An entry with an unreadable line has no knowable balance: report the line, not a
        consequence of it. The file total is then unknowable too."""
        self.balance_unknown = True
        if key is not None and len(self.tainted) < MAX_TAINTED_ENTRIES:
            self.tainted.add(key)

    def finish(self) -> None:
        for (journal, number), (balance, line) in sorted(self.open_entries.items(), key=lambda item: item[1][1]):
            if (journal, number) in self.tainted or len(self.tainted) >= MAX_TAINTED_ENTRIES:
                continue
            self.findings.add(
                "unbalanced_entry", line,
                f"entry {journal}/{number} is off by {_format_micro(balance)} (debit - credit)",
                column="EcritureNum", value=f"{journal}/{number}",
            )
        if self.total_debit != self.total_credit and not self.balance_unknown:
            self.findings.add(
                "unbalanced_file", None,
                f"total debit {_format_micro(self.total_debit)} != total credit {_format_micro(self.total_credit)}",
            )


def _iso_day(value: str | None) -> str | None:
    return f"{value[:4]}-{value[4:6]}-{value[6:]}" if value else None


def validate_stream(
    chunks: Iterable[bytes], file_name: str | None = None, *, max_examples_per_rule: int = 20
) -> ValidationReport:
    """Validate a FEC file given as byte chunks (any sizes); read once, in bounded memory."""
    findings = _Findings(max_examples_per_rule)
    if file_name and not FILE_NAME.match(PurePath(file_name).stem):
        findings.add("file_name", None, f"{file_name!r} is not named <SIREN>FEC<AAAAMMJJ>", value=file_name,
                     warning=True)
    reader = _Lines(findings)
    layout: _Layout | None = None
    checker: _Checker | None = None
    header_seen = False
    batches = reader.batches(chunks)
    for start, batch in batches:
        for offset, line in enumerate(batch):
            if line is LINE_TOO_LONG:
                continue
            if not line.strip(" "):
                findings.add("empty_line", start + offset, "an empty line before the header", warning=True)
                continue
            header_seen = True
            layout = _read_header(line, findings)
            if layout is not None:
                checker = _Checker(layout, findings)
                checker.consume(chain([(start + offset + 1, batch[offset + 1:])], batches))
            break
        if header_seen:
            break
    if reader.line_number == 0 and not reader.fatal:
        findings.add("empty_file", None, "the file is empty")
    elif not header_seen and not reader.fatal:
        findings.add("empty_file", None, "the file has only empty lines")
    elif checker is not None:
        checker.finish()
        if checker.records == 0:
            findings.add("no_records", None, "the file has a header but no records")
    return _report(findings, reader, layout, checker, file_name)


def _report(
    findings: _Findings, reader: _Lines, layout: _Layout | None, checker: _Checker | None, file_name: str | None
) -> ValidationReport:
    summary: dict[str, Any] = {
        "records": checker.records if checker else 0,
        "entries": checker.entries if checker else 0,
        "total_debit": _format_micro(checker.total_debit) if checker else "0.00",
        "total_credit": _format_micro(checker.total_credit) if checker else "0.00",
        "first_date": _iso_day(checker.first_date) if checker else None,
        "last_date": _iso_day(checker.last_date) if checker else None,
        "journals": sorted(checker.journals) if checker else [],
        "encoding": ("utf-8-sig" if reader.bom else reader.encoding) if not reader.fatal else None,
        "separator": layout.separator if layout else None,
        "layout": layout.kind if layout else None,
        "line_ending": reader.line_ending if reader.line_number else None,
        "final_newline": reader.final_newline,
        "lines": reader.line_number,
    }
    return ValidationReport(
        valid=not findings.errors,
        errors=findings.errors,
        warnings=findings.warnings,
        counts=dict(findings.counts),
        summary=summary,
        file_name=file_name,
    )


def read_chunks(path: str | os.PathLike[str], size: int = READ_CHUNK) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(size):
            yield chunk


def validate_path(path: str | os.PathLike[str]) -> ValidationReport:
    return validate_stream(read_chunks(path), file_name=PurePath(path).name)
