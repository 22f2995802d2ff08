"""Client for Cegid Loop's public import API (importFEC, the import status, getFileUrlDeposit).

Errors say whether the request may have reached Loop, because that decides what is safe:
- LoopUnavailableError: it certainly did not get through (connection refused, DNS, 429/503 after
  retries). Safe to try again later.
- LoopOutcomeUnknownError: it may have been processed (read timeout, connection reset after
  sending, 5xx, an unreadable 200). Never retried blindly: Loop has no idempotency key.
- LoopRejectedError / LoopAuthError: Loop answered no, definitively.
- LoopBadResponseError: a status answer that makes no sense (only for the status call).
getFileUrlDeposit has no effect in Loop worth guarding (an unused deposit URL expires), so any
failure of it that may pass is LoopUnavailableError; an answer without a usable URL is
LoopRejectedError carrying Loop's message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry

from shared import tracing
from shared.redaction import redact_text, register_secret, without_query
from shared.settings import Settings

MAX_RESPONSE_BYTES = 64 * 1024
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
FINAL_STATUSES = frozenset({3, 4})
DEPOSIT_PATH = "/getFileUrlDeposit"
# Field names of getFileUrlDeposit's answer, compared case-insensitively (docs/loop-api.md).
DEPOSIT_URL_FIELDS = ("depositurl", "uploadurl")
DEPOSIT_URI_FIELDS = ("uri",)


class LoopError(Exception):
    """Base of every Loop client error. Messages never contain keys or SAS signatures."""

    def __init__(self, message: str, http_status: int | None = None, retry_after: float | None = None) -> None:
        message = redact_text(message)
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.retry_after = retry_after  # seconds Loop asked us to wait (Retry-After), if it said


class LoopUnavailableError(LoopError):
    """The request did not reach Loop; trying again later is safe."""


class LoopOutcomeUnknownError(LoopError):
    """The request may have been processed by Loop; an operator must check before resending."""


class LoopRejectedError(LoopError):
    """Loop refused the request (an error body or a 4xx); resending the same request is useless."""


class LoopAuthError(LoopRejectedError):
    """Loop refused the keys (401/403): check LOOP_API_KEY, LOOP_SUBSCRIPTION_KEY and the dossier link."""


class LoopBadResponseError(LoopError):
    """Loop answered something that is not a valid status."""


class BoundedRetry(Retry):
    """urllib3's Retry, with a cap on how long a Retry-After header can make us sleep."""

    MAX_RETRY_AFTER_SECONDS = 30.0

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.MAX_RETRY_AFTER_SECONDS)


def build_retry(retries: int, backoff_factor: float = 0.5) -> Retry:
    """Retry only what certainly did not get through: connection failures, 429 and 503.

    read=0 and other=0: a timeout or reset after the request was sent is never retried.
    """
    return BoundedRetry(
        total=retries,
        connect=retries,
        read=0,
        other=0,
        redirect=0,
        status=retries,
        status_forcelist=frozenset({429, 503}),
        allowed_methods=frozenset({"GET", "POST"}),
        backoff_factor=backoff_factor,
        backoff_max=30,
        backoff_jitter=0.5,
        respect_retry_after_header=True,
        raise_on_status=False,
    )


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
        """The URI as it may be stored and printed: without query string, redacted."""
        return redact_text(without_query(self.uri))

    def __repr__(self) -> str:
        return f"DepositTarget(uri={self.shown_uri!r})"


def _not_sent(error: requests.ConnectionError) -> bool:
    """True when the connection was never established, so the request cannot have been seen."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = error.args[0] if error.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


class LoopClient:
    """A pooled requests.Session with both auth headers and bounded, safe retries.

    Every failure, while connecting, sending or reading the answer's body, is one of this module's
    errors, never a raw transport exception:

    Raises:
        LoopUnavailableError: not sent (connection refused, DNS, connect timeout, 429/503 after retries),
            or a status call that failed in any way that may be retried.
        LoopOutcomeUnknownError: importFEC may have been processed (timeout or reset after sending,
            5xx, an unreadable answer).
        LoopRejectedError, LoopAuthError: Loop said no (error body, 4xx; 401/403 for the keys).
        LoopBadResponseError: a status answer that makes no sense.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        subscription_key: str,
        *,
        status_path: str = "/getImportStatus",
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        retry: Retry | None = None,
        pool_size: int = 16,
    ) -> None:
        register_secret(api_key)
        register_secret(subscription_key)
        self.base_url = base_url.rstrip("/")
        self.status_path = status_path
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        adapter = HTTPAdapter(
            max_retries=retry if retry is not None else build_retry(4),
            pool_connections=pool_size,
            pool_maxsize=pool_size,
        )
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers.update(
            {"x-apikey": api_key, "Ocp-Apim-Subscription-Key": subscription_key, "Accept": "application/json"}
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> LoopClient:
        return cls(
            settings.loop_base_url,
            settings.loop_api_key,
            settings.loop_subscription_key,
            status_path=settings.loop_status_path,
            connect_timeout=settings.loop_connect_timeout,
            read_timeout=settings.loop_read_timeout,
            retry=build_retry(settings.loop_retries),
            pool_size=max(settings.poll_concurrency, 4),
        )

    def __repr__(self) -> str:
        return f"LoopClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self.session.close()

    # --- importFEC -------------------------------------------------------------------------

    @tracing.http_dependency("importFEC", lambda self, *_: f"{self.base_url}/importFEC")
    def import_fec(self, code_ibs: str, file_url: str = "", *, uri: str = "") -> str:
        """POST /importFEC with exactly one of `file_url` (a SAS URL Loop downloads from) and `uri`
        (from getFileUrlDeposit, the file uploaded there); return the accountingImportRequestId."""
        if bool(file_url) == bool(uri):
            raise ValueError("importFEC takes exactly one of a URL and a URI")
        try:
            response = self.session.post(
                f"{self.base_url}/importFEC",
                json={"codeIbs": code_ibs, "URI": uri, "URL": file_url},
                timeout=self.timeout,
                stream=True,
            )
        except requests.ConnectionError as error:
            if _not_sent(error):
                raise LoopUnavailableError(f"Loop unreachable: {type(error).__name__}") from None
            raise LoopOutcomeUnknownError(
                f"connection lost after sending importFEC: {type(error).__name__}"
            ) from None
        except requests.Timeout:
            raise LoopOutcomeUnknownError("no answer from Loop within the read timeout") from None
        except requests.RequestException as error:
            raise LoopOutcomeUnknownError(f"importFEC failed: {type(error).__name__}") from None
        with response:
            try:
                return self._request_id_from(response)
            except _BodyReadError as error:
                message = f"connection lost while reading Loop's answer to importFEC: {error}"
                raise LoopOutcomeUnknownError(message) from None

    def _request_id_from(self, response: requests.Response) -> str:
        status = response.status_code
        if status in (429, 503):
            raise LoopUnavailableError(f"Loop is busy (HTTP {status}) after retries", status)
        body = _read_json(response)
        if status in (401, 403):
            raise LoopAuthError(_message(body) or f"Loop refused the keys (HTTP {status})", status)
        if 400 <= status < 500:
            raise LoopRejectedError(_message(body) or f"Loop refused the import (HTTP {status})", status)
        if status != 200:
            raise LoopOutcomeUnknownError(f"Loop answered HTTP {status} to importFEC", status)
        if body is _UNREADABLE or not isinstance(body, dict):
            raise LoopOutcomeUnknownError("Loop answered HTTP 200 with an unreadable body", status)
        if "error" in body:
            raise LoopRejectedError(_message(body) or "Loop answered an error without a message", status)
        request_id = body.get("accountingImportRequestId")
        if not request_id:
            raise LoopRejectedError("Loop answered HTTP 200 without accountingImportRequestId", status)
        if not isinstance(request_id, str) or not REQUEST_ID_PATTERN.fullmatch(request_id):
            raise LoopOutcomeUnknownError(
                f"Loop answered an implausible request id {str(request_id)[:40]!r}", status
            )
        return request_id

    # --- getFileUrlDeposit -----------------------------------------------------------------

    def get_file_url_deposit(self, filename: str) -> DepositTarget:
        """GET /getFileUrlDeposit?filename=: where to upload a file and the URI to import it by."""
        try:
            response = self.session.get(
                f"{self.base_url}{DEPOSIT_PATH}", params={"filename": filename}, timeout=self.timeout, stream=True
            )
        except requests.RequestException as error:
            raise LoopUnavailableError(f"getFileUrlDeposit failed: {type(error).__name__}") from None
        with response:
            try:
                return self._deposit_from(response)
            except _BodyReadError as error:
                message = f"connection lost while reading Loop's answer to getFileUrlDeposit: {error}"
                raise LoopUnavailableError(message) from None

    def _deposit_from(self, response: requests.Response) -> DepositTarget:
        status = response.status_code
        if status in (429, 503):
            raise LoopUnavailableError(f"Loop is busy (HTTP {status}) after retries", status)
        raw = _read_raw(response)
        body = _parse_json(raw)
        if status in (401, 403):
            raise LoopAuthError(_message(body) or f"Loop refused the keys (HTTP {status})", status)
        if 400 <= status < 500:
            raise LoopRejectedError(_message(body) or f"Loop refused getFileUrlDeposit (HTTP {status})", status)
        if status != 200:
            raise LoopUnavailableError(f"Loop answered HTTP {status} to getFileUrlDeposit", status)
        if body is _UNREADABLE and raw is not None:
            text = raw.decode("utf-8", errors="replace").strip()  # a bare URL as text is still an answer
            body = text or _UNREADABLE
        return parse_deposit_answer(body, status)

    # --- status ----------------------------------------------------------------------------

    @tracing.http_dependency("getImportStatus", lambda self, *_: f"{self.base_url}{self.status_path}")
    def get_import_status(self, request_id: str) -> LoopStatus:
        try:
            response = self.session.get(
                f"{self.base_url}{self.status_path}",
                params={"accountingImportRequestId": request_id},
                timeout=self.timeout,
                stream=True,
            )
        except requests.RequestException as error:
            raise LoopUnavailableError(f"status call failed: {type(error).__name__}") from None
        with response:
            try:
                return self._status_from(request_id, response)
            except _BodyReadError as error:
                raise LoopUnavailableError(f"connection lost while reading the status answer: {error}") from None

    def _status_from(self, request_id: str, response: requests.Response) -> LoopStatus:
        status = response.status_code
        body = _read_json(response)
        if status in (401, 403):
            raise LoopAuthError(_message(body) or f"Loop refused the keys (HTTP {status})", status)
        if status == 404:
            raise LoopBadResponseError(_message(body) or "Loop does not know this request id", status)
        if status != 200:
            raise LoopUnavailableError(
                f"Loop answered HTTP {status} to the status call", status, _retry_after(response)
            )
        if not isinstance(body, dict):
            raise LoopBadResponseError("Loop answered a status that is not a JSON object", status)
        if "error" in body:
            raise LoopBadResponseError(_message(body) or "Loop answered an error", status)
        value = body.get("status")
        try:
            code = int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            code = 0
        if code not in (1, 2, 3, 4) or isinstance(value, bool):
            raise LoopBadResponseError(f"Loop answered status {str(value)[:20]!r}, expected 1 to 4", status)
        return LoopStatus(request_id, code, body.get("codeIBS"), body.get("lastUpdate"))


_UNREADABLE = object()


def _retry_after(response: requests.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), None if absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(Retry().parse_retry_after(value)), 0.0)
    except urllib3.exceptions.InvalidHeader:
        return None


class _BodyReadError(Exception):
    """The connection failed while the body was being read (timeout, reset, truncated)."""


def _read_raw(response: requests.Response) -> bytes | None:
    """The body, read up to MAX_RESPONSE_BYTES; None if longer.

    Raises:
        _BodyReadError: the transport failed mid-body; the caller maps it to its own error.
    """
    try:
        raw = response.raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True)
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as error:
        raise _BodyReadError(type(error).__name__) from None
    return None if len(raw) > MAX_RESPONSE_BYTES else raw


def _read_json(response: requests.Response) -> Any:
    """The JSON body, read up to MAX_RESPONSE_BYTES; _UNREADABLE if too big or not JSON.

    Raises:
        _BodyReadError: the transport failed mid-body; the caller maps it to its own error.
    """
    return _parse_json(_read_raw(response))


def _parse_json(raw: bytes | None) -> Any:
    if raw is None:
        return _UNREADABLE
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return _UNREADABLE


def _message(body: Any) -> str | None:
    """Loop's error message from `{"error": {"message": ...}}` or an APIM `{"message": ...}`."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:500]
    if isinstance(error, str) and error:
        return error[:500]
    if body.get("message"):
        return str(body["message"])[:500]
    return None


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.lower().startswith(("https://", "http://")) and len(value) < 8192


def _field(body: dict[str, Any], names: tuple[str, ...]) -> str:
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
    if _is_url(body):
        return DepositTarget(body, without_query(body))
    if isinstance(body, str):
        raise LoopRejectedError(f"the answer is text, not a deposit URL: {body[:200]!r}", http_status)
    if not isinstance(body, dict):
        kind = "unreadable" if body is _UNREADABLE else f"a JSON {type(body).__name__}"
        raise LoopRejectedError(f"the answer is {kind}, not a deposit URL", http_status)
    if "error" in body:
        raise LoopRejectedError(_message(body) or "the answer is an error without a message", http_status)
    deposit_url, uri = _field(body, DEPOSIT_URL_FIELDS), _field(body, DEPOSIT_URI_FIELDS)
    upload_url = deposit_url or (uri if _is_url(uri) else "")
    if not _is_url(upload_url):
        said = _message(body)
        fields = ", ".join(sorted(str(key) for key in body)[:10]) or "none"
        raise LoopRejectedError(
            f"the answer has no deposit URL (fields: {fields})" + (f": {said}" if said else ""),
            http_status,
        )
    return DepositTarget(upload_url, uri or without_query(upload_url))
