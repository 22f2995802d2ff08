"""Reading Loop's answers: bodies read in bounded size, JSON parsed tolerantly, error messages,
status and deposit answers, Retry-After."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from urllib3.util.retry import Retry

from shared.loop.errors import LoopRejectedError
from shared.platform.redaction import redact_url, redacted_cut, without_query

MAX_RESPONSE_BYTES = 64 * 1024
# How much of Loop's error message is kept (after redaction).
MAX_MESSAGE_CHARS = 500
FINAL_STATUSES = frozenset({3, 4})
# Loop's statuses as they may come: the JSON integers 1-4 or their string forms. Anything else
# (3.7, 3.0, "3.0", " 3", true, 0, 5, null) is not a status but a bad answer (docs/loop-api.md).
STATUS_FORMS = {**{code: code for code in (1, 2, 3, 4)}, **{str(code): code for code in (1, 2, 3, 4)}}
# Field names of getFileUrlDeposit's answer, compared case-insensitively (docs/loop-api.md).
DEPOSIT_URL_FIELDS = ("depositurl", "uploadurl")
DEPOSIT_URI_FIELDS = ("uri",)


@dataclass(frozen=True)
class LoopStatus:
    request_id: str
    status: int
    code_ibs: str | None
    last_update: str | None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class DepositTarget:
    """Where to upload one file (`upload_url`, signed: never logged, stored or shown) and the URI
    importFEC takes for it."""

    upload_url: str
    uri: str

    @property
    def shown_uri(self) -> str:
        """The URI as it may be stored and printed: without query string (its path names the file,
        which is not a secret)."""
        return redact_url(without_query(self.uri))

    def __repr__(self) -> str:
        return f"DepositTarget(uri={self.shown_uri!r})"


UNREADABLE = object()


def status_code(value: Any) -> int | None:
    """Loop's status read strictly: 1 to 4 for the integers 1-4 and their string forms ("3"),
    None for anything else. `int()` would read 3.7 as 3 (completed) and 2.9 as 2; `True == 1`
    and `3.0 == 3` in Python, so the type is checked before the value."""
    if type(value) not in (int, str):
        return None
    return STATUS_FORMS.get(value)


def retry_after_of(response: requests.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), None if absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(Retry().parse_retry_after(value)), 0.0)
    except urllib3.exceptions.InvalidHeader:
        return None


class BodyReadError(Exception):
    """The connection failed while the body was being read (timeout, reset, truncated)."""


def read_raw(response: requests.Response) -> bytes | None:
    """The body, read up to MAX_RESPONSE_BYTES; None if longer.

    Raises:
        BodyReadError: the transport failed mid-body; the caller maps it to its own error.
    """
    try:
        raw = response.raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True)
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as error:
        raise BodyReadError(type(error).__name__) from None
    return None if len(raw) > MAX_RESPONSE_BYTES else raw


def read_json(response: requests.Response) -> Any:
    """The JSON body, read up to MAX_RESPONSE_BYTES; UNREADABLE if too big or not JSON.

    Raises:
        BodyReadError: the transport failed mid-body; the caller maps it to its own error.
    """
    return parse_json(read_raw(response))


def parse_json(raw: bytes | None) -> Any:
    if raw is None:
        return UNREADABLE
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return UNREADABLE


def error_message(body: Any) -> str | None:
    """Loop's error message from `{"error": {"message": ...}}` or an APIM `{"message": ...}`, redacted
    whole, then cut to MAX_MESSAGE_CHARS (a cut first would leave part of a key unrecognisable)."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict) and error.get("message"):
        return redacted_cut(str(error["message"]), MAX_MESSAGE_CHARS)
    if isinstance(error, str) and error:
        return redacted_cut(error, MAX_MESSAGE_CHARS)
    if body.get("message"):
        return redacted_cut(str(body["message"]), MAX_MESSAGE_CHARS)
    return None


def is_url(value: Any) -> bool:
    return isinstance(value, str) and value.lower().startswith(("https://", "http://")) and len(value) < 8192


def first_field(body: dict[str, Any], names: tuple[str, ...]) -> str:
    """The first non-empty text among `names` (case-insensitive), at the top level or one level down
    (an answer wrapped in `data` or `result`)."""
    scopes = [body, *(value for value in body.values() if isinstance(value, dict))]
    for scope in scopes:
        for key, value in scope.items():
            if isinstance(key, str) and key.lower() in names and isinstance(value, str) and value.strip():
                return value.strip()
    return ""


def parse_deposit_answer(body: Any, http_status: int = 200) -> DepositTarget:
    """A DepositTarget from getFileUrlDeposit's answer, read tolerantly: `depositUrl` and/or `uri`
    (any case, possibly wrapped one level down), or a bare URL. With only `depositUrl`, the URI is
    that URL without its signature; with only a `uri` that is a URL, the file is uploaded there.

    Raises:
        LoopRejectedError: an error answer, or no usable URL in it (the message says what came).
    """
    if is_url(body):
        return DepositTarget(body, without_query(body))
    if isinstance(body, str):
        raise LoopRejectedError(f"the answer is text, not a deposit URL: {redacted_cut(body, 200)!r}", http_status)
    if not isinstance(body, dict):
        kind = "unreadable" if body is UNREADABLE else f"a JSON {type(body).__name__}"
        raise LoopRejectedError(f"the answer is {kind}, not a deposit URL", http_status)
    if "error" in body:
        raise LoopRejectedError(error_message(body) or "the answer is an error without a message", http_status)
    deposit_url, uri = first_field(body, DEPOSIT_URL_FIELDS), first_field(body, DEPOSIT_URI_FIELDS)
    upload_url = deposit_url or (uri if is_url(uri) else "")
    if not is_url(upload_url):
        said = error_message(body)
        fields = ", ".join(sorted(str(key) for key in body)[:10]) or "none"
        raise LoopRejectedError(
            f"the answer has no deposit URL (fields: {fields})" + (f": {said}" if said else ""),
            http_status,
        )
    return DepositTarget(upload_url, uri or without_query(upload_url))
