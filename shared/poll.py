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

from shared import states
from shared.import_record import ImportRecord
from shared.ledger_indexes import IndexEntry
from shared.loop_client import LoopAuthError, LoopError, LoopStatus
from shared.outcome_tags import write_outcome_tags
from shared.pipeline import Pipeline
from shared.states import ImportState, Transition
from shared.submit import SubmitRetryableError, redrive

log = logging.getLogger(__name__)

SAS_EXPIRING_FLAG = "sas_expiring"
STALE_FLAG = "stale"


@dataclass
class PollSummary:
    """What one tick did, by outcome (for logs and tests)."""

    outcomes: Counter = field(default_factory=Counter)

    def add(self, outcome: str) -> None:
        self.outcomes[outcome] += 1

    def __str__(self) -> str:
        return ", ".join(f"{name}={count}" for name, count in sorted(self.outcomes.items())) or "nothing to do"


def poll_imports(pipeline: Pipeline) -> PollSummary:
    """One timer tick over every watched import: one query for the index, then each import on
    its own in a bounded pool (its record read, its status asked, its change written).

    Raises:
        LedgerMissingError: the ledger table does not exist.
        azure.core.exceptions.AzureError: the watch index could not be read. A failure while
            handling one import is logged against it and counted, never raised.
    """
    now = pipeline.clock()
    summary = PollSummary()
    entries = pipeline.ledger.watched_entries()
    with ThreadPoolExecutor(max_workers=pipeline.settings.poll_concurrency) as pool:
        for outcome in pool.map(lambda entry: _tick_one(pipeline, entry, now), entries):
            summary.add(outcome)
    return summary


def _tick_one(pipeline: Pipeline, entry: IndexEntry, now: datetime) -> str:
    """Whatever goes wrong with one import is logged against it and never stops the others."""
    try:
        record = pipeline.ledger.get(*entry.keys)
        if record is None or record.state not in states.WATCHED_STATES:
            pipeline.ledger.watch_index.drop(entry)  # read after the row: dropped only if unchanged
            return "unwatched"
        if record.state == ImportState.PENDING:
            return poll_one(pipeline, record, now)
        return _look_after_unsent(pipeline, record, now)
    except Exception as error:
        log.exception("timer tick failed for %s", entry.row)
        return f"error:{type(error).__name__}"


def _look_after_unsent(pipeline: Pipeline, record: ImportRecord, now: datetime) -> str:
    """Records not yet pending: a stuck `submitting` becomes unknown; a stopped delivery is re-driven
    when its lease is over and the backoff says it is due."""
    idle = now - (record.updated_at or now)
    if record.state == ImportState.SUBMITTING:
        if idle > pipeline.submit_timeout:
            pipeline.ledger.mark_unknown(record, "no request id stored after posting; check Loop")
            return "unknown"
        return "submitting"
    due = (record.next_poll_at or now) <= now
    stalled = record.state == ImportState.RECEIVED and idle > pipeline.claim_lease
    if due and (record.state == ImportState.RETRY_WAIT or stalled):
        try:
            redrive(pipeline, record)
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
    def change(current: ImportRecord) -> None:
        current.poll_failures += 1
        current.next_poll_at = now + pipeline.backoff.delay(current.poll_failures)
        current.error = f"status check: {error.message}"

    transition = states.RECORD_POLL_AUTH_FAILURE if isinstance(error, LoopAuthError) else states.RECORD_POLL_FAILURE
    pipeline.ledger.move(record, transition, change, "status check failed", failures=record.poll_failures + 1)


def _apply_status(pipeline: Pipeline, record: ImportRecord, status: LoopStatus, now: datetime) -> str:
    def step(current: ImportRecord) -> list[Transition]:
        if current.stored_state != ImportState.PENDING:
            return []
        if status.is_final:
            current.loop_status, current.finished_at = status.status, now
            current.poll_failures, current.next_poll_at = 0, None
            if status.status == 4:
                current.error = "Loop finished the import with an error (status 4); see Loop's import history"
                current.state = ImportState.FAILED
                return [states.FAIL]
            current.error, current.state = None, ImportState.COMPLETED
            return [states.COMPLETE]
        taken: list[Transition] = []
        if current.poll_failures > 0:
            current.poll_failures, current.next_poll_at, current.error = 0, None, None
            taken.append(states.RECOVER_POLLING)
        if current.loop_status != status.status:
            current.loop_status = status.status
            taken.append(states.RECORD_STATUS)
        taken += _age_flags(pipeline, current, now)
        return taken

    saved = pipeline.ledger.apply(record, step, f"Loop status {status.status}")
    if saved is None:
        return "unchanged"
    if saved.state in states.FINAL_STATES:
        write_outcome_tags(pipeline.blob_service, saved)
        return str(saved.state)
    return "status_changed"


def _age_flags(pipeline: Pipeline, record: ImportRecord, now: datetime) -> list[Transition]:
    """Flag once an import whose SAS URL is about to expire, and once one pending for too long."""
    taken = []
    warning = timedelta(hours=pipeline.settings.sas_expiry_warning_hours)
    if record.sas_expires_at and now >= record.sas_expires_at - warning and not record.has_flag(SAS_EXPIRING_FLAG):
        record.add_flag(SAS_EXPIRING_FLAG)
        taken.append(states.FLAG_SAS_EXPIRING)
    stale_after = timedelta(hours=pipeline.settings.stale_after_hours)
    submitted = record.submitted_at or record.received_at or now
    if now - submitted >= stale_after and not record.has_flag(STALE_FLAG):
        record.add_flag(STALE_FLAG)
        taken.append(states.FLAG_STALE)
    return taken
