"""The fast path: one regex per layout that accepts the common, well-formed record at C speed.

It accepts a subset of valid records (amounts with two decimals, unpadded calendar dates in
1900-2099 except 29 February, accounts starting with 3 digits, Montantdevise only with Idevise),
so a line it accepts breaks none of the `line` rules in REFUSES; anything else goes to the
detailed path (checks.Checker.check), which is the authority and the one that explains.
Cross-line (`booking`) rules are computed on the columns both paths produce.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from shared.fec.layout import OPTIONAL_DATES, REQUIRED, REQUIRED_DATES, Layout
from shared.fec.rules import rules_of

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
NUL = "\x00"  # the batch regex reads lines joined by the separator then NUL
SPACES = " *+"  # possessive: a value never starts with a space
DEVISE_AMOUNT = r"(?:[+-]?\d+(?:,\d+)?|\d+(?:,\d+)?[+-])"  # one sign, before or after


def decides_every_line_rule() -> bool:
    return rules_of("line") <= REFUSES


@dataclass(frozen=True)
class FastPath:
    """The compiled regexes, and where the line regex's groups are: 0 JournalCode, 1 EcritureNum,
    then the dates (EcritureDate, PieceDate, ValidDate) and the amounts (Debit/Credit units and
    cents, or Montant units, cents and Sens).

    `batch` accepts a batch of lines joined by the separator and NUL only when `match` accepts every line. It
    is the same record without groups, and stricter: the values read from its columns (JournalCode,
    EcritureNum, the dates, Sens) have no blanks around them, so they are used as split. No value it
    accepts starts with NUL, and lines hold none (shared.fec.lines removes them; its LINE_TOO_LONG mark
    starts with one, and matches no record), so a record can never run over a joint: the regex
    meets every joint between two records, and each record is one line. One call checks a whole
    batch, with no match object per line, and the joined text splits into the batch's columns.
    """

    match: Callable[[str], re.Match[str] | None]
    batch: Callable[[str], re.Match[str] | None]
    day: int
    piece: int
    valid: int
    amounts: tuple[int, ...]


class _Builder:
    def __init__(self, layout: Layout, optional: frozenset[str], *, capture: bool) -> None:
        self.optional = optional
        self.capture = capture
        sep = re.escape(layout.separator)
        self.sep = sep
        # Possessive (`*+`): what follows a value or its spaces can never be part of it, so giving
        # characters back could not help a match; the regex then keeps no state to try it.
        # `[^sep]` is the regex engine's fastest loop; in the batch regex no value starts with NUL.
        self.text = f"[^{sep}]*+" if capture else f"(?!\\x00)[^{sep}]*+"
        # Spaces only before a required value: other blanks (NBSP...) are left to the detailed path,
        # which strips them too; refusing a valid line is always safe, accepting an invalid one never.
        self.required_text = f"{SPACES}[^{sep}\\s\\x00][^{sep}]*+"
        # The values the batch path uses as split: no blanks around them (nor inside a key).
        self.spaces = SPACES if capture else ""
        self.key = self.required_text if capture else f"[^{sep}\\s\\x00]++"
        self.optional_key = self.text if capture else f"[^{sep}\\s\\x00]*+"
        self.groups = 0
        self.where: dict[str, int] = {}
        self.amounts: list[int] = []

    def group(self, name: str, *patterns: str) -> list[str]:
        """Each pattern as a group: capturing in the line regex, plain in the batch regex."""
        self.where[name] = self.groups
        self.groups += len(patterns)
        opening = "(" if self.capture else "(?:"
        return [f"{opening}{pattern})" for pattern in patterns]

    def part(self, name: str, following: str | None) -> str:  # noqa: PLR0911 - one case a column
        required = name in REQUIRED and name not in self.optional
        if name in ("journalcode", "ecriturenum"):
            return self.group(name, self.key if required else self.optional_key)[0]
        if name in REQUIRED_DATES:
            date, spaces = self.group(name, CALENDAR_DATE)[0], self.spaces
            return f"{spaces}{date}{spaces}" if required else f"{spaces}{date}?{spaces}"
        if name in OPTIONAL_DATES:
            return f"{SPACES}(?:{CALENDAR_DATE})?{SPACES}"
        if name in ("debit", "credit", "montant"):
            self.amounts += [self.groups, self.groups + 1]
            units, cents = self.group(name, "-?\\d+", "\\d\\d")
            return f"{SPACES}{units},{cents}{SPACES}"
        if name == "sens":
            self.amounts.append(self.groups)
            return f"{self.spaces}{self.group(name, '[DC]|[+-]1')[0]}{self.spaces}"
        if name == "comptenum":
            return f"{SPACES}\\d{{3}}{self.text}" if required else f"(?:{SPACES}\\d{{3}}{self.text})?"
        if name == "montantdevise" and following == "idevise":
            zero_or_blank = f"{SPACES}(?:[+-]?0+(?:,0+)?{SPACES})?"
            filled = f"{SPACES}{DEVISE_AMOUNT}{SPACES}"
            return f"(?:{zero_or_blank}{self.sep}{self.text}|{filled}{self.sep}{self.required_text})"
        if name == "montantdevise":
            return f"{SPACES}{DEVISE_AMOUNT}?{SPACES}"
        return self.required_text if required else self.text

    def record(self, names: list[str]) -> str:
        parts: list[str] = []
        for position, name in enumerate(names):
            if name == "idevise" and position and names[position - 1] == "montantdevise":
                continue  # read together with Montantdevise: Idevise is required only when it is filled
            following = names[position + 1] if position + 1 < len(names) else None
            parts.append(self.part(name, following))
        return self.sep.join(parts)


def build(layout: Layout, optional: frozenset[str]) -> FastPath | None:
    """The layout's fast path, or None when it cannot decide every `line` rule."""
    if not layout.legal_order or not decides_every_line_rule():
        return None
    line = _Builder(layout, optional, capture=True)
    record = line.record(layout.names)
    plain = _Builder(layout, optional, capture=False).record(layout.names)
    # Possessive: a batch's lines are never read again, so no backtracking state is kept per line.
    batch = re.compile(f"(?:{plain}{line.sep}\\x00)*+{plain}").fullmatch
    where = line.where
    return FastPath(re.compile(record).fullmatch, batch, where["ecrituredate"], where["piecedate"],
                    where["validdate"], tuple(line.amounts))
