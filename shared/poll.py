"""The poll flow: follow every watched import to its final Loop status.

Reads only the `pending` index partition. Each import is handled on its own (bounded thread pool):
a failure for one import is logged against it and never stops the others. Status changes are
written with ETag-guarded updates that re-read and re-apply on conflict, so an operator action
or a second poller never loses an update.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared import ledger as states
from shared import telemetry
from shared.ledger import ImportRecord, utcnow
from shared.loop_client import LoopAuthError, LoopError, LoopStatus
from shared.pipeline import Pipeline
from shared.submit import SubmitRetryableError, mark_outcome_unknown, redrive, write_outcome_tags

log = logging.getLogger(__name__)

POLL_BACKOFF_BASE = timedelta(minutes=1)
POLL_BACKOFF_MAX = timedelta(hours=1)
SAS_EXPIRING_FLAG = "sas_expiring"
STALE_FLAG = "stale"
WARNING_EVENTS = frozenset({telemetry.FAILED, telemetry.SAS_EXPIRING, telemetry.STALE})


@dataclass
class PollSummary:
    """What one tick did, by outcome (for logs and tests)."""

    outcomes: Counter = field(default_factory=Counter)

    def add(self, outcome: str) -> None:
        self.outcomes[outcome] += 1

    def __str__(self) -> str:
        return ", ".join(f"{name}={count}" for name, count in sorted(self.outcomes.items())) or "nothing to do"


def poll_imports(pipeline: Pipeline, now: datetime | None = None) -> PollSummary:
    """One timer tick over every watched import: one query for the index, then each import on
    its own in a bounded pool (its record read, its status asked, its change written)."""
    now = now or utcnow()
    summary = PollSummary()
    entries = pipeline.ledger.watched_keys()
    with ThreadPoolExecutor(max_workers=pipeline.settings.poll_concurrency) as pool:
        for outcome in pool.map(lambda entry: _tick_one(pipeline, entry[0], entry[1], now), entries):
            summary.add(outcome)
    return summary


def _tick_one(pipeline: Pipeline, index_row: str, keys: tuple[str, str], now: datetime) -> str:
    """Whatever goes wrong with one import is logged against it and never stops the others."""
    try:
        record = pipeline.ledger.get(*keys)
        if record is None or record.state not in states.WATCHED_STATES:
            pipeline.ledger.drop_watch(index_row)
            return "unwatched"
        if record.state == states.PENDING:
            return poll_one(pipeline, record, now)
        return _look_after_unsent(pipeline, record, now)
    except Exception as error:
        log.exception("timer tick failed for %s", index_row)
        return f"error:{type(error).__name__}"


def _look_after_unsent(pipeline: Pipeline, record: ImportRecord, now: datetime) -> str:
    """Records not yet pending: a stuck `submitting` becomes unknown; a stopped delivery is re-driven."""
    idle = now - (record.updated_at or now)
    if record.state == states.SUBMITTING:
        if idle > pipeline.submit_timeout:
            mark_outcome_unknown(pipeline, record, "no request id stored after posting; check Loop")
            return "unknown"
        return "submitting"
    retry_due = record.state == states.RETRY_WAIT and (record.next_poll_at or now) <= now
    if retry_due or idle > pipeline.claim_lease:
        try:
            redrive(pipeline, record, now)
        except SubmitRetryableError:
            return "retry_wait"
        return "redriven"
    return "waiting"


def poll_one(pipeline: Pipeline, record: ImportRecord, now: datetime) -> str:
    """Ask Loop for one import's status and record what changed."""
    if record.next_poll_at and record.next_poll_at > now:
        return "backing_off"
    try:
        status = pipeline.loop.get_import_status(record.request_id or "")
    except LoopError as error:
        _record_poll_failure(pipeline, record, error, now)
        return "status_check_failed"
    return _apply_status(pipeline, record, status, now)


def _record_poll_failure(pipeline: Pipeline, record: ImportRecord, error: LoopError, now: datetime) -> None:
    def change(current: ImportRecord) -> bool:
        if current.state != states.PENDING:
            return False
        current.poll_failures += 1
        delay = min(POLL_BACKOFF_BASE * 2 ** (current.poll_failures - 1), POLL_BACKOFF_MAX)
        current.next_poll_at = now + delay
        current.error = f"status check: {error.message}"
        return True

    saved = pipeline.ledger.update(record, change, "status check failed") or record
    event = telemetry.AUTH_FAILED if isinstance(error, LoopAuthError) else telemetry.STATUS_CHECK_FAILED
    telemetry.emit(event, saved.dimensions(), level=logging.WARNING, failures=saved.poll_failures)


def _apply_status(pipeline: Pipeline, record: ImportRecord, status: LoopStatus, now: datetime) -> str:
    events: list[str] = []

    def change(current: ImportRecord) -> bool:
        events.clear()
        if current.state != states.PENDING:
            return False
        recovered = current.poll_failures > 0
        if recovered:
            current.poll_failures, current.next_poll_at, current.error = 0, None, None
        if current.loop_status != status.status:
            current.loop_status = status.status
            events.append(telemetry.STATUS_CHANGED)
        if status.is_final:
            current.state = states.COMPLETED if status.status == 3 else states.FAILED
            current.finished_at = now
            if status.status == 4:
                current.error = "Loop finished the import with an error (status 4); see Loop's import history"
            events[:] = [telemetry.COMPLETED if status.status == 3 else telemetry.FAILED]
        else:
            events.extend(_age_flags(pipeline, current, now))
        return bool(events) or recovered

    saved = pipeline.ledger.update(record, change, f"Loop status {status.status}")
    if saved is None:
        return "unchanged"
    for event in events:
        level = logging.WARNING if event in WARNING_EVENTS else logging.INFO
        telemetry.emit(event, saved.dimensions(), level=level)
    if saved.state in states.FINAL_STATES:
        write_outcome_tags(pipeline, saved)
    return saved.state if saved.state != states.PENDING else "status_changed"


def _age_flags(pipeline: Pipeline, record: ImportRecord, now: datetime) -> list[str]:
    """Flag once an import whose SAS URL is about to expire, and once one pending for too long."""
    events = []
    warning = timedelta(hours=pipeline.settings.sas_expiry_warning_hours)
    if record.sas_expires_at and now >= record.sas_expires_at - warning and not record.has_flag(SAS_EXPIRING_FLAG):
        record.add_flag(SAS_EXPIRING_FLAG)
        events.append(telemetry.SAS_EXPIRING)
    stale_after = timedelta(hours=pipeline.settings.stale_after_hours)
    submitted = record.submitted_at or record.received_at or now
    if now - submitted >= stale_after and not record.has_flag(STALE_FLAG):
        record.add_flag(STALE_FLAG)
        events.append(telemetry.STALE)
    return events
