"""One language for everything a dropper reads: `Wording(language, time zone)`.

The English texts in the code are the message ids; `locale/<language>/LC_MESSAGES/messages.po` holds
their translations. The catalogue is compiled when first used (Babel's `read_po` then `write_mo`, into
memory), so the `.po` file is the only source and a translation is a plain text change: see
docs/translations.md. Texts are marked with `_()` (or `N_()` where they are defined before a
language is known) so `tests/test_language.py` can extract them and check each is translated.

Dates are shown in the firm's time zone (`REPORT_TIMEZONE`) as `04/12/2026 à 20:19`, amounts as
`1 724,54 €` (Babel's CLDR data: a narrow no-break space, a decimal comma), plurals by the
catalogue's plural rule.
"""

from __future__ import annotations

import gettext
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal

from shared.fec.rules import COUNTED_PARAMS, RULES
from shared.platform.settings import DEFAULT_REPORT_LANGUAGE as DEFAULT_LANGUAGE
from shared.platform.settings import DEFAULT_REPORT_TIMEZONE as DEFAULT_TIMEZONE
from shared.platform.settings import REPORT_LANGUAGES as LANGUAGES

SOURCE_LANGUAGE = "en"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
# Babel locales: the language's own conventions, and dd/mm/yyyy in both.
_LOCALES = {"fr": "fr_FR", "en": "en_GB"}
# Rule parameters that are amounts, days (AAAAMMJJ) or texts of the registry to translate in turn.
AMOUNT_PARAMS = frozenset({"debit", "credit", "amount", "difference"})
DAY_PARAMS = frozenset({"closing", "earliest"})
# Rules whose `value` (and other parameters) is a day as the file wrote it, shown as `01/04/2022` too.
DAY_PARAMS_OF_RULE: dict[str, frozenset[str]] = {
    "date_outside_period": frozenset({"value"}),
    "piece_after_entry": frozenset({"value", "entry_date"}),
    "validdate_order": frozenset({"value", "previous"}),
}
TRANSLATED_PARAMS = frozenset({"detail"})
_PLACEHOLDER = re.compile(r"\{[A-Za-z_]+(![rs])?\}")


def N_(text: str) -> str:  # noqa: N802 - the gettext convention for "translated later"
    """Marks a text for the catalogue where it is defined; `Wording._` translates it where shown."""
    return text


def catalogue_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of `language` (English, the source, needs none)."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}: one of {', '.join(LANGUAGES)}")
    if language == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    with catalogue_path(language).open("rb") as source:
        catalogue = read_po(source, locale=language, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def _as_datetime(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _as_day(value: str | date | None) -> date | None:
    if isinstance(value, date):
        return value
    text = (value or "").replace("-", "")
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


@dataclass(frozen=True)
class Wording:
    """The texts, dates and amounts of one language in one time zone."""

    language: str = DEFAULT_LANGUAGE
    timezone: str = DEFAULT_TIMEZONE

    @property
    def locale(self) -> str:
        return _LOCALES[self.language]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _(self, text: str) -> str:
        return translations(self.language).gettext(text)

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        """The form for `count`, with `{n}` replaced by the count written in this language."""
        return translations(self.language).ngettext(singular, plural, count).replace("{n}", self.number(count))

    def number(self, value: int) -> str:
        return format_decimal(value, locale=self.locale)

    def moment(self, value: str | datetime | None) -> str:
        """`04/12/2026 à 20:19` in the firm's time zone; "" when there is none."""
        when = _as_datetime(value)
        if when is None:
            return "" if not value else str(value)
        pattern = self._("dd/MM/yyyy 'at' HH:mm")
        return format_datetime(when, pattern, tzinfo=self.zone, locale=self.locale)

    def day(self, value: str | date | None) -> str:
        """A day (ISO or AAAAMMJJ) as `04/12/2026`; a text that is not a day is returned as it is."""
        when = _as_day(value)
        return format_date(when, "dd/MM/yyyy", locale=self.locale) if when else ("" if value is None else str(value))

    def amount(self, value: Any) -> str:
        """`1 724,54 €`; a text that is not a number is returned as it is."""
        try:
            number = Decimal(str(value))
        except (InvalidOperation, ValueError):
            return "" if value is None else str(value)
        return format_currency(number, "EUR", locale=self.locale)

    def period(self, first: str | None, last: str | None) -> str:
        if not first or not last:
            return ""
        return self._("from {first} to {last}").format(first=self.day(first), last=self.day(last))

    def rule_message(self, finding: dict[str, Any]) -> str:
        """A finding of the validator (`Finding.to_dict()`) in this language, from its rule's message
        in the registry; the stored English message when the rule or a parameter is unknown (a report
        written before its parameters were kept)."""
        rule = RULES.get(finding.get("rule") or "")
        fallback = str(finding.get("message") or "")
        if rule is None:
            return fallback
        params = {"column": finding.get("column"), "value": finding.get("value"), **(finding.get("details") or {})}
        try:
            return self.format_rule(rule.id, params)
        except (KeyError, IndexError, ValueError):
            return fallback

    def format_rule(self, rule_id: str, params: dict[str, Any]) -> str:
        """The rule's message in this language with `params` filled in, each written for a reader."""
        days = DAY_PARAMS | DAY_PARAMS_OF_RULE.get(rule_id, frozenset())
        shown = {name: self._param(name, value, days) for name, value in params.items()}
        return self._(RULES[rule_id].message).format(**shown)

    def _param(self, name: str, value: Any, days: frozenset[str] = DAY_PARAMS) -> Any:
        if isinstance(value, list):
            return ", ".join(str(self._param(name, item, days)) for item in value)
        if name in AMOUNT_PARAMS:
            return self.amount(value)
        if name in days:
            return self.day(value)
        if name in COUNTED_PARAMS:
            return self.ngettext(*COUNTED_PARAMS[name], int(value))
        if name in TRANSLATED_PARAMS and isinstance(value, str):
            return self._(value)
        return value


def wording(language: str = DEFAULT_LANGUAGE, timezone: str = DEFAULT_TIMEZONE) -> Wording:
    """A `Wording`, its language and zone checked (ValueError names what is wrong)."""
    translations(language)
    ZoneInfo(timezone)
    return Wording(language, timezone)


def leftover_placeholder(text: str) -> str | None:
    """A `{name}` left unfilled in a rendered text, if any (tests/test_language.py)."""
    found = _PLACEHOLDER.search(text)
    return found.group(0) if found else None
