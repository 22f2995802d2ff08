"""Streaming FEC validator: reads a byte stream once, in bounded memory, and explains what is wrong.

Rules: ../shared/docs/fec-format.md (article A47 A-1 LPF and the DGFiP's Test Compta Demat).
Errors block the import; warnings are recorded and the file is still sent.

How it stays fast and bounded: bytes are cut into complete lines and decoded a batch at a time
(C speed); each record is split once; date strings are checked once each (they repeat); amounts
are summed as integers of micro-units, never floats; an entry (JournalCode, EcritureNum) is
checked when the next one starts, and only unbalanced ones are kept, so memory does not grow
with the file when entries are contiguous, as they are in practice.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import PurePath
from typing import Any

MAX_LINE_BYTES = 64 * 1024
READ_CHUNK = 1024 * 1024
VALUE_PREVIEW = 80
MICRO = 1_000_000
MAX_TAINTED_ENTRIES = 100_000

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
    if names[: len(expected)] != expected:
        findings.add("header_column_order", 1, "the 18 FEC columns are not in the legal order", value=line,
                     warning=True)
    rest = names[len(expected):]
    if tuple(rest[: len(BNC_EXTRA)]) == BNC_EXTRA:
        kind = "bnc"
    elif tuple(rest[: len(BA_EXTRA)]) == BA_EXTRA:
        kind = "ba"
    return _Layout(names, separator, kind, trailing)


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
        self.endings: Counter[str] = Counter()
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

    def _split(self, data: bytes) -> list[str]:
        text = self._decode(data)
        if "\x00" in text:
            self.findings.add("nul_byte", self.line_number + 1, "NUL bytes in the text")
            text = text.replace("\x00", "")
        lines = text.split(self.newline.decode())  # type: ignore[union-attr]
        if self.newline == b"\n":
            stripped = [line.rstrip("\r") for line in lines]
            self.endings["crlf"] += sum(1 for line in lines if line.endswith("\r"))
            self.endings["crcrlf"] += sum(1 for line in lines if line.endswith("\r\r"))
            return stripped
        return lines

    def lines(self, chunks: Iterable[bytes]) -> Iterator[tuple[int, str]]:  # noqa: PLR0912 - one streaming loop
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
            if self.newline is None:
                self.newline = b"\n" if b"\n" in chunk else b"\r" if b"\r" in chunk else None
            data = carry + chunk
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
            yield from self._numbered(complete)
        if first:
            return
        if carry:
            self.final_newline = False
            if skipping:
                return
            if self.newline is None:
                self.newline = b"\n"
            yield from self._numbered(carry)

    def _numbered(self, data: bytes) -> Iterator[tuple[int, str]]:
        for line in self._split(data):
            self.line_number += 1
            if len(line) > MAX_LINE_BYTES:
                self.findings.add("line_too_long", self.line_number,
                                  f"a line longer than {MAX_LINE_BYTES} bytes; it is skipped")
                continue
            yield self.line_number, line

    @property
    def line_ending(self) -> str:
        if self.newline == b"\r":
            return "CR"
        if self.endings["crcrlf"]:
            return "CR CR LF"
        return "CRLF" if self.endings["crlf"] else "LF"


class _Checker:
    """Checks records against the layout and keeps the running totals."""

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
        self.valid_dates: set[str] = set()
        self.records = 0
        self.entries = 0
        self.total_debit = 0
        self.total_credit = 0
        self.first_date: str | None = None
        self.last_date: str | None = None
        self.journals: set[str] = set()
        self.entry_key: tuple[str, str] | None = None
        self.entry_sum = 0
        self.entry_line = 0
        self.open_entries: dict[tuple[str, str], tuple[int, int]] = {}
        self.tainted: set[tuple[str, str]] = set()
        self.balance_unknown = False

    def check(self, number: int, line: str) -> None:
        fields = line.split(self.layout.separator)
        if len(fields) != self.width:
            if [fold(name) for name in fields] == self.layout.names:
                self.findings.add("repeated_header", number, "the header is repeated (split file)", warning=True)
                return
            if not line.strip(" \t|"):
                rule = "empty_line" if not line.strip() else "only_separators"
                self.findings.add(rule, number, "an empty line" if rule == "empty_line" else "a line of separators",
                                  warning=rule == "empty_line")
                return
            self.findings.add("column_count", number, f"{len(fields)} columns, the header has {self.width}",
                              value=line)
            readable_key = len(fields) > max(self.i_journal, self.i_num)
            self._taint((fields[self.i_journal].strip(), fields[self.i_num].strip()) if readable_key else None)
            return
        if fields[0].strip().lower() == "journalcode" and fold(fields[0]) == "journalcode":
            self.findings.add("repeated_header", number, "the header is repeated (split file)", warning=True)
            return
        self.records += 1
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
                self.valid_dates.add(value)
                if not ("19" <= stripped[:2] <= "20"):
                    self.findings.add("date_year", number, f"{name} {stripped} is outside 19xx/20xx",
                                      column=name, value=stripped, warning=True)
            elif stripped:
                self.findings.add("invalid_date", number, f"{name} {stripped} is not a date (AAAAMMJJ)",
                                  column=name, value=stripped)
        self._amounts(number, fields)
        self._summary(number, fields)

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

    def _amounts(self, number: int, fields: list[str]) -> None:
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
        self.total_debit += debit
        self.total_credit += credit
        key = (fields[self.i_journal].strip(), fields[self.i_num].strip())
        if key != self.entry_key:
            self._close_entry()
            self.entry_key = key
            self.entries += 1
            self.entry_sum, self.entry_line = self.open_entries.pop(key, (0, number))
        self.entry_sum += debit - credit

    def _taint(self, key: tuple[str, str] | None) -> None:
        """An entry with an unreadable line has no knowable balance: report the line, not a
        consequence of it. The file total is then unknowable too."""
        self.balance_unknown = True
        if key is not None and len(self.tainted) < MAX_TAINTED_ENTRIES:
            self.tainted.add(key)

    def _close_entry(self) -> None:
        if self.entry_key is not None and self.entry_sum:
            self.open_entries[self.entry_key] = (self.entry_sum, self.entry_line)

    def _summary(self, number: int, fields: list[str]) -> None:
        day = fields[self.i_date].strip()
        if day in self.valid_dates or is_calendar_date(day):
            if self.first_date is None or day < self.first_date:
                self.first_date = day
            if self.last_date is None or day > self.last_date:
                self.last_date = day
        if len(self.journals) < 1000:
            self.journals.add(fields[self.i_journal].strip())
        account = fields[self.i_account].strip()
        if account and not account[:3].isdigit():
            self.findings.add("account_number", number, f"CompteNum {account!r} does not start with 3 digits",
                              column="CompteNum", value=account, warning=True)

    def finish(self) -> None:
        self._close_entry()
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
    for number, line in reader.lines(chunks):
        if checker is not None:
            checker.check(number, line)
        elif not header_seen:
            if not line.strip(" "):
                findings.add("empty_line", number, "an empty line before the header", warning=True)
                continue
            header_seen = True
            layout = _read_header(line, findings)
            if layout is None:
                break
            checker = _Checker(layout, findings)
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
