"""The FEC's columns, the header line, and the value formats (dates, amounts).

Format reference: docs/fec-validation.md (article A47 A-1 LPF, and the DGFiP's Test Compta Demat).
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from shared.fec.rules import Findings

MICRO = 1_000_000
CENT = MICRO // 100

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
THOUSANDS = re.compile(r"[+-]?\d{1,3}([ .\u00a0\u202f]\d{3})+(,\d+)?[+-]?")
DOT_DECIMAL = re.compile(r"[+-]?\d*\.\d+[+-]?")
FILE_NAME = re.compile(r"(?i)^\d{9}FEC\d{8}$")
CLOSING_IN_NAME = re.compile(r"(?i)\dFEC(\d{8})$")  # a name ending <SIREN>FEC<AAAAMMJJ>, the SIREN even if malformed
PERIOD_MONTHS = 24  # the longest fiscal year (a first one, exceptionally): docs/fec-validation.md
NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def fold(name: str) -> str:
    """Header name matching: case-insensitive, every accent folded (a superset of the DGFiP's)."""
    decomposed = unicodedata.normalize("NFKD", name.strip().strip("\ufeff"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def dgfip_fold(name: str) -> str:
    """What the DGFiP's checker compares: only lower-case é and è folded, other non-alphanumerics
    turned to `_`, then upper-cased."""
    return NOT_ALNUM.sub("_", name.strip().strip("\ufeff").replace("é", "e").replace("è", "e")).upper()


def is_calendar_date(text: str) -> bool:
    if len(text) != 8 or not text.isdigit():
        return False
    try:
        date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return False
    return True


def is_zero_date(text: str) -> bool:
    """`0`, `00000000`: the DGFiP's checker reads an all-zero optional date as blank."""
    return bool(text) and not text.strip("0")


def fiscal_period(stem: str) -> tuple[str, str] | None:
    """(earliest, closing) EcritureDate, as AAAAMMJJ, for a file whose name ends in
    `<SIREN>FEC<AAAAMMJJ>`: the closing date, and PERIOD_MONTHS before it (the same day of the month,
    or the month's last). None when the name gives no real date."""
    found = CLOSING_IN_NAME.search(stem)
    if found is None or not is_calendar_date(found.group(1)):
        return None
    closing = found.group(1)
    year, month, day = int(closing[:4]) - PERIOD_MONTHS // 12, int(closing[4:6]), int(closing[6:])
    day = min(day, calendar.monthrange(year, month)[1])
    return f"{year:04d}{month:02d}{day:02d}", closing


def parse_amount(text: str) -> int | str | None:
    """Micro-units as an int; None if blank; the id of the broken rule (a str) if malformed."""
    value = text.strip()  # every Unicode space, the no-break ones included (the DGFiP reads U+00A0 as a space)
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


def format_micro(value: int) -> str:
    amount = Decimal(value) / MICRO
    cents = amount.quantize(Decimal("0.01"))
    return str(cents if amount == cents else amount.normalize())


@dataclass
class Layout:
    names: list[str]
    separator: str
    kind: str
    trailing: bool
    legal_order: bool = True
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {name: position for position, name in enumerate(self.names) if name}


def read_header(line: str, findings: Findings) -> Layout | None:
    separator = "\t" if "\t" in line else "|" if "|" in line else None
    if separator is None:
        findings.add("header_separator", 1, value=line)
        return None
    raw = line.split(separator)
    names = [fold(name) for name in raw]
    trailing = len(names) > 1 and names[-1] == ""
    if trailing:
        findings.add("trailing_separator", 1)
    expected = list(STANDARD)
    kind = "standard"
    if "montant" in names and "sens" in names and "debit" not in names:
        expected[11:13] = ["montant", "sens"]
        kind = "montant_sens"
    missing = [name for name in expected if name not in names]
    if missing:
        findings.add("header_missing_column", 1, value=line,
                     missing=", ".join(DISPLAY.get(name, name) for name in missing))
        return None
    _check_folding(raw, names, findings)
    legal_order = names[: len(expected)] == expected
    if not legal_order:
        findings.add("header_column_order", 1, value=line)
    rest = names[len(expected):]
    if tuple(rest[: len(BNC_EXTRA)]) == BNC_EXTRA:
        kind = "bnc"
    elif tuple(rest[: len(BA_EXTRA)]) == BA_EXTRA:
        kind = "ba"
    return Layout(names, separator, kind, trailing, legal_order)


def _check_folding(raw: list[str], names: list[str], findings: Findings) -> None:
    for spelled, name in zip(raw, names, strict=True):
        if name in DISPLAY and dgfip_fold(spelled) != name.upper():
            findings.add("header_name_folded", 1, column=DISPLAY[name], value=spelled.strip())
