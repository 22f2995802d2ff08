"""Builds valid FEC files in every layout, separator, encoding and line ending, for tests."""

from __future__ import annotations

from dataclasses import dataclass, field

STANDARD_HEADER = [
    "JournalCode", "JournalLib", "EcritureNum", "EcritureDate", "CompteNum", "CompteLib", "CompAuxNum",
    "CompAuxLib", "PieceRef", "PieceDate", "EcritureLib", "Debit", "Credit", "EcritureLet", "DateLet",
    "ValidDate", "Montantdevise", "Idevise",
]
LAYOUTS = ("standard", "montant_sens", "ba", "bnc")
ENCODINGS = ("utf-8", "utf-8-sig", "iso-8859-15")
SEPARATORS = ("\t", "|")
LINE_ENDINGS = ("\n", "\r\n", "\r\r\n", "\r")


def header_for(layout: str) -> list[str]:
    names = list(STANDARD_HEADER)
    if layout == "montant_sens":
        names[11:13] = ["Montant", "Sens"]
    if layout in ("ba", "bnc"):
        names += ["DateRglt", "ModeRglt", "NatOp"]
    if layout == "bnc":
        names.append("IdClient")
    return names


def cents(amount: int) -> str:
    return f"{amount // 100},{amount % 100:02d}"


@dataclass
class FecSpec:
    """A balanced FEC: `entries` is a list of lists of (account, debit_cents, credit_cents)."""

    layout: str = "standard"
    separator: str = "\t"
    encoding: str = "utf-8"
    line_ending: str = "\n"
    final_newline: bool = True
    entries: list[list[tuple[str, int, int]]] = field(
        default_factory=lambda: [[("401000", 0, 12000), ("607000", 10000, 0), ("445660", 2000, 0)]]
    )
    label: str = "Facture été"

    def rows(self) -> list[list[str]]:
        rows = [header_for(self.layout)]
        for number, lines in enumerate(self.entries, start=1):
            for account, debit, credit in lines:
                rows.append(self._row(number, account, debit, credit))
        return rows

    def _row(self, number: int, account: str, debit: int, credit: int) -> list[str]:
        day = f"2024{(number % 12) + 1:02d}{(number % 28) + 1:02d}"
        row = ["AC", "Achats", str(number), day, account, f"Compte {account}", "", "", f"F{number}", day,
               self.label, cents(debit), cents(credit), "", "", "20250115", "", ""]
        if self.layout == "montant_sens":
            row[11:13] = [cents(debit or credit), "D" if debit else "C"]
        if self.layout in ("ba", "bnc"):
            row += [day, "CH", ""]
        if self.layout == "bnc":
            row.append("")
        return row

    def render(self, rows: list[list[str]] | None = None) -> bytes:
        text = self.line_ending.join(self.separator.join(row) for row in (rows or self.rows()))
        if self.final_newline:
            text += self.line_ending
        return text.encode(self.encoding)
