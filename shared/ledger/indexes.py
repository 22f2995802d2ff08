"""The ledger's small index partitions, each pointing at a record by its keys.

- `due` (WatchIndex): one row per import the timer looks after, RowKey
  `<next check time>|<PartitionKey>|<RowKey>`, so rows sort by when they are due and a tick reads
  only the imports that are due, never the whole set in flight.
- `request` (ReplacedRequestIndex): RowKey a Loop request id an operator's resubmit replaced, so
  `imports show <that id>` still finds the import (a current id is a field of the record, queried).
- `content-<codeIbs>` (ContentIndex): RowKey the sha256 of the file, pointing at the import that
  holds those bytes for that dossier (duplicate detection).
- In the `due` partition too, after every due row (due rows start with a digit), the listing
  (ListingIndex): a row `list|<inverted receipt time>|<PartitionKey>|<RowKey>` per import, newest
  first, holding the import's state and dossier, which `GET /api/imports` and `imports list` page
  through; and a row `rid|<request id, lower case>` per Loop request id an import was given, which
  `imports show <id>` reads. They share the `due` partition so that one entity-group transaction
  writes them with the due-row change a write makes anyway (the claim's row, a moved or dropped
  row, a check's lease row): see `shared.ledger.ledger`.

Rows whose meaning depends on what was read are written and dropped under ETag conditions, so
concurrent deliveries, the timer and operators never overwrite each other's decisions.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared.ledger.record import ImportRecord
from shared.ledger.store import table_must_exist

DUE_PARTITION = "due"
# Every due row starts with a digit (its due time): the listing and request-id rows sort after them.
_DUE_ROWS_END = ":"
LIST_PREFIX = "list|"
REQUEST_ID_PREFIX = "rid|"
_LIST_END = LIST_PREFIX + "~"
_MAX_MICROSECONDS = 10**16 - 1  # 16 digits: times up to the year 2286
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
REQUEST_PARTITION = "request"  # also holds the rows of every request id from before ids were queried
CONTENT_PARTITION_PREFIX = "content-"
Keys = tuple[str, str]
Operation = tuple[str, dict[str, object]] | tuple[str, dict[str, object], dict[str, object]]
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


def inverted_key(when: datetime) -> str:
    """Fixed-width digits that sort as text from the newest time to the oldest (microseconds)."""
    micros = (when.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1)
    return f"{_MAX_MICROSECONDS - micros:016d}"


def request_id_row(request_id: str) -> str:
    """Loop's request ids are GUIDs: compared without case, stored in lower case."""
    return REQUEST_ID_PREFIX + request_id.strip().lower()


def submit_together(table: TableClient, operations: list[Operation]) -> None:
    """Upserts and plain deletes of one partition in one entity-group transaction (one request). If
    it fails (a row to delete was gone already, say), each operation alone, a delete of a missing row
    being no error: the upserts always land."""
    try:
        with table_must_exist(table):
            table.submit_transaction(operations)
    except TableTransactionError:
        for kind, entity, *_ in operations:
            if kind == "delete":
                with contextlib.suppress(ResourceNotFoundError):
                    table.delete_entity(str(entity["PartitionKey"]), str(entity["RowKey"]))
            else:
                table.upsert_entity(entity, mode=UpdateMode.REPLACE)


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

    def __init__(self, table: TableClient, clock: Callable[[], datetime]) -> None:
        super().__init__(table, clock)
        self._joined: dict[str, list[Operation]] = {}  # row -> the listing rows its next drop writes

    @staticmethod
    def row_of(record: ImportRecord) -> str:
        if record.next_poll_at is None:
            raise ValueError(f"{record.blob} is watched without a next check time")
        return due_row(record.next_poll_at, record.keys)

    def watch(self, record: ImportRecord, at: datetime | None = None, also: list[Operation] | None = None) -> None:
        """Put the record's row at `at` (its `next_poll_at` by default); `also` (rows of the same
        partition: the listing's) in the same transaction."""
        since = record.submitted_at or record.received_at
        row = due_row(at, record.keys) if at is not None else self.row_of(record)
        if not also:
            self._upsert(DUE_PARTITION, row, record.keys, record.blob, since=since)
            return
        entity = _row_entity(DUE_PARTITION, row, record.keys, self.clock(), record.blob, since=since)
        submit_together(self.table, [("upsert", entity, {"mode": UpdateMode.REPLACE}), *also])

    def move(self, record: ImportRecord, from_row: str, also: list[Operation] | None = None) -> None:
        """Put the record's row at its `next_poll_at` and delete `from_row` in one entity-group transaction
        (both in the one `due` partition): one request, and no moment without a row. If `from_row` is gone
        (the scheduler leased it, a check dropped it), the transaction fails whole and the new row is put
        alone. `also` (the listing's rows) goes in the same transaction, or with the new row."""
        since = record.submitted_at or record.received_at
        row = _row_entity(DUE_PARTITION, self.row_of(record), record.keys, self.clock(), record.blob, since=since)
        if row["RowKey"] == from_row:
            if also:
                submit_together(self.table, also)
            return
        operations: list[Operation] = [
            ("upsert", row, {"mode": UpdateMode.REPLACE}),
            ("delete", {"PartitionKey": DUE_PARTITION, "RowKey": from_row}),
            *(also or []),
        ]
        try:
            with table_must_exist(self.table):
                self.table.submit_transaction(operations)
        except TableTransactionError:
            self.watch(record, also=also)

    def entries(self, due_by: datetime | None = None, limit: int | None = None) -> list[IndexEntry]:
        """Rows in due order: those due by `due_by` (all if None), at most `limit` of them."""
        return list(itertools.islice(self.iter_entries(due_by), limit))

    def iter_entries(self, due_by: datetime | None = None, page_size: int = 1000) -> Iterator[IndexEntry]:
        """The same rows, read a page at a time as they are consumed: a caller that stops early
        (the timer out of budget) has read at most one page more than it used."""
        query = f"PartitionKey eq '{DUE_PARTITION}'"
        query += f" and RowKey lt '{due_key(due_by)}~'" if due_by is not None else f" and RowKey lt '{_DUE_ROWS_END}'"
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

    def join_drop(self, row: str, also: list[Operation]) -> None:
        """Have the next `drop_row(row)` write `also` (the listing's rows) in its transaction."""
        self._joined[row] = also

    def drop_row(self, row: str, also: list[Operation] | None = None) -> None:
        """Delete the row (gone already: nothing to do); `also` (the listing's rows, and those joined
        to this drop) in the same transaction, or alone if the row was gone."""
        also = [*(also or []), *self._joined.pop(row, [])]
        if also:
            submit_together(self.table, [("delete", {"PartitionKey": DUE_PARTITION, "RowKey": row}), *also])
            return
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
        operations: list[Operation] = []
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


@dataclass(frozen=True)
class ListedImport:
    """A listing row: where it sits (`row`), the record it points at, and what the index holds of it."""

    row: str
    keys: Keys
    state: str
    code_ibs: str


@dataclass(frozen=True)
class ListingPage:
    """One range read of the listing: its rows, and where the next read starts (None: the range is done)."""

    rows: list[ListedImport]
    next_start: str | None
    next_inclusive: bool = False


class ListingIndex(_Partition):
    """Every import, newest first by receipt, with its state and dossier: rows of the `due` partition
    after the due rows, written in the transaction of the due-row change a write makes anyway, else in
    one of their own (see `Ledger._write`). With each request id the import was given, a `rid` row.

    The index can lag the record by a write (the `submitting` mark writes no row; a lost index write
    is put right by the next one, at the latest by the import's next status check): readers read the
    records themselves and check them (shared.flows.import_api). Rows are never the only copy of
    anything. A purge reads the old end of the range (`received_before`) and drops records with their
    rows (`drop_operations`).
    """

    @staticmethod
    def row_of(record: ImportRecord) -> str:
        received = record.received_at or record.updated_at or _EPOCH
        return "|".join((LIST_PREFIX + inverted_key(received), *record.keys))

    @staticmethod
    def start_of(newest: datetime) -> str:
        """The first row key of imports received at `newest` or before."""
        return LIST_PREFIX + inverted_key(newest)

    @staticmethod
    def end_of(oldest: datetime | None) -> str:
        """A key past every row of imports received at `oldest` or after (all rows: None)."""
        return LIST_PREFIX + inverted_key(oldest) + "~" if oldest else _LIST_END

    @staticmethod
    def is_row(row: str) -> bool:
        parts = row.split("|")
        return len(parts) >= 4 and row.startswith(LIST_PREFIX) and len(parts[1]) == 16 and parts[1].isdigit()

    def operations(self, record: ImportRecord) -> list[Operation]:
        """The upserts that make the record's rows say what the record says."""
        now = self.clock()
        listed = _row_entity(DUE_PARTITION, self.row_of(record), record.keys, now, record.blob)
        listed.update(state=str(record.state), code_ibs=record.code_ibs or "", request_id=record.request_id or "")
        for name in ("received_at", "updated_at", "finished_at"):
            if getattr(record, name) is not None:
                listed[name] = getattr(record, name)
        operations: list[Operation] = [("upsert", listed, {"mode": UpdateMode.REPLACE})]
        if record.request_id:
            found = _row_entity(DUE_PARTITION, request_id_row(record.request_id), record.keys, now, record.blob)
            operations.append(("upsert", found, {"mode": UpdateMode.REPLACE}))
        return operations

    def drop_operations(self, record: ImportRecord, request_ids: tuple[str, ...] = ()) -> list[Operation]:
        """Deletes of the record's listing row and of the `rid` rows of `request_ids`."""
        rows = [self.row_of(record), *(request_id_row(request_id) for request_id in request_ids)]
        return [("delete", {"PartitionKey": DUE_PARTITION, "RowKey": row}) for row in rows]

    def write(self, record: ImportRecord) -> None:
        submit_together(self.table, self.operations(record))

    def find_request(self, request_id: str) -> Keys | None:
        """The import that was given this request id (any case): one point read."""
        entry = self._read(DUE_PARTITION, request_id_row(request_id))
        return entry.keys if entry else None

    def page(self, start: str, end: str, *, inclusive: bool = True, states: tuple[str, ...] = (),
             code_ibs: str | None = None, limit: int = 100) -> ListingPage:
        """At most `limit` rows from `start` (newest) toward `end`, whose indexed state is one of
        `states` (any: empty) and dossier `code_ibs` (any: None): one request. The service filters;
        when it stops early (Table Storage answers after 1,000 rows or 5 seconds), the page is short
        and says where to go on."""
        query = f"PartitionKey eq @p and RowKey {'ge' if inclusive else 'gt'} @start and RowKey lt @end"
        parameters: dict[str, str] = {"p": DUE_PARTITION, "start": start, "end": end}
        if states:
            query += " and (" + " or ".join(f"state eq @s{n}" for n in range(len(states))) + " )"
            parameters |= {f"s{n}": state for n, state in enumerate(states)}
        if code_ibs is not None:
            query += " and code_ibs eq @code"
            parameters["code"] = code_ibs
        with table_must_exist(self.table):
            pages = self.table.query_entities(
                query, parameters=parameters, results_per_page=min(limit + 1, 1000),
                select=["RowKey", "record_partition", "record_row", "state", "code_ibs"],
            ).by_page()
            entities = list(next(pages, []))
        rows = [ListedImport(e["RowKey"], (e["record_partition"], e["record_row"]), e.get("state") or "",
                             e.get("code_ibs") or "") for e in entities]
        if len(rows) > limit:
            return ListingPage(rows[:limit], rows[limit - 1].row)
        token = pages.continuation_token  # type: ignore[attr-defined]
        if token and token.get("PartitionKey") == DUE_PARTITION and token.get("RowKey", "") < end:
            return ListingPage(rows, token["RowKey"], next_inclusive=True)
        return ListingPage(rows, None)

    def received_before(self, cutoff: datetime, states: frozenset[str] | None = None,
                        page_size: int = 1000) -> Iterator[ListedImport]:
        """Rows of imports received before `cutoff`, newest of them first, read a page at a time as
        consumed (a purge stops when its budget is spent); only those whose indexed state is in
        `states`, if given."""
        query = "PartitionKey eq @p and RowKey gt @start and RowKey lt @end"
        parameters: dict[str, str] = {"p": DUE_PARTITION, "start": self.end_of(cutoff), "end": _LIST_END}
        if states:
            query += " and (" + " or ".join(f"state eq @s{n}" for n in range(len(states))) + " )"
            parameters |= {f"s{n}": state for n, state in enumerate(sorted(states))}
        with table_must_exist(self.table):
            for e in self.table.query_entities(query, parameters=parameters, results_per_page=page_size,
                                               select=["RowKey", "record_partition", "record_row", "state",
                                                       "code_ibs"]):
                yield ListedImport(e["RowKey"], (e["record_partition"], e["record_row"]), e.get("state") or "",
                                   e.get("code_ibs") or "")
