"""The Loop client's one error taxonomy, and the retries it allows (see shared/loop/client.py).

Errors say whether the request may have reached Loop, because that decides what is safe:
- LoopUnavailableError: it certainly did not get through (connection refused, DNS, 429/503 after
  retries). Safe to try again later.
- LoopOutcomeUnknownError: it may have been processed (read timeout, connection reset after
  sending, 5xx, an unreadable 200). Never retried blindly: Loop has no idempotency key.
- LoopRejectedError / LoopAuthError: Loop answered no, definitively.
- LoopBadResponseError: a status answer that makes no sense (only for the status call).
"""

from __future__ import annotations

from typing import Any

from urllib3.util.retry import Retry

from shared.platform.redaction import redact_text


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
