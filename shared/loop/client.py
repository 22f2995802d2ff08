"""Client for Cegid Loop's public import API (importFEC, the import status, getFileUrlDeposit).

Every failure is one of shared.loop.errors' errors, which say whether the request may have
reached Loop (that decides what is safe to retry). getFileUrlDeposit has no effect in Loop worth
guarding (an unused deposit URL expires), so any failure of it that may pass is
LoopUnavailableError; an answer without a usable URL is LoopRejectedError carrying Loop's message.
"""

from __future__ import annotations

import json
import re

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry

from shared.loop.answers import (
    UNREADABLE,
    BodyReadError,
    DepositTarget,
    LoopStatus,
    error_message,
    parse_deposit_answer,
    parse_json,
    read_json,
    read_raw,
    retry_after_of,
    status_code,
)
from shared.loop.errors import (
    BoundedRetry,
    LoopAuthError,
    LoopBadResponseError,
    LoopError,
    LoopOutcomeUnknownError,
    LoopRejectedError,
    LoopUnavailableError,
    build_retry,
)
from shared.platform import tracing
from shared.platform.redaction import redacted_cut, register_secret
from shared.platform.settings import Settings

__all__ = [
    "BoundedRetry", "DepositTarget", "LoopAuthError", "LoopBadResponseError", "LoopClient", "LoopError",
    "LoopOutcomeUnknownError", "LoopRejectedError", "LoopStatus", "LoopUnavailableError", "build_retry",
    "parse_deposit_answer",
]

REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
DEPOSIT_PATH = "/getFileUrlDeposit"


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
            except BodyReadError as error:
                message = f"connection lost while reading Loop's answer to importFEC: {error}"
                raise LoopOutcomeUnknownError(message) from None

    def _request_id_from(self, response: requests.Response) -> str:
        status = response.status_code
        if status in (429, 503):
            raise LoopUnavailableError(f"Loop is busy (HTTP {status}) after retries", status)
        body = read_json(response)
        if status in (401, 403):
            raise LoopAuthError(error_message(body) or f"Loop refused the keys (HTTP {status})", status)
        if 400 <= status < 500:
            raise LoopRejectedError(error_message(body) or f"Loop refused the import (HTTP {status})", status)
        if status != 200:
            raise LoopOutcomeUnknownError(f"Loop answered HTTP {status} to importFEC", status)
        if body is UNREADABLE or not isinstance(body, dict):
            raise LoopOutcomeUnknownError("Loop answered HTTP 200 with an unreadable body", status)
        if "error" in body:
            raise LoopRejectedError(error_message(body) or "Loop answered an error without a message", status)
        request_id = body.get("accountingImportRequestId")
        if not request_id:
            raise LoopRejectedError("Loop answered HTTP 200 without accountingImportRequestId", status)
        if not isinstance(request_id, str) or not REQUEST_ID_PATTERN.fullmatch(request_id):
            raise LoopOutcomeUnknownError(
                f"Loop answered an implausible request id {redacted_cut(str(request_id), 40)!r}", status
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
            except BodyReadError as error:
                message = f"connection lost while reading Loop's answer to getFileUrlDeposit: {error}"
                raise LoopUnavailableError(message) from None

    def _deposit_from(self, response: requests.Response) -> DepositTarget:
        status = response.status_code
        if status in (429, 503):
            raise LoopUnavailableError(f"Loop is busy (HTTP {status}) after retries", status)
        raw = read_raw(response)
        body = parse_json(raw)
        if status in (401, 403):
            raise LoopAuthError(error_message(body) or f"Loop refused the keys (HTTP {status})", status)
        if 400 <= status < 500:
            raise LoopRejectedError(error_message(body) or f"Loop refused getFileUrlDeposit (HTTP {status})", status)
        if status != 200:
            raise LoopUnavailableError(f"Loop answered HTTP {status} to getFileUrlDeposit", status)
        if body is UNREADABLE and raw is not None:
            text = raw.decode("utf-8", errors="replace").strip()  # a bare URL as text is still an answer
            body = text or UNREADABLE
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
            except BodyReadError as error:
                raise LoopUnavailableError(f"connection lost while reading the status answer: {error}") from None

    def _status_from(self, request_id: str, response: requests.Response) -> LoopStatus:
        status = response.status_code
        body = read_json(response)
        if status in (401, 403):
            raise LoopAuthError(error_message(body) or f"Loop refused the keys (HTTP {status})", status)
        if status == 404:
            raise LoopBadResponseError(error_message(body) or "Loop does not know this request id", status)
        if status != 200:
            raise LoopUnavailableError(
                f"Loop answered HTTP {status} to the status call", status, retry_after_of(response)
            )
        if not isinstance(body, dict):
            raise LoopBadResponseError("Loop answered a status that is not a JSON object", status)
        if "error" in body:
            raise LoopBadResponseError(error_message(body) or "Loop answered an error", status)
        value = body.get("status")
        code = status_code(value)
        if code is None:
            said = redacted_cut(json.dumps(value, ensure_ascii=False, default=str), 40)
            raise LoopBadResponseError(f"Loop answered status {said}, expected an integer 1 to 4", status)
        return LoopStatus(request_id, code, body.get("codeIBS"), body.get("lastUpdate"))
