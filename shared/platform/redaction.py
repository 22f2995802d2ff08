"""The one place secrets and control characters are taken out of text that is stored or shown.

`redact_text` is applied to everything the app writes for people: log events, ledger fields
(errors, history notes), CLI output and Loop error messages. It removes SAS signatures and other
secrets in query strings or `name=value` pairs, secret headers quoted as `name: value`, secrets as
quoted fields (`{"sig": "..."}`, `"x-apikey": "..."`), and the secret values the app was
configured with (Loop keys, account key), wherever they appear. It is applied to a whole text
before any cut (`redacted_cut`): a secret cut in two is no longer recognisable.
Signed URLs of other clouds are covered too (a Loop deposit URL need not be Azure's): S3's
`X-Amz-Signature` / `X-Amz-Credential` / `X-Amz-Security-Token`, GCS's `X-Goog-Signature`, a plain
`signature=`. `RedactingFilter` applies the same cleaning to records of libraries' loggers that
print request URLs (urllib3 logs every request line at DEBUG, query string included).
`printable` escapes control characters so a blob name cannot forge a second log or output line.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable

REDACTED = "REDACTED"
# Names of secrets to hide, not secrets.
_SECRET_NAMES = "|".join((
    "sig", "code", "x-apikey", "api-key", "apikey", "subscription-key", "ocp-apim-subscription-key", "accountkey",
    "sharedaccesssignature", "password", "secret", "client_secret", "token", "access_token",
    "signature", "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-signature",
    "x-goog-credential",
))
# `name=value` in a query string or a text, also URL-encoded (`%26sig%3D...` when a URL is quoted
# inside another URL): the name starts after a separator, the value ends at the next one.
_NAME_VALUE = re.compile(
    rf"(?i)(?:(?<=%26)|(?<=%3F)|(?<![A-Za-z0-9_-]))({_SECRET_NAMES})(=|%3D)(.+?)(?=%26|&|[\s\"';,]|$)"
)
_HEADER = re.compile(
    r"(?i)(?<![A-Za-z0-9_-])(x-apikey|api-key|apikey|subscription-key|ocp-apim-subscription-key|authorization)"
    r"(\s*:\s*)([^\r\n\"',;]+)"
)
# A secret as a quoted field, `"sig": "..."` (JSON) or `'sig': '...'` (a Python repr), also with
# escaped quotes (`\"sig\": \"...\"`, JSON quoted inside JSON). The value runs to its closing quote,
# or to the end of the line when the text was cut before it. `code` is left out here: Loop's and
# Azure's error bodies carry a `"code"` that is an error code, not a function key.
_QUOTED_NAMES = "|".join(name for name in _SECRET_NAMES.split("|") if name != "code") + "|authorization"
_QUOTED = re.compile(
    rf"(?i)(\\?[\"'])({_QUOTED_NAMES})\1(\s*:\s*)(\\?[\"'])((?:(?!\4)[^\r\n])*)"
)
_MIN_SECRET_LENGTH = 6

_known_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a configured secret (and, for `key:secret`, each half) to redact it by value."""
    if not value:
        return
    parts = {value, *value.split(":")}
    with _lock:
        _known_secrets.update(part for part in parts if len(part) >= _MIN_SECRET_LENGTH)


def redact_text(text: str) -> str:
    """Text with every secret replaced by REDACTED; the rest kept as it was."""
    text = _QUOTED.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(1)}{m.group(3)}{m.group(4)}{REDACTED}", text)
    text = _NAME_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _without_known_secrets(text)


def _without_known_secrets(text: str) -> str:
    with _lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


# Fields holding a name the dropper gave (the container, the blob's name, the report's): never a
# secret, and what people recognise their file by, so never redacted (`export code=1.txt` stays so).
NAME_FIELDS = frozenset({"blob", "blob_name", "container", "report_blob"})
_URL_REST = re.compile(r"[?#].*", re.DOTALL)


def _secret_spans(text: str) -> list[tuple[int, int]]:
    """Where `redact_text` finds a secret's value in `text` (the configured secrets aside)."""
    return ([found.span(5) for found in _QUOTED.finditer(text)]
            + [found.span(3) for pattern in (_NAME_VALUE, _HEADER) for found in pattern.finditer(text)])


def redact_text_keeping(text: str, names: Iterable[str]) -> str:
    """`redact_text` on everything but the given names where the text quotes them (a message
    naming the file: `'export code=1.txt' is not named <SIREN>FEC<AAAAMMJJ>`). A name is kept only
    where no secret's value runs through it or around it (a short name, `F`, inside a signature is
    a piece of that signature); a secret that lies within the name is the name's. The configured
    secrets go everywhere."""
    kept = sorted({name for name in names if name}, key=len, reverse=True)
    if not kept:
        return redact_text(text)
    secrets = _secret_spans(text)
    pieces, done = [], 0
    for found in re.finditer("|".join(map(re.escape, kept)), text):
        start, end = found.span()
        if any(left < end and start < right and not start <= left <= right <= end for left, right in secrets):
            continue
        pieces += [redact_text(text[done:start]), found.group()]
        done = end
    return _without_known_secrets("".join(pieces) + redact_text(text[done:]))


def redact_url(url: str) -> str:
    """A URL with its query and fragment redacted and its path kept (but the configured secrets'
    values): a blob name in the path is a name, where a signature is only ever in the query."""
    path, rest = _URL_REST.split(url, maxsplit=1)[0], _URL_REST.search(url)
    return _without_known_secrets(path) + (redact_text(rest.group(0)) if rest else "")


def redact_field(field: str | None, text: str) -> str:
    """`text` as field `field` may be shown: a name (NAME_FIELDS) as it is, anything else redacted."""
    return text if field in NAME_FIELDS else redact_text(text)


def redacted_cut(text: str, limit: int) -> str:
    """The text redacted whole, then cut to `limit` characters (never the other way round)."""
    return redact_text(text)[:limit]


def _escape(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")


def printable(text: str) -> str:
    """Control characters (newline, carriage return, escape, line separators...) as visible escapes."""
    return "".join(_escape(c) if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)


def shown(text: str | None) -> str:
    """What may be printed for people: redacted, then made printable."""
    return printable(redact_text(text)) if text else ""


def without_query(url: str) -> str:
    """The URL without its query string and fragment (where signed URLs carry their signature)."""
    return url.split("?", 1)[0].split("#", 1)[0]


class RedactingFilter(logging.Filter):
    """Rewrites a record's message through `redact_text` before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_protected: set[str] = set()


def protect_logger(name: str) -> None:
    """Clean every record logged on `name` (a logger's filters see only its own records: attach it
    to the logger that writes the URL, e.g. `urllib3.connectionpool`). Idempotent."""
    with _lock:
        if name in _protected:
            return
        _protected.add(name)
    logging.getLogger(name).addFilter(RedactingFilter())
