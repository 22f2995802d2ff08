"""Every validation rule, defined once: its id, level, message and the columns it reads.

Scopes say who decides a rule:
- `stream`: the byte reader (encoding, line endings, line length), once per file or per line;
- `header`: the header line; `file`: the file as a whole (name, emptiness, total balance);
- `line`: one record's own fields. The fast regex path must refuse every line that breaks one of
  these (so the detailed path reports it): `fast.REFUSES` lists the ones it does, and a layout
  whose fast path does not decide every `line` rule is checked by the detailed path alone;
- `booking`: across lines (entries, order, amount pairs), computed on the columns both paths
  produce, so they cannot disagree.

Why each rule is at its level, and where it differs from the DGFiP's Test Compta Demat:
docs/fec-validation.md.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ERROR = "error"
WARNING = "warning"
VALUE_PREVIEW = 80
# The `detail` of `empty_file`: texts of the catalogue too (shared/language translates this parameter).
EMPTY_FILE = "the file is empty"
ONLY_EMPTY_LINES = "the file has only empty lines"


@dataclass(frozen=True)
class Rule:
    """`message` is the English text and the catalogue's message id (its translations:
    shared/language/locale/, docs/translations.md); `hint` derives from the value the parameters of
    the fix a message suggests (`fixed`, `found`)."""

    id: str
    level: str
    scope: str
    # str.format template; `column` and `value` are always available, the rest are the finding's
    # `details` (a list is written joined by ", ")
    message: str
    columns: tuple[str, ...] = ()
    hint: Callable[[str], dict[str, str]] | None = field(default=None, compare=False)


_GROUPING = re.compile(r"(?<=\d)[ .\u00a0\u202f](?=\d{3})")


def _without_thousands(value: str) -> dict[str, str]:
    """`1 200,00` -> `1200,00`: the same amount without its thousands separators."""
    return {"fixed": _GROUPING.sub("", value.strip())}


def _with_comma(value: str) -> dict[str, str]:
    """`1200.50` -> `1200,50`."""
    return {"fixed": value.strip().replace(".", ",")}


def _separator_found(line: str) -> dict[str, str]:
    """The character the header seems separated by (`;` most often), to name it in the message."""
    counted = Counter(ch for ch in line if ch in ";,:")
    return {"found": counted.most_common(1)[0][0] if counted else ""}


# Parameters that are counts of things, worded with their noun and its plural (the language layer
# through its catalogue, the stored English message here): `line_count` 1 is `1 line`, 3 `3 lines`.
COUNTED_PARAMS: dict[str, tuple[str, str]] = {"line_count": ("{n} line", "{n} lines")}


def _worded(name: str, item: Any) -> Any:
    if isinstance(item, list):
        return ", ".join(map(str, item))
    if name in COUNTED_PARAMS and isinstance(item, int):
        return COUNTED_PARAMS[name][item != 1].replace("{n}", str(item))
    return item


def _rules(*rules: Rule) -> dict[str, Rule]:
    return {rule.id: rule for rule in rules}


RULES: dict[str, Rule] = _rules(
    Rule("utf16", ERROR, "stream", "the file is UTF-16; FEC files must be UTF-8, ISO 8859-15 or ASCII"),
    Rule("not_text", ERROR, "stream", "the file contains NUL bytes: it is binary, not a FEC text file"),
    Rule("nul_byte", ERROR, "stream", "NUL bytes in the text"),
    Rule("mixed_encoding", WARNING, "stream", "bytes that are not UTF-8 after UTF-8 text; read as ISO 8859-15"),
    Rule("line_too_long", ERROR, "stream", "a line longer than {limit} bytes; it is skipped"),
    Rule("line_ending_cr_cr_lf", WARNING, "stream",
         "lines end with CR CR LF: many readers see an empty line after every record"),
    Rule("file_name", WARNING, "file", "{value!r} is not named <SIREN>FEC<AAAAMMJJ>"),
    Rule("empty_file", ERROR, "file", "{detail}"),
    Rule("no_records", ERROR, "file", "the file has a header but no records"),
    Rule("unbalanced_file", ERROR, "file", "total debit {debit} != total credit {credit}", ("Debit", "Credit")),
    Rule("header_separator", ERROR, "header",
         "the header has no TAB or | separator (found {found!r}): save the file with | or TAB between columns",
         hint=_separator_found),
    Rule("header_missing_column", ERROR, "header", "missing column(s): {missing}"),
    Rule("header_column_order", WARNING, "header", "the 18 FEC columns are not in the legal order"),
    Rule("header_name_folded", WARNING, "header",
         "{value!r} is read as {column} only by folding case or accents the DGFiP's checker does not fold"),
    Rule("trailing_separator", WARNING, "header", "every line ends with a separator"),
    Rule("empty_line", WARNING, "line", "an empty line"),
    Rule("only_separators", ERROR, "line", "a line of separators only"),
    Rule("repeated_header", WARNING, "line", "the header is repeated (split file)"),
    Rule("column_count", ERROR, "line", "{count} columns, the header has {width}"),
    Rule("required_empty", ERROR, "line", "{column} is empty",
         ("JournalCode", "JournalLib", "EcritureNum", "EcritureDate", "CompteNum", "CompteLib", "PieceRef",
          "PieceDate", "EcritureLib", "ValidDate")),
    Rule("invalid_date", ERROR, "line", "{column} {value} is not a date (AAAAMMJJ)",
         ("EcritureDate", "PieceDate", "ValidDate", "DateLet", "DateRglt")),
    Rule("date_year", WARNING, "line", "{column} {value} is outside 19xx/20xx",
         ("EcritureDate", "PieceDate", "ValidDate", "DateLet", "DateRglt")),
    Rule("decimal_point", ERROR, "line",
         "{column} {value!r} uses '.' as decimal mark; the FEC requires a comma: write {fixed!r}",
         ("Debit", "Credit", "Montant", "Montantdevise"), _with_comma),
    Rule("thousands_separator", ERROR, "line", "{column} {value!r} has a thousands separator: write {fixed!r}",
         ("Debit", "Credit", "Montant", "Montantdevise"), _without_thousands),
    Rule("invalid_amount", ERROR, "line", "{column} {value!r} is not an amount",
         ("Debit", "Credit", "Montant", "Montantdevise")),
    Rule("invalid_sens", ERROR, "line", "Sens {value!r} is not D, C, +1 or -1", ("Sens",)),
    Rule("account_number", WARNING, "line", "CompteNum {value!r} does not start with 3 digits", ("CompteNum",)),
    Rule("devise_without_idevise", WARNING, "line", "Montantdevise {value!r} is filled but Idevise is empty",
         ("Montantdevise", "Idevise")),
    Rule("debit_and_credit", WARNING, "booking", "both Debit and Credit are filled", ("Debit", "Credit")),
    Rule("zero_amounts", WARNING, "booking", "Debit and Credit are both zero (or empty)",
         ("Debit", "Credit", "Montant")),
    Rule("piece_after_entry", WARNING, "booking", "PieceDate {value} is after EcritureDate {entry_date}",
         ("PieceDate", "EcritureDate")),
    Rule("validdate_order", WARNING, "booking", "ValidDate {value} is before {previous}", ("ValidDate",)),
    Rule("ecriturenum_gap", WARNING, "booking",
         "EcritureNum {value!r} follows {previous!r} in {sequence}: {missing} number(s) missing",
         ("JournalCode", "EcritureNum")),
    Rule("unbalanced_entry", ERROR, "booking",
         "entry {number!r} of journal {journal!r} is unbalanced: debit {debit}, credit {credit},"
         " difference {difference}; {line_count}: {lines}",
         ("JournalCode", "EcritureNum", "Debit", "Credit", "Montant", "Sens")),
    Rule("date_outside_period", WARNING, "booking",
         "EcritureDate {value} is not in the fiscal year the file name closes on {closing}"
         " (24 months at most: from {earliest})",
         ("EcritureDate",)),
)


def counts_by_level(counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """Per-rule counts split by level, `{"errors": {...}, "warnings": {...}}`: the `rules` dimension
    of import.validated / import.rejected (a query can read either part alone). A rule no longer in
    the registry (a count stored by an older version) is left out."""
    split: dict[str, dict[str, int]] = {"errors": {}, "warnings": {}}
    for rule, count in sorted(counts.items()):
        if rule in RULES:
            split["errors" if RULES[rule].level == ERROR else "warnings"][rule] = count
    return split


def rules_of(scope: str) -> frozenset[str]:
    return frozenset(rule.id for rule in RULES.values() if rule.scope == scope)


def preview(value: str | None) -> str | None:
    if value is None:
        return None
    return value if len(value) <= VALUE_PREVIEW else value[:VALUE_PREVIEW] + "..."


@dataclass(frozen=True)
class Finding:
    rule: str
    line: int | None
    column: str | None
    value: str | None
    message: str
    severity: str = ERROR
    # the message's values, as data (a renderer words them in its language)
    details: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        found = {"rule": self.rule, "line": self.line, "column": self.column, "value": self.value,
                 "message": self.message}
        if self.details:
            found["details"] = dict(self.details)
        return found


class Findings:
    """Counts every occurrence; keeps only the first `limit` of each rule, formatted from the registry."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: Counter[str] = Counter()
        self.errors: list[Finding] = []
        self.warnings: list[Finding] = []

    def add(self, rule_id: str, line: int | None, *, column: str | None = None, value: str | None = None,
            **details: Any) -> None:
        self.counts[rule_id] += 1
        if self.counts[rule_id] > self.limit:
            return
        rule = RULES[rule_id]
        shown = preview(value)
        if rule.hint is not None and value is not None:
            details = {**rule.hint(value), **details}
        worded = {name: _worded(name, item) for name, item in details.items()}
        message = rule.message.format(column=column, value=shown, **worded)
        target = self.errors if rule.level == ERROR else self.warnings
        target.append(Finding(rule_id, line, column, shown, message, rule.level, details))
