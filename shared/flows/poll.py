"""The poll flow: follow every watched import to its final Loop status, paying only for what is due.

Each watched import has a row in the due index at its next check time (`shared.ledger.indexes`):
soon after submission, then less and less often as it ages, up to a ceiling; failures push it back
by the one backoff, and a Loop `Retry-After` further still. On Azure the timer is a scheduler: it
reads only the rows that are due (a bounded number, within a time budget), moves each one a lease
ahead and enqueues one message per import; a queue-triggered function checks one import
(`check_import`). The queue gives retries and a poison queue; a message for an import already
checked, or finished, does nothing: the ETag-guarded ledger is the judge. `poll_imports` runs the
same checks in process, for tests and tools.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.flows import check_spacing
from shared.flows.deposit import DepositError
from shared.flows.outcome_tags import write_outcome_tags
from shared.flows.pipeline import Pipeline
from shared.flows.submit import SubmitRetryableError, redrive
from shared.ledger import states
from shared.ledger.indexes import IndexEntry, keys_of_due_row
from shared.ledger.record import ImportRecord
from shared.ledger.states import ImportState, Transition
from shared.loop.client import LoopAuthError, LoopError, LoopStatus
from shared.platform import metrics, tracing

log = logging.getLogger(__name__)

_LEASE_CHUNK = 200  # rows leased and enqueued between two looks at the tick's time budget
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


def check_message(row: str) -> str:
    """The queue message for one due-index row (JSON, so the format can grow)."""
    return json.dumps({"row": row})


def row_of_message(body: str) -> str:
    """The due-index row a queue message names; ValueError if the message is not one of ours."""
    try:
        row = json.loads(body)["row"]
        keys_of_due_row(row)
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"not a status check message: {body[:80]!r}") from error
    return row


def schedule_due_checks(pipeline: Pipeline, send: Callable[[str], None]) -> PollSummary:
    """`_schedule_due_checks`, timed into `fec.poll.tick.duration`; then the pending gauges."""
    with metrics.timed_tick():
        summary = _schedule_due_checks(pipeline, send)
        observe_pending(pipeline)
    return summary


_gauges_lock = threading.Lock()
_gauges_observed_at: dict[str, float] = {}


def observe_pending(pipeline: Pipeline) -> None:
    """`fec.imports.pending` and `.oldest_age`: the imports in flight and the oldest one's age.

    Read from the due index alone (its `since` column), and at most once per
    STATUS_GAUGE_INTERVAL_SECONDS per ledger: reading every watched row is what a tick must not
    do, so the gauges are sampled, not kept exact on every tick."""
    table = pipeline.ledger.table.table_name
    with _gauges_lock:
        last = _gauges_observed_at.get(table)
        if last is not None and time.monotonic() - last < pipeline.settings.status_gauge_interval_seconds:
            return
        _gauges_observed_at[table] = time.monotonic()
    now = pipeline.clock()
    entries = pipeline.ledger.watched_entries()
    metrics.observe_pending([entry.since or now for entry in entries], now)


def _schedule_due_checks(pipeline: Pipeline, send: Callable[[str], None]) -> PollSummary:
    """The timer's tick: enqueue one message per due import, within a time and a count budget.

    Each due row is first moved a lease ahead (STATUS_CHECK_LEASE_SECONDS), then its message sent:
    if the message is lost (a crash, a poison message), the row is due again when the lease ends.
    What the budget did not reach stays due for the next tick.

    Raises:
        LedgerMissingError: the ledger table does not exist.
        azure.core.exceptions.AzureError: the index or the queue could not be reached.
    """
    settings = pipeline.settings
    now = pipeline.clock()
    deadline = time.monotonic() + settings.status_tick_budget_seconds
    lease = timedelta(seconds=settings.status_check_lease_seconds)
    summary = PollSummary()
    due = itertools.islice(pipeline.ledger.watch_index.iter_entries(due_by=now), settings.status_tick_max_messages)

    def enqueue(entry: IndexEntry) -> str:
        send(check_message(entry.row))
        return "enqueued"

    with ThreadPoolExecutor(max_workers=settings.poll_concurrency) as pool:
        while chunk := list(itertools.islice(due, _LEASE_CHUNK)):
            leased = pipeline.ledger.watch_index.postpone_many(chunk, now + lease)
            for outcome in pool.map(enqueue, leased):
                summary.add(outcome)
            if time.monotonic() > deadline:
                summary.add("left_for_next_tick")  # the rest stays due, unread, for the next tick
                break
    return summary


def poll_imports(pipeline: Pipeline) -> PollSummary:
    """Check every due import in process, in a bounded pool (what the queue workers do on Azure).

    Raises:
        LedgerMissingError: the ledger table does not exist.
        azure.core.exceptions.AzureError: the due index could not be read. A failure while
            handling one import is logged against it and counted, never raised.
    """
    now = pipeline.clock()
    summary = PollSummary()
    entries = pipeline.ledger.watched_entries(due_by=now, limit=pipeline.settings.status_tick_max_messages)
    with ThreadPoolExecutor(max_workers=pipeline.settings.poll_concurrency) as pool:
        for outcome in pool.map(lambda entry: _guarded_check(pipeline, entry.row), entries):
            summary.add(outcome)
    return summary


def _guarded_check(pipeline: Pipeline, row: str) -> str:
    """Whatever goes wrong with one import is logged against it and never stops the others."""
    try:
        return check_import(pipeline, row)
    except Exception as error:
        log.exception("status check failed for %s", row)
        return f"error:{type(error).__name__}"


def check_import(pipeline: Pipeline, row: str) -> str:
    """Look after the one import a due-index row points at; return what was done.

    Raises:
        ValueError: the row is not a due-index row.
        LedgerMissingError, azure.core.exceptions.AzureError: storage failed (the queue retries).
    """
    now = pipeline.clock()
    record = pipeline.ledger.get(*keys_of_due_row(row))
    if record is None or record.state not in states.WATCHED_STATES:
        if record is not None:
            pipeline.verdict_reports.catch_up(record)  # a row left by a crash after the final write
        # a live row always has another key than this one; the listing put right from the record read
        pipeline.ledger.drop_leased_row(row, record)
        return "unwatched"
    own_row = pipeline.ledger.watch_index.row_of(record)
    leased = row != own_row
    if record.next_poll_at and record.next_poll_at > now:
        if leased:
            _keep_one_row(pipeline, record, row)
        return "not_due"
    if leased:
        pipeline.ledger.row_was_leased(record)
    if record.state == ImportState.PENDING:
        outcome = poll_one(pipeline, record, now)
    else:
        outcome = _look_after_unsent(pipeline, record)
    if leased and (pipeline.ledger.wrote_due_row(record) or record.state not in states.WATCHED_STATES):
        # this check wrote the import's next row, or closed it: its listing rows go with the drop
        pipeline.ledger.drop_leased_row(row, record if record.listing_owed else None)
    return outcome


def _keep_one_row(pipeline: Pipeline, record: ImportRecord, row: str) -> None:
    """A leased row of an import not due yet (a row that came early: the claim's row kept by the
    POST's answer or by `submitting`, `Ledger._due_row_time`; or a duplicate message): moved to the
    record's own time in one transaction, which also folds it into the own row if that is back. The
    import is then checked when due (a `submitting` one called unknown at its give-up time), not a
    lease later."""
    pipeline.ledger.watch_index.move(record, row, pipeline.ledger.listing.operations(record))


def _look_after_unsent(pipeline: Pipeline, record: ImportRecord) -> str:
    """Records not yet pending, checked when due: a `submitting` one is due when SUBMIT_TIMEOUT_MINUTES
    have passed without a request id, so it becomes unknown; a stopped delivery is re-driven."""
    if record.state == ImportState.SUBMITTING:
        pipeline.ledger.mark_unknown(record, "no request id stored after posting; check Loop")
        return "unknown"
    try:
        redrive(pipeline, record)
    except SubmitRetryableError:
        return "retry_wait"
    except DepositError:  # recorded on the import (attempt failure) and retried by the backoff
        return "deposit_failed"
    return "redriven"


def next_check_in(pipeline: Pipeline, record: ImportRecord, now: datetime) -> timedelta:
    """The spacing policy of shared.flows.check_spacing, from the import's submission."""
    return check_spacing.next_check_in(pipeline.settings, record.submitted_at or record.received_at or now, now)


def poll_one(pipeline: Pipeline, record: ImportRecord, now: datetime) -> str:
    """`_poll_one` in the span `import.poll`, linked to the import's submit trace."""
    with tracing.span("import.poll", links=tracing.links_to(record.trace_parent), blob=record.blob,
                      etag=record.etag, codeIbs=record.code_ibs, requestId=record.request_id):
        outcome = _poll_one(pipeline, record, now)
        tracing.annotate(outcome=outcome)
        return outcome


def _poll_one(pipeline: Pipeline, record: ImportRecord, now: datetime) -> str:
    """Ask Loop for one import's status and record what changed, and when to ask next."""
    try:
        status = pipeline.loop.get_import_status(record.request_id or "")
    except LoopError as error:
        _record_poll_failure(pipeline, record, error, now)
        return "status_check_failed"
    return _apply_status(pipeline, record, status, now)


def _record_poll_failure(pipeline: Pipeline, record: ImportRecord, error: LoopError, now: datetime) -> None:
    """The failure on the record, under the same guard as a status: for the request that was asked."""
    still_ours = _checked(record, now)

    def step(current: ImportRecord) -> list[Transition]:
        if not still_ours(current):
            return []  # checked, cancelled or resubmitted meanwhile: this failure is not the stored request's
        current.poll_failures += 1
        delay = pipeline.backoff.delay(current.poll_failures)
        if error.retry_after is not None:
            delay = max(delay, timedelta(seconds=error.retry_after))
        current.next_poll_at = now + delay
        current.error = f"status check: {error.message}"
        return [states.RECORD_POLL_AUTH_FAILURE if isinstance(error, LoopAuthError) else states.RECORD_POLL_FAILURE]

    pipeline.ledger.apply(record, step, "status check failed", failures=record.poll_failures + 1)


def _checked(record: ImportRecord, now: datetime) -> Callable[[ImportRecord], bool]:
    """Whether a copy of the record is still the one this check asked Loop about: pending, due, with
    the same request id and the same due time (nobody checked, resubmitted or cancelled it since).

    What was read is captured now, before a step changes the copy: every poll write, success or
    failure, is taken only if this holds, so a duplicate message or a second tick never writes twice."""
    request_id, due = record.request_id, record.next_poll_at

    def still_ours(current: ImportRecord) -> bool:
        return (current.stored_state == ImportState.PENDING and current.request_id == request_id
                and current.next_poll_at == due and (due or now) <= now)

    return still_ours


def _apply_status(pipeline: Pipeline, record: ImportRecord, status: LoopStatus, now: datetime) -> str:
    status_before = record.loop_status
    still_ours = _checked(record, now)

    def step(current: ImportRecord) -> list[Transition]:
        if not still_ours(current):
            return []  # another worker checked it meanwhile: one status write per check
        if status.is_final:
            return _finish(current, status, now)
        taken: list[Transition] = []
        if current.poll_failures > 0:
            current.poll_failures, current.error = 0, None
            taken.append(states.RECOVER_POLLING)
        if current.loop_status != status.status:
            current.loop_status = status.status
            taken.append(states.RECORD_STATUS)
        taken += _age_flags(pipeline, current, now)
        current.next_poll_at = now + next_check_in(pipeline, current, now)
        return taken or [states.NOTE_CHECK]

    saved = pipeline.ledger.apply(record, step, f"Loop status {status.status}")
    if saved is None:
        return "unchanged"
    if saved.state in states.FINAL_STATES:
        write_outcome_tags(pipeline.blob_service, saved)
        return str(saved.state)
    return "status_changed" if saved.loop_status != status_before else "checked"


def _finish(current: ImportRecord, status: LoopStatus, now: datetime) -> list[Transition]:
    current.loop_status, current.finished_at = status.status, now
    current.poll_failures = 0
    if status.status == 4:
        current.error = "Loop finished the import with an error (status 4); see Loop's import history"
        current.state = ImportState.FAILED
        return [states.FAIL]
    current.error, current.state = None, ImportState.COMPLETED
    return [states.COMPLETE]


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

