"""Structured log events: one per state change, fixed names, fixed dimensions.

Each event is one log record on the `fec_import` logger. The message repeats the dimensions as
`key=value` pairs so they are searchable in Application Insights `traces` even without custom
dimensions; `extra={"custom_dimensions": ...}` carries them as columns where the exporter supports it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from shared.redaction import redact_text, shown

__all__ = ["emit", "redact_text"]

logger = logging.getLogger("fec_import")

DIMENSIONS = ("blob", "etag", "codeIbs", "requestId", "state", "loopStatus", "reason")

RECEIVED = "import.received"
IGNORED = "import.ignored"
DUPLICATE_DELIVERY = "import.duplicate_delivery"
DUPLICATE_CONTENT = "import.duplicate_content"
SUPERSEDED = "import.superseded"
BLOB_MISSING = "import.blob_missing"
REJECTED = "import.rejected"
VALIDATED = "import.validated"
SUBMITTING = "import.submitting"
SUBMITTED = "import.submitted"
SUBMIT_RETRY = "import.submit_retry"
ATTEMPT_FAILED = "import.attempt_failed"
SUBMIT_FAILED = "import.submit_failed"
AUTH_FAILED = "import.auth_failed"
OUTCOME_UNKNOWN = "import.outcome_unknown"
STATUS_CHANGED = "import.status_changed"
STATUS_CHECK_FAILED = "import.status_check_failed"
STATUS_RECOVERED = "import.status_recovered"
COMPLETED = "import.completed"
FAILED = "import.failed"
SAS_EXPIRING = "import.sas_expiring"
STALE = "import.stale"
RESUBMIT_REQUESTED = "import.resubmit_requested"
RESOLVED = "import.resolved"
CANCELLED = "import.cancelled"

def _format_value(value: Any) -> str:
    text = shown("" if value is None else str(value))
    return f'"{text}"' if (" " in text or not text) else text


def emit(event: str, dimensions: Mapping[str, Any], level: int = logging.INFO, **extra: Any) -> None:
    """Log one event. `dimensions` are the fixed ones (missing ones are logged empty)."""
    fixed = {name: dimensions.get(name) for name in DIMENSIONS}
    fixed["reason"] = redact_text(str(fixed["reason"])) if fixed["reason"] else None
    custom = {"event": event, **fixed, **extra}
    pairs = " ".join(f"{name}={_format_value(value)}" for name, value in fixed.items() if value is not None)
    extras = " ".join(f"{name}={_format_value(value)}" for name, value in extra.items())
    message = f"{event} {pairs}" + (f" {extras}" if extras else "")
    logger.log(level, message, extra={"custom_dimensions": custom, "event_name": event})
