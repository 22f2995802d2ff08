"""The fast path: one regex per layout that accepts the common, well-formed record at C speed.

It accepts a subset of valid records (amounts with two decimals, unpadded calendar dates in
1900-2099 except 29 February, accounts starting with 3 digits, Montantdevise only with Idevise),
so a line it accepts breaks none of the `line` rules in REFUSES; anything else goes to the
detailed path (fec_checks.Checker.check), which is the authority and the one that explains.
Cross-line (`booking`) rules are computed on the columns both paths produce.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from shared.fec_layout import OPTIONAL_DATES, REQUIRED, REQUIRED_DATES, Layout
from shared.fec_rules import rules_of

# The `line` rules a line accepted by the fast regex cannot break. The checker uses the fast path
# only if this covers every `line` rule of the registry: a new rule is safe (slow) until added here.
REFUSES = frozenset({
    "empty_line", "only_separators", "repeated_header", "column_count", "required_empty", "invalid_date",
    "date_year", "decimal_point", "thousands_separator", "invalid_amount", "invalid_sens", "account_number",
    "devise_without_idevise",
})
# AAAAMMJJ in 1900-2099 that is a real date, except 29 February (left to the detailed path).
CALENDAR_DATE = (
    r"(?:19|20)\d\d(?:(?:0[1-9]|1[0-2])(?:0[1-9]|1\d|2[0-8])|(?:0[13-9]|1[0-2])(?:29|30)|(?:0[13578]|1[02])31)"
)
DEVISE_AMOUNT = r"(?:[+-]?\d+(?:,\d+)?|\d+(?:,\d+)?[+-])"  # one sign, before or after


def decides_every_line_rule() -> bool:
    return rules_of("line") <= REFUSES


@dataclass(frozen=True)
class FastPath:
    """The compiled regex and where its groups are: 0 JournalCode, 1 EcritureNum, then the dates
    (EcritureDate, PieceDate, ValidDate) and the amounts (Debit/Credit units and cents, or
    Montant units, cents and Sens)."""

    match: Callable[[str], re.Match[str] | None]
    day: int
    piece: int
    valid: int
    amounts: tuple[int, ...]


class _Builder:
    def __init__(self, layout: Layout, optional: frozenset[str]) -> None:
        self.optional = optional
        sep = re.escape(layout.separator)
        self.sep = sep
        self.text = f"[^{sep}]*"
        # Spaces only before a required value: other blanks (NBSP...) are left to the detailed path,
        # which strips them too; refusing a valid line is always safe, accepting an invalid one never.
        self.required_text = f" *[^{sep}\\s]{self.text}"
        self.groups = 0
        self.where: dict[str, int] = {}
        self.amounts: list[int] = []

    def group(self, name: str, pattern: str, count: int = 1) -> str:
        self.where[name] = self.groups
        self.groups += count
        return pattern

    def part(self, name: str, following: str | None) -> str:  # noqa: PLR0911 - one case a column
        required = name in REQUIRED and name not in self.optional
        if name in ("journalcode", "ecriturenum"):
            return self.group(name, f"({self.required_text})" if required else f"({self.text})")
        if name in REQUIRED_DATES:
            date = f" *({CALENDAR_DATE}) *" if required else f" *({CALENDAR_DATE})? *"
            return self.group(name, date)
        if name in OPTIONAL_DATES:
            return f" *(?:{CALENDAR_DATE})? *"
        if name in ("debit", "credit", "montant"):
            self.amounts += [self.groups, self.groups + 1]
            return self.group(name, " *(-?\\d+),(\\d\\d) *", 2)
        if name == "sens":
            self.amounts.append(self.groups)
            return self.group(name, " *([DC]|[+-]1) *")
        if name == "comptenum":
            return f" *\\d{{3}}{self.text}" if required else f"(?: *\\d{{3}}{self.text})?"
        if name == "montantdevise" and following == "idevise":
            zero_or_blank = " *(?:[+-]?0+(?:,0+)? *)?"
            filled = f" *{DEVISE_AMOUNT} *"
            return f"(?:{zero_or_blank}{self.sep}{self.text}|{filled}{self.sep}{self.required_text})"
        if name == "montantdevise":
            return f" *{DEVISE_AMOUNT}? *"
        return self.required_text if required else self.text


def build(layout: Layout, optional: frozenset[str]) -> FastPath | None:
    """The layout's fast path, or None when it cannot decide every `line` rule."""
    if not layout.legal_order or not decides_every_line_rule():
        return None
    builder = _Builder(layout, optional)
    parts: list[str] = []
    names = layout.names
    for position, name in enumerate(names):
        if name == "idevise" and position and names[position - 1] == "montantdevise":
            continue  # read together with Montantdevise: Idevise is required only when it is filled
        following = names[position + 1] if position + 1 < len(names) else None
        parts.append(builder.part(name, following))
    where = builder.where
    return FastPath(re.compile(builder.sep.join(parts)).fullmatch, where["ecrituredate"], where["piecedate"],
                    where["validdate"], tuple(builder.amounts))
