"""The ledger's small index partitions, each pointing at a record by its keys.

- `pending` (WatchIndex): one row per import the timer looks after, RowKey `<PartitionKey>|<RowKey>`,
  so a tick reads a small partition instead of scanning the history.
- `request` (RequestIndex): RowKey a Loop request id (`imports show <request id>`).
- `content-<codeIbs>` (ContentIndex): RowKey the sha256 of the file, pointing at the import that
  holds those bytes for that dossier (duplicate detection).

Rows whose meaning depends on what was read are written and dropped under ETag conditions, so
concurrent deliveries, the timer and operators never overwrite each other's decisions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.import_record import ImportRecord
from shared.record_store import table_must_exist

PENDING_PARTITION = "pending"
REQUEST_PARTITION = "request"
CONTENT_PARTITION_PREFIX = "content-"
Keys = tuple[str, str]


@dataclass(frozen=True)
class IndexEntry:
    row: str
    keys: Keys
    etag: str | None


def _row_entity(partition: str, row: str, record: ImportRecord, now: datetime) -> dict[str, object]:
    record_partition, record_row = record.keys
    return {
        "PartitionKey": partition,
        "RowKey": row,
        "record_partition": record_partition,
        "record_row": record_row,
        "blob": record.blob,
        "indexed_at": now,
    }


class _Partition:
    """Rows of one partition that point at records."""

    def __init__(self, table: TableClient, clock: Callable[[], datetime]) -> None:
        self.table = table
        self.clock = clock

    def _upsert(self, partition: str, row: str, record: ImportRecord) -> None:
        with table_must_exist(self.table):
            self.table.upsert_entity(_row_entity(partition, row, record, self.clock()), mode=UpdateMode.REPLACE)

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


class WatchIndex(_Partition):
    """The imports the timer looks after.

    A watched write upserts the row before the record (a crash leaves it watched) and again after
    (so a concurrent drop read before the write cannot win); a row is dropped only when a read made
    after reading the row shows the record no longer watched, and only if the row is unchanged.
    """

    @staticmethod
    def row_of(record: ImportRecord) -> str:
        return "|".join(record.keys)

    def watch(self, record: ImportRecord) -> None:
        self._upsert(PENDING_PARTITION, self.row_of(record), record)

    def entries(self) -> list[IndexEntry]:
        query = f"PartitionKey eq '{PENDING_PARTITION}'"
        with table_must_exist(self.table):
            rows = self.table.query_entities(query, select=["RowKey", "record_partition", "record_row"])
            return [
                IndexEntry(row["RowKey"], (row["record_partition"], row["record_row"]), row.metadata.get("etag"))
                for row in rows
            ]

    def entry_of(self, record: ImportRecord) -> IndexEntry | None:
        return self._read(PENDING_PARTITION, self.row_of(record))

    def drop(self, entry: IndexEntry) -> bool:
        """Drop a row read earlier, unless it was rewritten since (the import is watched again)."""
        return self._delete_if_unchanged(PENDING_PARTITION, entry)


class RequestIndex(_Partition):
    """Loop request id -> record."""

    def record(self, record: ImportRecord) -> None:
        if record.request_id:
            self._upsert(REQUEST_PARTITION, record.request_id, record)

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
        entity = _row_entity(partition, sha, record, self.clock())
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
        self._upsert(self.partition_of(record), record.content_sha256 or "", record)

    def release(self, record: ImportRecord) -> None:
        """Drop the row if, and only if, it points at `record` and is unchanged since read."""
        if not record.content_sha256:
            return
        partition = self.partition_of(record)
        entry = self._read(partition, record.content_sha256)
        if entry is not None and entry.keys == record.keys:
            self._delete_if_unchanged(partition, entry)
