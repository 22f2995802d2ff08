"""The import ledger: records, their indexes, and the named transitions that change them.

One table holds the records (`shared.ledger.store`) and small index partitions
(`shared.ledger.indexes`). Every change of a record is a named transition of `shared.ledger.states`:
`move()` re-reads and re-applies it on conflict, checks the state it starts from against the
table, writes under the ETag read, keeps the indexes in step and emits the transition's one event.
The guarded move to `submitting` is the single compare-and-swap that decides which delivery may
call Loop, so a blob version is sent at most once.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient

from shared.ledger import states
from shared.ledger.indexes import (
    DUE_PARTITION,
    REQUEST_PARTITION,
    ContentIndex,
    IndexEntry,
    ListingIndex,
    ReplacedRequestIndex,
    WatchIndex,
    due_row,
    request_id_row,
    submit_together,
)
from shared.ledger.record import RECORD_PARTITION_PREFIX, ImportRecord, record_keys
from shared.ledger.states import Transition
from shared.ledger.store import LedgerConflictError, LedgerMissingError, RecordStore, with_retries
from shared.platform import telemetry
from shared.platform.clock import Clock, utcnow

log = logging.getLogger(__name__)
__all__ = ["ImportRecord", "Ledger", "LedgerConflictError", "LedgerMissingError", "record_keys"]

# What a delivery learned while processing (dossier, snapshot, hash, report): kept across re-reads.
FINDINGS = ("code_ibs", "snapshot", "content_sha256", "validation", "report_blob", "size", "duplicate_of")
# A row due later than this is not leased by any tick yet (ticks lease rows due by their own clock).
_UNLEASED_MARGIN = timedelta(seconds=5)
# The POST's answer keeps the claim's row only if it is due this little before the first check.
_KEPT_ROW_EARLINESS = timedelta(seconds=5)
# The record partitions (`blob-<digest>`), apart from the index partitions of the same table.
_ALL_RECORDS = f"PartitionKey ge '{RECORD_PARTITION_PREFIX}' and PartitionKey lt 'blob.'"
# Loop's request ids are GUIDs: those a record was given are in its history's notes ("request id
# <id>", "resolved by an operator: <id>"), the ids a resubmit replaced included.
_GUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)
Step = Callable[[ImportRecord], Sequence[Transition]]
# Called with the record and the transitions taken, after each write.
WriteObserver = Callable[[ImportRecord, Sequence[Transition]], None]


def carry_findings(source: ImportRecord, target: ImportRecord) -> None:
    if source is target:
        return
    for name in FINDINGS:
        value = getattr(source, name)
        if value is not None and getattr(target, name) is None:
            setattr(target, name, value)


class Ledger:
    """Reads import records and changes them only through named transitions.

    Raises (every method): LedgerMissingError when the table does not exist;
    IllegalTransitionError when a write would break the transition table (a bug);
    azure.core.exceptions.AzureError when storage cannot be reached.
    """

    def __init__(self, table: TableClient, clock: Clock = utcnow) -> None:
        self.table = table
        self.clock = clock
        # Told of every written transition (shared.flows.verdict_reports); must not raise.
        self.observer: WriteObserver | None = None
        self.store = RecordStore(table)
        self.watch_index = WatchIndex(table, clock)
        self.contents = ContentIndex(table, clock)
        self.replaced_requests = ReplacedRequestIndex(table, clock)
        self.listing = ListingIndex(table, clock)

    @classmethod
    def from_service(cls, service: TableServiceClient, table_name: str, clock: Clock = utcnow) -> Ledger:
        """A ledger on a table; creates nothing (see `ensure`)."""
        return cls(service.get_table_client(table_name), clock)

    def ensure(self) -> None:
        """Create the table if needed: the app's start-up calls this, read-only commands never do."""
        self.store.ensure()

    # --- the generic guarded change --------------------------------------------------------

    def apply(self, record: ImportRecord, step: Step, note: str | None = None, attempts: int = 5,
              **extra: Any) -> ImportRecord | None:
        """Run `step` on the record and write it; on conflict, re-read and run it again.

        `step` changes the record and returns the transitions it took (none: nothing is written and
        apply returns None, the record moved on). Each transition emits its event once written.
        """
        current = record
        for _ in range(attempts):
            taken = step(current)
            if not taken:
                return None
            try:
                self._write(current, note or taken[-1].name)
            except LedgerConflictError as conflict:
                fresh = conflict.fresh or self.get(*record.keys)
                if fresh is None:
                    return None
                carry_findings(current, fresh)
                current = fresh
                continue
            for transition in taken:
                telemetry.emit(transition.event, current.dimensions(), level=transition.level, **extra)
            if self.observer is not None:
                self.observer(current, taken)
            return current
        raise LedgerConflictError(f"record {record.blob} kept changing; gave up after {attempts} tries")

    def move(self, record: ImportRecord, transition: Transition,
             change: Callable[[ImportRecord], None] | None = None, note: str | None = None, *,
             once: bool = False, guard: Callable[[ImportRecord], bool] | None = None,
             **extra: Any) -> ImportRecord | None:
        """Take one transition if the stored state allows it; None if the record moved on.

        once=True makes it a compare-and-swap on the copy given: if anyone wrote the record since
        that copy was read, nothing is written (the writer who got there first owns the next step).
        `guard`, checked on the stored record at each try, is a further condition for the move.
        """

        def step(current: ImportRecord) -> list[Transition]:
            if once and current is not record:
                return []
            if not transition.allows(current.stored_state or ""):
                return []
            if guard is not None and not guard(current):
                return []
            if change is not None:
                change(current)
            current.state = transition.target
            return [transition]

        return self.apply(record, step, note, **extra)

    def _write(self, record: ImportRecord, note: str) -> None:
        """Write the record and keep its indexes in step.

        Its listing rows (state, dossier, request ids: `ListingIndex`) are written after the record,
        in the transaction of the due-row change that follows the write, if any; else, when the state
        changed, in one of their own: except for the `submitting` mark, the one state change on a
        submission's way without a due-row change (the row still says `received` while the POST is in
        flight, and the answer's write puts it right). A copy whose row the scheduler leased leaves
        them to its checker, which writes them with its drop of the lease row (`drop_leased_row`). A
        failure is logged, never raised: the import's next due-row change (at the latest its next
        check) writes them again. Its due-index row (`_watch_rows`): a record
        with a row of its own keeps it until the record is written, then one entity-group transaction
        moves it to the new due time; a record without one gets its row first. Either way a crash
        leaves it watched. Each index write is idempotent and tried again on a transient failure
        (`with_retries`)."""
        now = self.clock()
        record.updated_at = now
        record.revision += 1
        record.add_history(record.state, note, now)
        watched = record.state in states.WATCHED_STATES
        previous_due = record.stored_due
        if watched:
            record.next_poll_at = record.next_poll_at or now
        due = self._due_row_time(record, previous_due, now) if watched else None
        record.due_row_at = due if due != record.next_poll_at else None
        answer_keeps_row = record.state == states.PENDING and record.due_row_at is not None
        if watched and previous_due is None:
            with_retries(lambda: self.watch_index.watch(record), f"due row of {record.blob}")
        state_changed = record.state != record.stored_state
        self.store.replace(record)
        record.stored_due = due
        if previous_due is not None and previous_due != due:
            self._after_write(record, previous_due, watched)
        elif answer_keeps_row and previous_due is not None and self._kept_row_may_be_leased(previous_due):
            self._put_own_row(record)  # carries the listing rows: no request more than an on-time answer
        elif record.row_leased:
            record.listing_owed = True
        elif state_changed and record.state != states.SUBMITTING:
            self._write_listing(record)

    def _write_listing(self, record: ImportRecord) -> None:
        try:
            with_retries(lambda: self.listing.write(record), f"listing rows of {record.blob}")
        except AzureError as error:
            log.warning("listing rows of %s not written (%s): written again at its next due-row change",
                        record.blob, type(error).__name__)

    @staticmethod
    def _due_row_time(record: ImportRecord, previous_due: datetime | None, now: datetime) -> datetime | None:
        """When the record's due row will be once written: the row it has is kept when it is due no
        later than the record's next time, in two writes, so each writes the record alone.

        - Marking `submitting` keeps the claim's row (due before the give-up time).
        - The POST's answer (pending, from submitting) keeps it too when it is still more than
          `_UNLEASED_MARGIN` ahead (so no tick can have leased it) and due at most
          `_KEPT_ROW_EARLINESS` before the first check: the claim's row is due at the first check's
          time counted from the claim (shared.flows.check_spacing.claim_row_at), a little before the
          answer's. A row due much earlier (a slow delivery, or the re-drive time when
          CLAIM_LEASE_SECONDS is shorter than the first check) is moved, as any other. The keep is
          judged when the write begins; `_kept_row_may_be_leased` judges it again once the write is
          answered, and a write that landed too late to be sure puts the import's own row as well.
        A check that finds the import not due yet (the row came early) moves it to the record's time
        (shared.flows.poll)."""
        if previous_due is None or record.next_poll_at is None or previous_due > record.next_poll_at:
            return record.next_poll_at
        if record.state == states.SUBMITTING:
            return previous_due
        answered = record.state == states.PENDING and record.stored_state == states.SUBMITTING
        unleased = previous_due > now + _UNLEASED_MARGIN
        if answered and unleased and record.next_poll_at - previous_due <= _KEPT_ROW_EARLINESS:
            return previous_due
        return record.next_poll_at

    def _kept_row_may_be_leased(self, kept_due: datetime) -> bool:
        """Whether a tick may have leased the row the POST's answer kept before the answer's write
        landed: the keep was decided when the write began (`_due_row_time`: the row more than
        `_UNLEASED_MARGIN` ahead), and is checked again now that the write is answered. A write that
        took that long (slow storage, retries) may have let a tick lease the row and its check, reading
        the record still `submitting`, move it to the give-up time; the row was then not kept."""
        return kept_due <= self.clock() + _UNLEASED_MARGIN

    def _put_own_row(self, record: ImportRecord) -> None:
        """The answer's write landed late: put the import's row at its first check (`next_poll_at`), so
        the check comes on time whatever a tick did with the kept row meanwhile. If that row is still
        there, its early check folds it into this one (shared.flows.poll, `_keep_one_row`); a row a
        check moved to the give-up time finds the import checked already and is dropped or folded. The
        record still names the kept row: a later write moving from it finds it gone and puts its own
        row alone, as after any lease. The listing rows ride in its transaction, so a late answer costs what
        an on-time one does; if it fails, the first check writes them (as after any lost listing write)."""
        try:
            with_retries(lambda: self.watch_index.watch(record, also=self.listing.operations(record)),
                         f"due row of {record.blob}")
        except AzureError as error:
            log.warning("due row of %s at its first check not put (%s): checked at its kept or give-up row",
                        record.blob, type(error).__name__)

    def _after_write(self, record: ImportRecord, previous_due: datetime, watched: bool) -> None:
        """The record is written: move its row to the new due time, or drop it if no longer watched.
        A failure here is logged, never raised (the transition is written and owes its event): the
        previous row keeps the import watched, and the check it brings puts things right. A write that
        lost its compare-and-swap never gets here, so it never deletes a row another writer relies on."""
        previous = due_row(previous_due, record.keys)
        listed = self.listing.operations(record)
        try:
            if watched:
                with_retries(lambda: self.watch_index.move(record, previous, listed), f"due row of {record.blob}")
            else:
                with_retries(lambda: self.watch_index.drop_row(previous, listed), "previous due row")
        except AzureError as error:
            log.warning("previous due row %s left in place (%s): dropped or moved when it comes due", previous,
                        type(error).__name__)

    def row_was_leased(self, record: ImportRecord) -> None:
        """The scheduler moved this copy's due row to a lease row: the next write must not delete the
        row of its previous due time (gone), the checker deletes the lease row itself."""
        record.stored_due = None
        record.row_leased = True

    def drop_leased_row(self, row: str, record: ImportRecord | None = None) -> None:
        """Delete a due row the checker holds; with the listing's rows of `record` in the same
        transaction when this copy was written (or read just now: `fresh`), so a check puts right a
        listing write that was lost."""
        if record is not None:
            self.watch_index.join_drop(row, self.listing.operations(record))
        self.watch_index.drop_row(row)

    @staticmethod
    def wrote_due_row(record: ImportRecord) -> bool:
        """Whether a write of this copy (after `row_was_leased`) put the import's next due row in place."""
        return record.stored_due is not None

    # --- records ---------------------------------------------------------------------------

    def claim(self, record: ImportRecord, row_at: datetime | None = None) -> tuple[ImportRecord, bool]:
        """Create the record; if it exists (a second delivery), return the stored one and False.

        Its due row is put first, at `row_at` if earlier than its `next_poll_at` (the re-drive time)."""
        now = self.clock()
        record.received_at = record.received_at or now
        record.updated_at = now
        record.next_poll_at = record.next_poll_at or now
        record.attempts = 1
        record.revision = 1
        record.add_history(record.state, "received", now)
        due = min(record.next_poll_at, row_at) if row_at is not None else record.next_poll_at
        record.due_row_at = due if due != record.next_poll_at else None
        # first, with its listing rows: a crash right after leaves it watched (and listed: the list
        # skips a row whose record is missing)
        self.watch_index.watch(record, due, self.listing.operations(record))
        if self.store.create(record):
            record.stored_due = due
            return record, True
        existing = self.get(*record.keys)
        ours = self.listing.drop_operations(record) if existing is None or existing.received_at != record.received_at \
            else []
        if existing is None or existing.stored_due != due:
            self.watch_index.drop_row(due_row(due, record.keys), ours)  # ours, not the stored record's
        elif ours:
            self.watch_index.drop_row(self.listing.row_of(record))
        if existing is None:  # deleted between the two calls: treat as a conflict
            raise LedgerConflictError(f"record {record.blob} vanished during claim")
        return existing, False

    def get(self, partition: str, row: str) -> ImportRecord | None:
        return self.store.get(partition, row)

    def watched_entries(self, due_by: datetime | None = None, limit: int | None = None) -> list[IndexEntry]:
        """The imports the timer looks after, in due order: those due by `due_by` (all if None)."""
        return self.watch_index.entries(due_by, limit)

    def watched(self) -> Iterator[tuple[str, ImportRecord | None]]:
        """(index row, record or None if it is gone) for every watched import."""
        for entry in self.watched_entries():
            yield entry.row, self.get(*entry.keys)

    # --- named transitions -----------------------------------------------------------------

    def retake(self, record: ImportRecord, next_try_in: timedelta) -> ImportRecord | None:
        """A later delivery takes over a version nobody sent yet: a compare-and-swap, one wins.

        `next_try_in` is when the timer may re-drive it if this delivery stops too (the backoff)."""
        now = self.clock()

        def change(current: ImportRecord) -> None:
            current.attempts += 1
            current.next_poll_at = now + next_try_in

        return self.move(record, states.RETAKE, change, f"delivery attempt {record.attempts + 1}", once=True,
                         attempt=record.attempts + 1)

    def finish(self, record: ImportRecord, transition: Transition, reason: str | None, **extra: Any
               ) -> ImportRecord | None:
        """Close an import with its outcome (rejected, superseded, duplicate, failed...)."""
        now = self.clock()

        def change(current: ImportRecord) -> None:
            carry_findings(record, current)
            current.error, current.finished_at = reason, now

        return self.move(record, transition, change, reason, **extra)

    def mark_submitting(self, record: ImportRecord, sas_expires_at: datetime | None,
                        give_up_at: datetime | None = None) -> ImportRecord | None:
        """The one guarded step that permits a POST: None if anyone wrote the record since it was read.

        `give_up_at` is when the timer will call the outcome unknown if no request id was stored."""

        def change(current: ImportRecord) -> None:
            current.error, current.sas_expires_at = None, sas_expires_at
            current.next_poll_at = give_up_at or self.clock()

        return self.move(record, states.MARK_SUBMITTING, change, "posting importFEC", once=True)

    def record_request_id(self, record: ImportRecord, request_id: str,
                          transition: Transition = states.RECORD_REQUEST_ID, note: str | None = None,
                          first_check_in: timedelta = timedelta(0)) -> ImportRecord | None:
        """Loop's request id is known (from the POST, or found by an operator): the import is pending.

        The answer to a POST is stored only on the submission that made it: an operator's resubmit
        counts an attempt, so a late answer to an earlier POST (the timer called it unknown, an
        operator sent the file again) finds another count and is refused; its id stays in the logs.
        An operator's `resolve` is not a POST's answer and has no such condition."""
        now = self.clock()
        submission = record.attempts
        # Kept as Loop spelled it, which is what Loop is asked about again (its ids live in a store
        # whose string match may be case-sensitive); the `rid` index row is lower case, so any case finds it.
        request_id = request_id.strip()

        def change(current: ImportRecord) -> None:
            current.request_id, current.error = request_id, None
            keeps_first_submission = transition is states.RESOLVE and current.submitted_at is not None
            current.submitted_at = current.submitted_at if keeps_first_submission else now
            current.next_poll_at, current.poll_failures = now + first_check_in, 0

        same_submission = None if transition is states.RESOLVE else (lambda current: current.attempts == submission)
        return self.move(record, transition, change, note or f"request id {request_id}", guard=same_submission)

    def mark_unknown(self, record: ImportRecord, reason: str) -> ImportRecord | None:
        return self.move(record, states.MARK_UNKNOWN, lambda current: setattr(current, "error", reason), reason)

    def wait_for_retry(self, record: ImportRecord, reason: str, retry_at: Callable[[ImportRecord], datetime]
                       ) -> ImportRecord | None:
        def change(current: ImportRecord) -> None:
            current.error, current.next_poll_at = reason, retry_at(current)

        return self.move(record, states.WAIT_FOR_RETRY, change, reason)

    def reopen(self, record: ImportRecord, code_ibs: str | None, snapshot: str | None,
               previous_request_id: str | None, redrive_at: datetime | None = None) -> ImportRecord | None:
        """An operator asks for a new POST of the same version: back to received, history kept.

        `redrive_at` is when the timer takes it over if the operator's command stops half-way."""

        def change(current: ImportRecord) -> None:
            current.next_poll_at = redrive_at or self.clock()
            current.code_ibs = code_ibs or current.code_ibs
            current.snapshot = snapshot or current.snapshot
            current.request_id, current.loop_status, current.finished_at, current.flags = None, None, None, ""
            current.error, current.attempts = None, current.attempts + 1

        replaced = record.request_id  # the copy is changed by the move, even one that is refused
        if replaced:  # the id this clears stays findable (imports show <old id>)
            with_retries(lambda: self.replaced_requests.keep(replaced, record),
                         f"replaced request id of {record.blob}")
        reopened = self.move(record, states.REOPEN, change, "resubmit requested by an operator", once=True,
                             previousRequestId=previous_request_id)
        if reopened is None and self.get(*record.keys) is None:  # purged meanwhile: leave no row pointing at it
            if replaced:
                self._drop_row_of(REQUEST_PARTITION, replaced, record.keys)
            if redrive_at is not None:  # the due row the write puts before the record (`_write`)
                self.watch_index.drop_row(due_row(redrive_at, record.keys))
        return reopened

    # --- lookups for operators -------------------------------------------------------------

    def all_records(self, state: str | None = None) -> Iterator[ImportRecord]:
        query = _ALL_RECORDS
        if state:
            query += " and state eq @state"
        return self.store.query(query, {"state": str(state)} if state else None)

    def reindex(self) -> int:
        """Write the listing and request-id rows of every record, 100 rows per transaction: once, on
        a ledger written before the index existed (it reads every record: an operator's command,
        never the app's). Returns how many records it indexed."""
        operations: list = []
        count = 0
        for count, record in enumerate(self.all_records(), start=1):  # noqa: B007 - the count is returned
            operations += self.listing.operations(record)
            if len(operations) >= 98:
                submit_together(self.table, operations)
                operations = []
        if operations:
            submit_together(self.table, operations)
        return count

    # --- retention (shared.flows.retention) --------------------------------------------------

    @staticmethod
    def request_ids_of(record: ImportRecord) -> tuple[str, ...]:
        """Every Loop request id the record was given, as written: its current one and those in its
        history."""
        found = [record.request_id or "", *(match for entry in record.history_entries()
                                            for match in _GUID.findall(entry.get("note") or ""))]
        return tuple(dict.fromkeys(request_id for request_id in found if request_id))

    def remove(self, record: ImportRecord) -> bool:
        """Delete a record and its index rows, the record first and only if it is still the copy
        read (its table ETag): False, and nothing deleted, if anyone wrote it since (a resubmit).

        Once the record is gone, no writer can bring it back (every write is conditional on an ETag),
        so the rows go after it: its listing and `rid` rows in one transaction of the `due`
        partition, its `request` rows and its content row each only if they still point at it. A
        row a racing reader writes back from an older copy (a status check's listing rows) points at
        nothing, and goes with the next purge (`remove_orphan`)."""
        if not self.store.delete(record):
            return False
        request_ids = self.request_ids_of(record)
        with_retries(lambda: submit_together(self.table, self.listing.drop_operations(record, request_ids)),
                     f"listing rows of {record.blob}")
        for written in {case for request_id in request_ids for case in (request_id, request_id.lower())}:
            self._drop_row_of(REQUEST_PARTITION, written, record.keys)  # kept as written, or lowered
        self.contents.release(record)
        return True

    def orphan_row(self, row: str) -> dict[str, Any] | None:
        """A listing row (its blob, request id and keys), to drop when its record is gone."""
        with contextlib.suppress(ResourceNotFoundError):
            return dict(self.table.get_entity(DUE_PARTITION, row))
        return None

    def remove_orphan(self, row: dict[str, Any]) -> None:
        """Drop a listing row whose record is gone, and the `rid` row of its request id."""
        operations = [("delete", {"PartitionKey": DUE_PARTITION, "RowKey": row["RowKey"]})]
        if row.get("request_id"):
            operations.append(("delete", {"PartitionKey": DUE_PARTITION, "RowKey": request_id_row(row["request_id"])}))
        submit_together(self.table, operations)

    def _drop_row_of(self, partition: str, row: str, keys: tuple[str, str]) -> None:
        """Delete an index row if it points at `keys`, under the ETag it was read with."""
        try:
            entity = self.table.get_entity(partition, row)
        except ResourceNotFoundError:
            return
        if (entity.get("record_partition"), entity.get("record_row")) != keys:
            return
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            self.table.delete_entity(partition, row, etag=entity.metadata.get("etag"),
                                     match_condition=MatchConditions.IfNotModified)

    def by_request_id(self, request_id: str) -> ImportRecord | None:
        """The import Loop gave this request id (any case: GUIDs), by its `rid` row, else (an id a
        resubmit replaced, or one indexed by an earlier version) by its `request` row: at most three
        point reads and the record's, whatever the ledger holds."""
        keys = self.listing.find_request(request_id) or self.replaced_requests.find(request_id)
        if keys is None and request_id != request_id.lower():
            keys = self.replaced_requests.find(request_id.lower())
        return self.get(*keys) if keys else None

    def versions_of(self, container: str, blob_name: str) -> list[ImportRecord]:
        partition, _ = record_keys(container, blob_name, "")
        records = list(self.store.query("PartitionKey eq @pk", {"pk": partition}))
        return sorted(records, key=lambda r: r.received_at or datetime.min.replace(tzinfo=UTC))
