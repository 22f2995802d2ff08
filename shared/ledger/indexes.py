"""The ledger's small index partitions, each pointing at a record by its keys.

- `due` (WatchIndex): one row per import the timer looks after, RowKey
  `<next check time>|<PartitionKey>|<RowKey>`, so rows sort by when they are due and a tick reads
  only the imports that are due, never the whole set in flight.
- `request` (ReplacedRequestIndex): RowKey a Loop request id an operator's resubmit replaced, so
  `imports show <that id>` still finds the import (a current id is a field of the record, queried).
- `content-<codeIbs>` (ContentIndex): RowKey the sha256 of the file, pointing at the import that
  holds those bytes for that dossier (duplicate detection).

Rows whose meaning depends on what was read are written and dropped under ETag conditions, so
concurrent deliveries, the timer and operators never overwrite each other's decisions.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared.ledger.record import ImportRecord
from shared.ledger.store import table_must_exist

DUE_PARTITION = "due"
REQUEST_PARTITION = "request"  # also holds the rows of every request id from before ids were queried
CONTENT_PARTITION_PREFIX = "content-"
Keys = tuple[str, str]
_ROWS_PER_TRANSACTION = 50  # two operations each: Table Storage takes 100 per transaction


@dataclass(frozen=True)
class IndexEntry:
    row: str
    keys: Keys
    etag: str | None
    since: datetime | None = None  # due rows: when the import was submitted (or received)


def due_key(when: datetime) -> str:
    """A fixed-width UTC time that sorts as text in time order (microseconds, so two writes of one
    record never share a key)."""
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def due_row(when: datetime, keys: Keys) -> str:
    return "|".join((due_key(when), *keys))


def keys_of_due_row(row: str) -> Keys:
    _, partition, record_row = row.split("|", 2)
    return partition, record_row


def _row_entity(partition: str, row: str, keys: Keys, now: datetime, blob: str = "", *,
                since: datetime | None = None) -> dict[str, object]:
    entity: dict[str, object] = {
        "PartitionKey": partition,
        "RowKey": row,
        "record_partition": keys[0],
        "record_row": keys[1],
        "blob": blob,
        "indexed_at": now,
    }
    if since is not None:
        entity["since"] = since
    return entity


class _Partition:
    """Rows of one partition that point at records."""

    def __init__(self, table: TableClient, clock: Callable[[], datetime]) -> None:
        self.table = table
        self.clock = clock

    def _upsert(self, partition: str, row: str, keys: Keys, blob: str = "", *, since: datetime | None = None
                ) -> None:
        entity = _row_entity(partition, row, keys, self.clock(), blob, since=since)
        with table_must_exist(self.table):
            self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def _read(self, partition: str, row: str) -> IndexEntry | None:
        try:
            with table_must_exist(self.table):
                entity = self.table.get_entity(partition, row)
        except (ResourceNotFoundError, ValueError):
            return None
        return IndexEntry(row, (entity["record_partition"], entity["record_row"]), entity.metadata.get("etag"))

    def _delete_if_unchanged(self, partition: str, entry: IndexEntry) -> bool:
        """Delete the row only if it still has the ETag it was read with."""
        try:
            self.table.delete_entity(
                partition, entry.row, etag=entry.etag, match_condition=MatchConditions.IfNotModified
            )
        except ResourceModifiedError:
            return False
        except ResourceNotFoundError:
            return True
        return True


def _with_repeats_marked(entries: list[IndexEntry]) -> list[tuple[IndexEntry, bool]]:
    """Each row, and whether an earlier row of the list points at the same import."""
    seen: set[Keys] = set()
    rows = []
    for entry in entries:
        rows.append((entry, entry.keys in seen))
        seen.add(entry.keys)
    return rows


class WatchIndex(_Partition):
    """The imports the timer looks after, ordered by when each is next due.

    A record without a row gets it (at its `next_poll_at`) before the record itself; a record with one
    keeps it until the record is written, then `move` replaces it in one transaction. Either way a
    crash leaves it watched. A row whose key is not the
    record's current one (a lease the scheduler moved, a leftover) is dropped by whoever reads it:
    the live row always has another key, so dropping an old one can never unwatch a live import.
    """

    @staticmethod
    def row_of(record: ImportRecord) -> str:
        if record.next_poll_at is None:
            raise ValueError(f"{record.blob} is watched without a next check time")
        return due_row(record.next_poll_at, record.keys)

    def watch(self, record: ImportRecord, at: datetime | None = None) -> None:
        """Put the record's row at `at` (its `next_poll_at` by default)."""
        since = record.submitted_at or record.received_at
        row = due_row(at, record.keys) if at is not None else self.row_of(record)
        self._upsert(DUE_PARTITION, row, record.keys, record.blob, since=since)

    def move(self, record: ImportRecord, from_row: str) -> None:
        """Put the record's row at its `next_poll_at` and delete `from_row` in one entity-group transaction
        (both in the one `due` partition): one request, and no moment without a row. If `from_row` is gone
        (the scheduler leased it, a check dropped it), the transaction fails whole and the new row is put
        alone."""
        since = record.submitted_at or record.received_at
        row = _row_entity(DUE_PARTITION, self.row_of(record), record.keys, self.clock(), record.blob, since=since)
        if row["RowKey"] == from_row:
            return
        operations: list[tuple[str, dict[str, object]] | tuple[str, dict[str, object], dict[str, object]]] = [
            ("upsert", row, {"mode": UpdateMode.REPLACE}),
            ("delete", {"PartitionKey": DUE_PARTITION, "RowKey": from_row}),
        ]
        try:
            with table_must_exist(self.table):
                self.table.submit_transaction(operations)
        except TableTransactionError:
            self.watch(record)

    def entries(self, due_by: datetime | None = None, limit: int | None = None) -> list[IndexEntry]:
        """Rows in due order: those due by `due_by` (all if None), at most `limit` of them."""
        return list(itertools.islice(self.iter_entries(due_by), limit))

    def iter_entries(self, due_by: datetime | None = None, page_size: int = 1000) -> Iterator[IndexEntry]:
        """The same rows, read a page at a time as they are consumed: a caller that stops early
        (the timer out of budget) has read at most one page more than it used."""
        query = f"PartitionKey eq '{DUE_PARTITION}'"
        if due_by is not None:
            query += f" and RowKey lt '{due_key(due_by)}~'"
        with table_must_exist(self.table):
            rows = self.table.query_entities(
                query, select=["RowKey", "record_partition", "record_row", "since"], results_per_page=page_size,
            )
            for row in rows:
                keys = (row["record_partition"], row["record_row"])
                yield IndexEntry(row["RowKey"], keys, row.metadata.get("etag"), row.get("since"))

    def entry_of(self, record: ImportRecord) -> IndexEntry | None:
        """The row this copy of the record names: at `stored_due` when read from the table (a kept
        claim row), else at its `next_poll_at`; None if that row is not there (a check may have moved
        an early row without writing the record)."""
        when = record.stored_due or record.next_poll_at
        return self._read(DUE_PARTITION, due_row(when, record.keys)) if when else None

    def drop(self, entry: IndexEntry) -> bool:
        """Drop a row read earlier, unless it was rewritten since."""
        return self._delete_if_unchanged(DUE_PARTITION, entry)

    def drop_row(self, row: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(DUE_PARTITION, row)

    def postpone_many(self, entries: list[IndexEntry], until: datetime) -> list[IndexEntry]:
        """Lease many rows: each moves to `until` only if it is still the row that was read.

        A row is a create of its lease row and a delete of the row read, under the ETag it was read
        with, 50 rows per entity-group transaction (the one `due` partition): a tick leases thousands
        of rows in a few dozen requests. A second row of an import already leased here (a leftover of
        a lost write) is only deleted, under its ETag: the lease row keeps the import watched, and its
        message checks it. A chunk whose transaction fails (a row moved meanwhile by another tick or
        a check) is retried row by row, each its own transaction: a row another tick leased first is
        left to it, so two ticks at once lease disjoint rows and send one message per import."""
        moved: list[IndexEntry] = []
        rows = _with_repeats_marked(entries)
        for start in range(0, len(rows), _ROWS_PER_TRANSACTION):
            chunk = rows[start:start + _ROWS_PER_TRANSACTION]
            done = chunk if self._lease(chunk, until) else [row for row in chunk if self._lease([row], until)]
            moved += [self._leased(entry, until) for entry, folded in done if not folded]
        return moved

    def postpone(self, entry: IndexEntry, until: datetime) -> IndexEntry | None:
        """Move one row to a later time (the scheduler's lease while its message is in flight);
        None if it is not the row that was read any more."""
        return self._leased(entry, until) if self._lease([(entry, False)], until) else None

    @staticmethod
    def _leased(entry: IndexEntry, until: datetime) -> IndexEntry:
        return IndexEntry(due_row(until, entry.keys), entry.keys, None, entry.since)

    def _lease(self, rows: list[tuple[IndexEntry, bool]], until: datetime) -> bool:
        """One transaction moving every row (a folded one: deleting it) or none: False if any row
        changed or went since it was read."""
        now = self.clock()
        operations: list[tuple[str, dict[str, object]] | tuple[str, dict[str, object], dict[str, object]]] = []
        for entry, folded in rows:
            if not folded:
                lease = _row_entity(DUE_PARTITION, due_row(until, entry.keys), entry.keys, now, since=entry.since)
                operations.append(("create", lease))
            condition = {"etag": entry.etag, "match_condition": MatchConditions.IfNotModified} if entry.etag else {}
            operations.append(("delete", {"PartitionKey": DUE_PARTITION, "RowKey": entry.row}, condition))
        try:
            with table_must_exist(self.table):
                self.table.submit_transaction(operations)
        except TableTransactionError:
            return False
        return True


class ReplacedRequestIndex(_Partition):
    """Loop request id an operator's resubmit replaced -> record. Written only then (an operator's
    action), never on a submission's path; earlier versions wrote a row per id here, still read."""

    def keep(self, request_id: str, record: ImportRecord) -> None:
        self._upsert(REQUEST_PARTITION, request_id, record.keys, record.blob)

    def find(self, request_id: str) -> Keys | None:
        entry = self._read(REQUEST_PARTITION, request_id)
        return entry.keys if entry else None


class ContentIndex(_Partition):
    """sha256 of the bytes, per dossier -> the import that holds them."""

    @staticmethod
    def partition_of(record: ImportRecord) -> str:
        return CONTENT_PARTITION_PREFIX + (record.code_ibs or "")

    def claim(
        self, record: ImportRecord, holder_of: Callable[[Keys], ImportRecord | None], attempts: int = 10
    ) -> ImportRecord | None:
        """Make `record` the holder of its bytes, or return the import that holds them.

        `holder_of(keys)` returns the import a row points at if it still holds the bytes (active,
        within the window), else None. The row is created with `create_entity`, and taken over
        from an import that no longer holds it only under an ETag condition: of several
        deliveries of the same bytes at once, exactly one becomes the holder.
        """
        partition, sha = self.partition_of(record), record.content_sha256 or ""
        entity = _row_entity(partition, sha, record.keys, self.clock(), record.blob)
        for _ in range(attempts):
            try:
                with table_must_exist(self.table):
                    self.table.create_entity(entity)
                return None
            except ResourceExistsError:
                pass
            entry = self._read(partition, sha)
            if entry is None:
                continue
            if entry.keys == record.keys:
                return None
            holder = holder_of(entry.keys)
            if holder is not None:
                return holder
            with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
                self.table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=entry.etag, match_condition=MatchConditions.IfNotModified
                )
                return None
        raise ResourceModifiedError(f"content row of {record.blob} kept changing")

    def take(self, record: ImportRecord) -> None:
        """Point the row at `record` whatever held it (an operator or force=true asked for it)."""
        self._upsert(self.partition_of(record), record.content_sha256 or "", record.keys, record.blob)

    def release(self, record: ImportRecord) -> None:
        """Drop the row if, and only if, it points at `record` and is unchanged since read."""
        if not record.content_sha256:
            return
        partition = self.partition_of(record)
        entry = self._read(partition, record.content_sha256)
        if entry is not None and entry.keys == record.keys:
            self._delete_if_unchanged(partition, entry)
