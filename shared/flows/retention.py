"""Retention: final imports older than LEDGER_RETENTION_DAYS go, with every copy the app made of them.

What goes, for each final import (`states.FINAL_STATES`) whose last change is older than the
cut-off: its ledger record, its index rows (listing and `rid` rows, `request` rows of the ids it was
given, its content row), the readable reports next to its file that show this version, its
validation report and its snapshot. Never an import that is not final (`received`, `retry_wait`,
`submitting`, `pending`, `unknown`), nor one changed since the cut-off (an operator's resubmit of an
old import makes it new again), nor a completed one that still blocks a second sending of its bytes
(DUPLICATE_WINDOW_HOURS, counted from its POST).

How: the listing index is read from the cut-off toward the oldest, only rows whose indexed state is
final (`ListingIndex.received_before`: the rows of the imports received before the cut-off), a page
at a time; each record is read and judged on what it holds (the index can lag it by a write); the
record is deleted first, under the table ETag it was read with, so an import anyone wrote since
(a resubmit, a late answer) is left whole (`Ledger.remove`). Its rows and blobs go after it. A run
stops at its count budget (records looked at) or its time budget; what it did not reach waits for
the next run. Each run is one event, `ledger.purged`, with its counts.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from shared.flows.pipeline import Pipeline
from shared.flows.verdict_reports import owes_report
from shared.ledger import states
from shared.ledger.indexes import ListedImport
from shared.ledger.record import ImportRecord
from shared.platform import telemetry
from shared.platform.settings import MINIMUM_RETENTION_DAYS

log = logging.getLogger(__name__)

# One run's budgets (the daily timer, and the command by default): the records it looks at, and its
# time, well inside host.json's functionTimeout (10 minutes). The rest waits for the next run.
PURGE_MAX_RECORDS = 20_000
PURGE_BUDGET_SECONDS = 420.0
_CHUNK = 100  # records purged between two looks at the time budget

REMOVED, KEPT, ORPHAN = "removed", "kept", "orphan"


@dataclass(frozen=True)
class Outcome:
    """What became of one listing row: removed (with the record's state), kept (with why), or an
    orphan (a row whose record was gone) dropped."""

    kind: str
    detail: str = ""
    blobs: int = 0  # report blobs and snapshots deleted


@dataclass
class PurgeSummary:
    cutoff: datetime
    retention_days: int
    dry_run: bool
    removed: Counter = field(default_factory=Counter)  # by state
    kept: Counter = field(default_factory=Counter)  # by reason
    orphans: int = 0
    blobs: int = 0
    examined: int = 0
    stopped_by: str | None = None  # "count_budget", "time_budget", or None: nothing left

    def add(self, outcome: Outcome) -> None:
        self.examined += 1
        self.blobs += outcome.blobs
        if outcome.kind == REMOVED:
            self.removed[outcome.detail] += 1
        elif outcome.kind == KEPT:
            self.kept[outcome.detail] += 1
        else:
            self.orphans += 1

    def dimensions(self) -> dict[str, Any]:
        """The event's counts (mappings are exported as JSON)."""
        return {
            "dryRun": self.dry_run, "retentionDays": self.retention_days, "cutoff": self.cutoff.isoformat(),
            "examined": self.examined, "removed": dict(sorted(self.removed.items())),
            "removedTotal": sum(self.removed.values()), "kept": dict(sorted(self.kept.items())),
            "orphans": self.orphans, "blobsDeleted": self.blobs, "stoppedBy": self.stopped_by or "",
        }


def cutoff_of(pipeline: Pipeline, older_than_days: int | None = None) -> tuple[datetime, int]:
    """The cut-off time and the days it counts back: LEDGER_RETENTION_DAYS unless given.

    Raises:
        ValueError: fewer days than the policy's floor (MINIMUM_RETENTION_DAYS).
    """
    days = pipeline.settings.ledger_retention_days if older_than_days is None else older_than_days
    if days < MINIMUM_RETENTION_DAYS:
        raise ValueError(f"the retention is at least {MINIMUM_RETENTION_DAYS} days, got {days}")
    return pipeline.clock() - timedelta(days=days), days


def purge(pipeline: Pipeline, *, older_than_days: int | None = None, dry_run: bool = False,
          max_records: int = PURGE_MAX_RECORDS, budget_seconds: float = PURGE_BUDGET_SECONDS) -> PurgeSummary:
    """Remove the final imports past the retention, within a count and a time budget; one event.

    dry_run: judge every record the same way and count what would go, deleting nothing.

    Raises:
        ValueError: `older_than_days` below the policy's floor.
        LedgerMissingError, azure.core.exceptions.AzureError: the ledger could not be read.
    """
    cutoff, days = cutoff_of(pipeline, older_than_days)
    summary = PurgeSummary(cutoff, days, dry_run)
    deadline = time.monotonic() + budget_seconds
    rows = pipeline.ledger.listing.received_before(cutoff, states.FINAL_STATES, page_size=min(max_records, 1000))
    with ThreadPoolExecutor(max_workers=pipeline.settings.poll_concurrency) as pool:
        summary.stopped_by = _run(pipeline, pool, rows, summary, max_records=max_records, deadline=deadline)
    telemetry.emit(telemetry.LEDGER_PURGED, {}, logging.INFO, **summary.dimensions())
    return summary


def _run(pipeline: Pipeline, pool: ThreadPoolExecutor, rows: Iterator[ListedImport], summary: PurgeSummary, *,
         max_records: int, deadline: float) -> str | None:
    """Purge chunk after chunk; which budget stopped the run (None: no row left)."""
    while True:
        room = max_records - summary.examined
        if room <= 0:
            return "count_budget" if next(rows, None) is not None else None
        chunk = list(itertools.islice(rows, min(_CHUNK, room)))
        if not chunk:
            return None
        for outcome in pool.map(lambda row: _guarded(pipeline, row, summary.cutoff, summary.dry_run), chunk):
            summary.add(outcome)
        if time.monotonic() > deadline:
            return "time_budget"


def _guarded(pipeline: Pipeline, row: ListedImport, cutoff: datetime, dry_run: bool) -> Outcome:
    """Whatever goes wrong with one import is logged against it and never stops the others. What it
    left is found again by the next run while its listing row stands (the rows go after the record);
    report blobs left after the rows are the reports' lifecycle rule's (infra/)."""
    try:
        return purge_one(pipeline, row, cutoff, dry_run)
    except Exception as error:
        log.warning("purge of %s failed: %s", "|".join(row.keys), type(error).__name__)
        return Outcome(KEPT, "error")


def purge_one(pipeline: Pipeline, row: ListedImport, cutoff: datetime, dry_run: bool) -> Outcome:
    """Judge the import a listing row points at on its record, and remove it if it is past the
    retention (or only say so: `dry_run`)."""
    record = pipeline.ledger.get(*row.keys)
    if record is None:
        return Outcome(ORPHAN) if dry_run else _drop_orphan(pipeline, row)
    why_kept = reason_to_keep(pipeline, record, cutoff)
    if why_kept:
        return Outcome(KEPT, why_kept)
    if dry_run:
        return Outcome(REMOVED, str(record.state))
    if not pipeline.ledger.remove(record):
        return Outcome(KEPT, "changed")  # written since it was read: not the import that was judged
    return Outcome(REMOVED, str(record.state), _delete_blobs(pipeline, record))


def reason_to_keep(pipeline: Pipeline, record: ImportRecord, cutoff: datetime) -> str | None:
    """Why this import stays (None: it goes)."""
    if record.state not in states.FINAL_STATES:
        return "not_final"
    last_change = record.updated_at or record.finished_at or record.received_at
    if last_change is None or last_change >= cutoff:
        return "recent"
    window = timedelta(hours=pipeline.settings.duplicate_window_hours)
    sent = record.submitted_at or record.received_at or last_change
    if record.state in states.CONTENT_HOLDING_STATES and pipeline.clock() - sent <= window:
        return "duplicate_window"
    return None


def _delete_blobs(pipeline: Pipeline, record: ImportRecord) -> int:
    """The reports next to the file that show this version, the validation report, the snapshot:
    after the record (a status check racing the purge may write a report back from its copy; it
    writes the listing row back after it, so the next purge finds both: `_drop_orphan`)."""
    deleted = pipeline.verdict_reports.forget(record.blob_name, record.etag) if owes_report(record) else 0
    if record.report_blob and pipeline.reports.delete(record.report_blob):
        deleted += 1
    if record.snapshot:
        snapshot = pipeline.blob_service.get_blob_client(record.container, record.blob_name, snapshot=record.snapshot)
        with contextlib.suppress(ResourceNotFoundError):
            snapshot.delete_blob()
            deleted += 1
    return deleted


def _drop_orphan(pipeline: Pipeline, row: ListedImport) -> Outcome:
    """A listing row whose record is gone (written back by a reader racing an earlier purge, or left
    by a crash): its reports of that version, then the row and its `rid` row."""
    entity = pipeline.ledger.orphan_row(row.row)
    if entity is None:
        return Outcome(ORPHAN)
    _, _, blob_name = str(entity.get("blob") or "").partition("/")
    deleted = pipeline.verdict_reports.forget(blob_name, row.keys[1]) if blob_name else 0
    pipeline.ledger.remove_orphan(entity)
    return Outcome(ORPHAN, blobs=deleted)
