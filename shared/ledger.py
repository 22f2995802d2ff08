"""The import ledger in Azure Table Storage: one record per blob version, plus small indexes.

Layout (one table, several partitions):
- records: PartitionKey `blob-<sha256(container/name)[:40]>`, RowKey the blob ETag (quotes removed).
  Blob names can hold characters that table keys forbid (`/`, `#`, `?`), hence the hash.
- `pending`: one row per import that still needs the timer (RowKey `<PartitionKey>|<RowKey>`), so
  the timer reads a small partition instead of scanning the history.
- `request`: RowKey a Loop request id, pointing at its record (`imports show <request id>`).
- `content-<codeIbs>`: RowKey the sha256 of the file, pointing at the first import of those bytes
  for that dossier (duplicate detection).

Every update is ETag-guarded (optimistic concurrency): the transition to `submitting` is the single
compare-and-swap that decides which delivery may call Loop, so a blob version is sent at most once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

RECORD_PARTITION_PREFIX = "blob-"
PENDING_PARTITION = "pending"
REQUEST_PARTITION = "request"
CONTENT_PARTITION_PREFIX = "content-"
MAX_TEXT_PROPERTY = 30_000  # table string properties hold 32K UTF-16 characters

RECEIVED = "received"
RETRY_WAIT = "retry_wait"
SUBMITTING = "submitting"
PENDING = "pending"
UNKNOWN = "unknown"
COMPLETED = "completed"
FAILED = "failed"
REJECTED = "rejected"
SUBMIT_FAILED = "submit_failed"
DUPLICATE = "duplicate"
SUPERSEDED = "superseded"
CANCELLED = "cancelled"

# States in which no POST can have been sent yet: a later delivery may take the work over.
NOT_SENT_STATES = frozenset({RECEIVED, RETRY_WAIT})
# States the timer looks after (they sit in the pending partition).
WATCHED_STATES = frozenset({RECEIVED, RETRY_WAIT, SUBMITTING, PENDING})
FINAL_STATES = frozenset({COMPLETED, FAILED, REJECTED, SUBMIT_FAILED, DUPLICATE, SUPERSEDED, CANCELLED})

LOOP_STATUS_LABELS = {1: "waiting", 2: "in progress", 3: "done", 4: "failed"}


def _watch_row(record: ImportRecord) -> str:
    """RowKey of a record's entry in the pending partition."""
    return "|".join(record.keys)


class LedgerConflictError(Exception):
    """The record changed since it was read (another delivery, the timer or an operator)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def record_keys(container: str, blob_name: str, etag: str) -> tuple[str, str]:
    digest = hashlib.sha256(f"{container}/{blob_name}".encode()).hexdigest()[:40]
    return RECORD_PARTITION_PREFIX + digest, etag.strip('"')


@dataclass
class ImportRecord:
    """One blob version's import, from receipt to a final outcome."""

    container: str
    blob_name: str
    etag: str
    state: str = RECEIVED
    code_ibs: str | None = None
    request_id: str | None = None
    loop_status: int | None = None
    error: str | None = None
    received_at: datetime | None = None
    submitted_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    sas_expires_at: datetime | None = None
    snapshot: str | None = None
    size: int | None = None
    content_sha256: str | None = None
    attempts: int = 0
    poll_failures: int = 0
    next_poll_at: datetime | None = None
    flags: str = ""
    validation: str | None = None
    report_blob: str | None = None
    history: str = "[]"
    table_etag: str | None = field(default=None, repr=False, compare=False)

    @property
    def keys(self) -> tuple[str, str]:
        return record_keys(self.container, self.blob_name, self.etag)

    @property
    def blob(self) -> str:
        return f"{self.container}/{self.blob_name}"

    @property
    def loop_status_label(self) -> str:
        return LOOP_STATUS_LABELS.get(self.loop_status or 0, "")

    def dimensions(self) -> dict[str, Any]:
        """The fixed telemetry dimensions of this record."""
        return {
            "blob": self.blob,
            "etag": self.etag,
            "codeIbs": self.code_ibs,
            "requestId": self.request_id,
            "state": self.state,
            "loopStatus": self.loop_status,
            "reason": self.error,
        }

    def add_history(self, state: str, note: str | None = None, when: datetime | None = None) -> None:
        entries = json.loads(self.history or "[]")
        entries.append({"at": (when or utcnow()).isoformat(), "state": state, "note": note})
        self.history = json.dumps(entries[-50:])

    def has_flag(self, flag: str) -> bool:
        return flag in self.flags.split(",")

    def add_flag(self, flag: str) -> None:
        self.flags = ",".join(sorted({*filter(None, self.flags.split(",")), flag}))

    def to_entity(self) -> dict[str, Any]:
        partition, row = self.keys
        entity: dict[str, Any] = {"PartitionKey": partition, "RowKey": row}
        for name, value in asdict(self).items():
            if name == "table_etag" or value is None:
                continue
            too_long = isinstance(value, str) and len(value) > MAX_TEXT_PROPERTY
            entity[name] = value[:MAX_TEXT_PROPERTY] if too_long else value
        return entity

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> ImportRecord:
        known = {f.name for f in fields(cls)} - {"table_etag"}
        values = {name: entity[name] for name in known if name in entity and entity[name] is not None}
        for name, value in values.items():
            if isinstance(value, datetime):
                values[name] = value.astimezone(UTC)
        record = cls(**values)
        record.table_etag = entity.metadata.get("etag") if hasattr(entity, "metadata") else None
        return record

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view for the CLI."""
        out: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if name in ("table_etag", "history", "validation"):
                continue
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        out["blob"] = self.blob
        out["loop_status_label"] = self.loop_status_label
        out["validation"] = json.loads(self.validation) if self.validation else None
        out["history"] = json.loads(self.history or "[]")
        return out


class Ledger:
    """Reads and writes import records; every write of a known record is ETag-guarded."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    @classmethod
    def from_service(cls, service: TableServiceClient, table_name: str) -> Ledger:
        table = service.get_table_client(table_name)
        with contextlib.suppress(ResourceExistsError):
            table.create_table()
        return cls(table)

    # --- records -------------------------------------------------------------------------

    def claim(self, record: ImportRecord) -> tuple[ImportRecord, bool]:
        """Create the record; if it exists (a second delivery), return the stored one and False."""
        now = utcnow()
        record.received_at = record.received_at or now
        record.updated_at = now
        record.attempts = 1
        record.add_history(record.state, "received", now)
        self._add_index(PENDING_PARTITION, record)  # first: a crash right after leaves it watched
        try:
            metadata = self.table.create_entity(record.to_entity())
        except ResourceExistsError:
            existing = self.get(*record.keys)
            if existing is None:  # deleted between the two calls: treat as a conflict
                raise LedgerConflictError(f"record {record.blob} vanished during claim") from None
            if existing.state not in WATCHED_STATES:
                self._drop_index(PENDING_PARTITION, _watch_row(record))
            return existing, False
        record.table_etag = metadata.get("etag")
        return record, True

    def get(self, partition: str, row: str) -> ImportRecord | None:
        try:
            return ImportRecord.from_entity(self.table.get_entity(partition, row))
        except ResourceNotFoundError:
            return None

    def save(self, record: ImportRecord, note: str | None = None) -> ImportRecord:
        """Write the record if nobody changed it since it was read; raise LedgerConflictError otherwise."""
        now = utcnow()
        record.updated_at = now
        record.add_history(record.state, note, now)
        if record.state in WATCHED_STATES:  # watched before the state says so, never after
            self._add_index(PENDING_PARTITION, record)
        try:
            metadata = self.table.update_entity(
                record.to_entity(),
                mode=UpdateMode.REPLACE,
                etag=record.table_etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as error:
            raise LedgerConflictError(f"record {record.blob} changed concurrently") from error
        record.table_etag = metadata.get("etag")
        self._sync_indexes(record)
        return record

    def update(
        self, record: ImportRecord, change: Callable[[ImportRecord], bool], note: str | None = None,
        attempts: int = 5,
    ) -> ImportRecord | None:
        """Apply `change` and save, re-reading and re-applying on conflict.

        `change` returns False when, given the current record, nothing should be written; then
        update returns None. This is how the timer and operators never lose each other's updates.
        """
        current = record
        for _ in range(attempts):
            if not change(current):
                return None
            try:
                return self.save(current, note)
            except LedgerConflictError:
                fresh = self.get(*record.keys)
                if fresh is None:
                    return None
                current = fresh
        raise LedgerConflictError(f"record {record.blob} kept changing; gave up after {attempts} tries")

    # --- indexes ---------------------------------------------------------------------------

    def _add_index(self, partition: str, record: ImportRecord, row: str | None = None) -> None:
        record_partition, record_row = record.keys
        self.table.upsert_entity(
            {
                "PartitionKey": partition,
                "RowKey": row or _watch_row(record),
                "record_partition": record_partition,
                "record_row": record_row,
                "blob": record.blob,
                "indexed_at": utcnow(),
            },
            mode=UpdateMode.REPLACE,
        )

    def _drop_index(self, partition: str, row: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(partition, row)

    def _sync_indexes(self, record: ImportRecord) -> None:
        if record.state not in WATCHED_STATES:
            self._drop_index(PENDING_PARTITION, _watch_row(record))
        if record.request_id:
            self._add_index(REQUEST_PARTITION, record, record.request_id)

    def watched_keys(self) -> list[tuple[str, tuple[str, str]]]:
        """The imports the timer looks after, as (index row, record keys): one query."""
        query = f"PartitionKey eq '{PENDING_PARTITION}'"
        return [
            (entry["RowKey"], (entry["record_partition"], entry["record_row"]))
            for entry in self.table.query_entities(query, select=["RowKey", "record_partition", "record_row"])
        ]

    def watched(self) -> Iterator[tuple[str, ImportRecord | None]]:
        """The imports the timer looks after: (index row, record or None if the record is gone)."""
        for index_row, keys in self.watched_keys():
            yield index_row, self.get(*keys)

    def drop_watch(self, index_row: str) -> None:
        self._drop_index(PENDING_PARTITION, index_row)

    def earlier_import_of_content(self, record: ImportRecord) -> ImportRecord | None:
        """Record that these bytes were sent for this dossier; return the earlier import if any."""
        partition = CONTENT_PARTITION_PREFIX + (record.code_ibs or "")
        try:
            entry = self.table.get_entity(partition, record.content_sha256 or "")
        except ResourceNotFoundError:
            return None
        return self.get(entry["record_partition"], entry["record_row"])

    def store_content(self, record: ImportRecord) -> None:
        self._add_index(CONTENT_PARTITION_PREFIX + (record.code_ibs or ""), record, record.content_sha256)

    def forget_content(self, record: ImportRecord) -> None:
        self._drop_index(CONTENT_PARTITION_PREFIX + (record.code_ibs or ""), record.content_sha256 or "")

    # --- lookups for operators -------------------------------------------------------------

    def all_records(self, state: str | None = None) -> Iterator[ImportRecord]:
        query = f"PartitionKey ge '{RECORD_PARTITION_PREFIX}' and PartitionKey lt 'blob.'"
        if state:
            query += " and state eq @state"
        for entity in self.table.query_entities(query, parameters={"state": state} if state else None):
            yield ImportRecord.from_entity(entity)

    def by_request_id(self, request_id: str) -> ImportRecord | None:
        try:
            entry = self.table.get_entity(REQUEST_PARTITION, request_id)
        except (ResourceNotFoundError, ValueError):
            return None
        return self.get(entry["record_partition"], entry["record_row"])

    def versions_of(self, container: str, blob_name: str) -> list[ImportRecord]:
        partition, _ = record_keys(container, blob_name, "")
        entities = self.table.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
        records = [ImportRecord.from_entity(entity) for entity in entities]
        return sorted(records, key=lambda r: r.received_at or datetime.min.replace(tzinfo=UTC))
