"""Structured log events: one per state change, fixed names, fixed dimensions.

Each event is one log record on the `fec_import` logger, the one funnel every event goes through
(the ledger calls `emit` once per transition written; `shared.flows.submit` for the few events outside a
transition). The message repeats the dimensions as `key=value` pairs for people reading a console;
the same fields are the record's own attributes (`event`, `blob`, `etag`, `codeIbs`, `requestId`,
`state`, `loopStatus`, `reason`, and the event's counts: `warnings`, `rules`, `attempts`,
`failures`...), which the OpenTelemetry logging handler exports as attributes, so they land in
Application Insights as `customDimensions` of the `traces` row. Values are redacted
(`shared.platform.redaction`), but `blob`, a name (`NAME_FIELDS`: what a query looks a file up by);
a mapping (the `rules` counts, errors and warnings apart) is compact JSON, on the console line and exported alike.

In process, `record.custom_dimensions` (every fixed dimension, None included, values as given) and
`record.event_name` read the same event; they are slots of the record, not attributes, so the
exporter never sees them twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from shared.platform import metrics
from shared.platform.redaction import NAME_FIELDS, printable, redact_field, redact_text, shown

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
# Loop answered a request id: logged before it is stored, so no failure after the POST can lose it.
ACCEPTED = "import.accepted"
SUBMIT_RETRY = "import.submit_retry"
ATTEMPT_FAILED = "import.attempt_failed"
SUBMIT_FAILED = "import.submit_failed"
AUTH_FAILED = "import.auth_failed"
OUTCOME_UNKNOWN = "import.outcome_unknown"
STATUS_CHANGED = "import.status_changed"
STATUS_CHECK_FAILED = "import.status_check_failed"
STATUS_RECOVERED = "import.status_recovered"
STATUS_CHECKED = "import.status_checked"
COMPLETED = "import.completed"
FAILED = "import.failed"
SAS_EXPIRING = "import.sas_expiring"
STALE = "import.stale"
RESUBMIT_REQUESTED = "import.resubmit_requested"
RESOLVED = "import.resolved"
CANCELLED = "import.cancelled"
# The readable report next to a file (shared/flows/verdict_reports.py): not a state change, its outcome.
REPORT_WRITTEN = "import.report_written"
REPORT_FAILED = "import.report_failed"
# An owed report tried REPORT_MAX_TRIES times by the timer and dropped: alerted (docs/runbooks/report-given-up.md).
REPORT_GIVEN_UP = "import.report_given_up"
# The retention's purge (shared/flows/retention.py): one event per run, with its counts.
LEDGER_PURGED = "ledger.purged"

class EventRecord(logging.LogRecord):
    """A log record that also keeps the event's dimensions for in-process readers (tests, the
    console), in slots the OpenTelemetry handler does not export (it reads `vars(record)`)."""

    __slots__ = ("custom_dimensions", "event_name")


def as_json(value: Mapping[str, Any]) -> str:
    """A mapping dimension (`rules`) as compact JSON: one token on the console line, the same text
    exported, so `parse_json(customDimensions.rules)` and `json.loads` read either."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _format_value(value: Any, name: str | None = None) -> str:
    text = "" if value is None else as_json(value) if isinstance(value, Mapping) else str(value)
    text = printable(text) if name in NAME_FIELDS else shown(text)
    return f'"{text}"' if (" " in text or not text) else text


def _attribute(value: Any, name: str | None = None) -> str | bool | int | float:
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return redact_text(as_json(value))
    return redact_field(name, str(value))


def attributes_of(event: str, fixed: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """The exported attributes: the event name, every dimension that has a value, the counts."""
    merged = {"event": event, **fixed, **extra}
    return {name: _attribute(value, name) for name, value in merged.items() if value is not None}


def emit(event: str, dimensions: Mapping[str, Any], level: int = logging.INFO, **extra: Any) -> None:
    """Log one event. `dimensions` are the fixed ones (missing ones are logged empty)."""
    fixed = {name: dimensions.get(name) for name in DIMENSIONS}
    fixed["reason"] = redact_text(str(fixed["reason"])) if fixed["reason"] else None
    metrics.count_outcome(fixed["state"], event)
    if not logger.isEnabledFor(level):
        return
    pairs = " ".join(f"{name}={_format_value(value, name)}" for name, value in fixed.items() if value is not None)
    extras = " ".join(f"{name}={_format_value(value)}" for name, value in extra.items())
    message = f"{event} {pairs}" + (f" {extras}" if extras else "")
    record = EventRecord(logger.name, level, __file__, 0, message, None, None, func="emit")
    record.__dict__.update(attributes_of(event, fixed, extra))
    record.custom_dimensions = {"event": event, **fixed, **extra}
    record.event_name = event
    logger.handle(record)
