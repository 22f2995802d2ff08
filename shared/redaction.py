"""The one place secrets and control characters are taken out of text that is stored or shown.

`redact_text` is applied to everything the app writes for people: log events, ledger fields
(errors, history notes), CLI output and Loop error messages. It removes SAS signatures and other
secrets in query strings or `name=value` pairs, secret headers quoted as `name: value`, and the
secret values the app was configured with (Loop keys, account key), wherever they appear.
`printable` escapes control characters so a blob name cannot forge a second log or output line.
"""

from __future__ import annotations

import re
import threading
import unicodedata

REDACTED = "REDACTED"
# Names of secrets to hide, not secrets.
_SECRET_NAMES = "|".join((
    "sig", "code", "x-apikey", "api-key", "apikey", "subscription-key", "ocp-apim-subscription-key", "accountkey",
    "sharedaccesssignature", "password", "secret", "client_secret", "token", "access_token",
))
_NAME_VALUE = re.compile(rf"(?i)\b({_SECRET_NAMES})=([^&\s\"';,]+)")
_HEADER = re.compile(r"(?i)\b(x-apikey|api-key|ocp-apim-subscription-key|authorization)(\s*:\s*)([^\r\n\"',;]+)")
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
    text = _NAME_VALUE.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    text = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    with _lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _escape(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")


def printable(text: str) -> str:
    """Control characters (newline, carriage return, escape, line separators...) as visible escapes."""
    return "".join(_escape(c) if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)


def shown(text: str | None) -> str:
    """What may be printed for people: redacted, then made printable."""
    return printable(redact_text(text)) if text else ""
