"""One blob version's import, and how it is stored as a Table Storage entity.

Keys: PartitionKey `blob-<sha256(container/name)[:40]>`, RowKey the blob ETag without quotes.
Blob names can hold characters that table keys forbid (`/`, `#`, `?`), hence the hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from azure.data.tables import EdmType, EntityProperty

from shared.ledger.states import DUPLICATE, FINAL_STATES, INITIAL_STATE, WATCHED_STATES, ImportState
from shared.platform.redaction import redact_text_keeping

RECORD_PARTITION_PREFIX = "blob-"
HISTORY_LIMIT = 50
# A string property holds 32K UTF-16 code units (64 KiB) and an entity 1 MiB in all: each text is
# kept under 16K units, so even every text property at its limit leaves the entity well under 1 MiB.
MAX_TEXT_UNITS = 16_000
TRUNCATED = " [truncated]"
LOOP_STATUS_LABELS = {1: "waiting", 2: "in progress", 3: "done", 4: "failed"}
INT32_MAX = 2**31 - 1
# A duplicate's reason: it names the earlier import's file, a name its texts keep (`quoted_names`).
DUPLICATE_REASON = "same content as {blob} (request id {request}); set metadata force=true to send it again"
_EARLIER_FILE = re.compile(r"same content as (.+) \(request id [^)]*\); set metadata force=true")


def record_keys(container: str, blob_name: str, etag: str) -> tuple[str, str]:
    digest = hashlib.sha256(f"{container}/{blob_name}".encode()).hexdigest()[:40]
    return RECORD_PARTITION_PREFIX + digest, etag.strip('"')


@dataclass
class ImportRecord:
    """One blob version's import, from receipt to a final outcome.

    `stored_state`, `stored_due` and `table_etag` say what the ledger held when this copy was read:
    the store checks the move from `stored_state` to `state` against the transition table and
    writes only if the entity still has `table_etag`; the ledger moves the due-index row from
    `stored_due` (the row's time as stored: `due_row_at`, else `next_poll_at`) to its new time.
    """

    container: str
    blob_name: str
    etag: str
    state: ImportState = INITIAL_STATE
    code_ibs: str | None = None
    request_id: str | None = None
    loop_status: int | None = None
    error: str | None = None
    received_at: datetime | None = None
    submitted_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    sas_expires_at: datetime | None = None
    # How Loop got the file (settings.TRANSFER_MODES) and, for `deposit`, the URI passed to importFEC
    # (stored redacted, never a deposit URL's signature).
    transfer_mode: str | None = None
    deposit_uri: str | None = None
    snapshot: str | None = None
    size: int | None = None
    # The blob version's Last-Modified: orders the versions of one name (the reports next to the files).
    modified_at: datetime | None = None
    content_sha256: str | None = None
    attempts: int = 0
    poll_failures: int = 0
    next_poll_at: datetime | None = None
    # When the import's due-index row is due, if not at `next_poll_at`: the claim's row is kept by the
    # POST's answer when it is due before the first check (shared.ledger.ledger, `_due_row_time`).
    due_row_at: datetime | None = None
    flags: str = ""
    validation: str | None = None
    report_blob: str | None = None
    # A duplicate's earlier import (the one holding the same bytes), as "PartitionKey|RowKey": its report
    # names that import, its state and when it ended.
    duplicate_of: str | None = None
    # W3C traceparent of the delivery that claimed the version: the timer's poll spans link to that
    # trace (shared/platform/tracing.py), so one query follows a file from its upload to Loop's answer.
    trace_parent: str | None = None
    history: str = "[]"
    # A token written with each replace: after a write whose answer was lost, the stored token says
    # whether it landed (the store re-reads rather than guess). Records written before it have none.
    write_id: str | None = None
    # How many times the record was written (1 at the claim): every write is ETag-guarded, so a
    # higher revision is always a later state of the version, whatever the writers' clocks say
    # (orders two report writers of one version, shared/flows/verdict_reports.py).
    revision: int = 0
    table_etag: str | None = field(default=None, repr=False, compare=False)
    stored_state: ImportState | None = field(default=None, repr=False, compare=False)
    stored_due: datetime | None = field(default=None, repr=False, compare=False)
    # This copy's due row was leased by the scheduler: its checker writes the listing's rows with its
    # drop of that row (`listing_owed`), in one transaction (shared.ledger.ledger, `_write`).
    row_leased: bool = field(default=False, repr=False, compare=False)
    listing_owed: bool = field(default=False, repr=False, compare=False)

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
            "state": str(self.state),
            "loopStatus": self.loop_status,
            "reason": self.error,
        }

    def quoted_names(self, text: str | None) -> tuple[str, ...]:
        """The names a text about the record may quote, kept where it does (names are not secrets):
        its file as `container/name`, its name, its last segment, and for a duplicate the earlier
        import's file its reason names (DUPLICATE_REASON)."""
        earlier = _EARLIER_FILE.match(text or "") if self.state == DUPLICATE else None
        return (self.blob, self.blob_name, PurePosixPath(self.blob_name).name, *(earlier.groups() if earlier else ()))

    def redacted(self, text: str) -> str:
        """`text` about this record without secrets, the names it quotes kept."""
        return redact_text_keeping(text, self.quoted_names(text))

    def history_entries(self) -> list[dict[str, Any]]:
        return json.loads(self.history or "[]")

    def add_history(self, state: str, note: str | None, when: datetime) -> None:
        entries = self.history_entries()
        note = fit_text(self.redacted(note), MAX_TEXT_UNITS // 8) if note else note
        entries.append({"at": when.isoformat(), "state": str(state), "note": note})
        self.history = json.dumps(entries[-HISTORY_LIMIT:], ensure_ascii=False)

    def has_flag(self, flag: str) -> bool:
        return flag in self.flags.split(",")

    def add_flag(self, flag: str) -> None:
        self.flags = ",".join(sorted({*filter(None, self.flags.split(",")), flag}))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view for the CLI."""
        out: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if name in (*_HIDDEN, "history", "validation", "write_id", "due_row_at", "revision"):
                continue
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        out["state"] = str(self.state)
        out["error"] = self.redacted(self.error) if self.error else None
        out["blob"] = self.blob
        out["loop_status_label"] = self.loop_status_label
        out["validation"] = json.loads(self.validation) if self.validation else None
        out["history"] = self.history_entries()
        if self.state in FINAL_STATES:
            del out["next_poll_at"]  # nothing is due on a finished import: its last due time says nothing
        return out


_HIDDEN = ("table_etag", "stored_state", "stored_due", "row_leased", "listing_owed")


def utf16_units(text: str) -> int:
    """Length as Table Storage counts it: characters outside the BMP take two units."""
    return len(text.encode("utf-16-le")) // 2


def fit_text(text: str, limit: int = MAX_TEXT_UNITS) -> str:
    """The text cut to at most `limit` UTF-16 units, marked as cut, never splitting a character."""
    if utf16_units(text) <= limit:
        return text
    room = (limit - len(TRUNCATED)) * 2
    return text.encode("utf-16-le")[:room].decode("utf-16-le", errors="ignore") + TRUNCATED


def fit_history(history: str, limit: int = MAX_TEXT_UNITS) -> str:
    """The history as valid JSON under the limit: the oldest entries dropped, and how many said."""
    entries = json.loads(history or "[]")
    dropped = 0
    text = history
    while utf16_units(text) > limit and entries:
        entries.pop(0)
        dropped += 1
        marker = {"at": entries[0]["at"] if entries else "", "state": "", "note": f"{dropped} older entries dropped"}
        text = json.dumps([marker, *entries], ensure_ascii=False)
    return text


def fit_validation(validation: str, limit: int = MAX_TEXT_UNITS) -> str:
    """The validation summary as valid JSON under the limit: the summary dropped first (the full
    report is in its own blob), then the counts."""
    if utf16_units(validation) <= limit:
        return validation
    stored = json.loads(validation)
    kept = {key: stored.get(key) for key in ("valid", "counts", "warnings", "snapshot")}
    kept["truncated"] = True
    text = json.dumps(kept)
    if utf16_units(text) > limit:
        text = json.dumps({"valid": stored.get("valid"), "snapshot": stored.get("snapshot"), "truncated": True})
    return text


_FITTERS = {"history": fit_history, "validation": fit_validation}


def to_entity(record: ImportRecord) -> dict[str, Any]:
    """The entity to store, every text fitted to Table Storage's limits and free of secrets.

    `size` is written as Int64: a file of 2 GiB or more must not fail its claim."""
    partition, row = record.keys
    entity: dict[str, Any] = {"PartitionKey": partition, "RowKey": row}
    for name, value in asdict(record).items():
        if name in _HIDDEN or value is None:
            continue
        if isinstance(value, ImportState):
            entity[name] = str(value)
        elif name == "error":
            entity[name] = fit_text(record.redacted(value))
        elif isinstance(value, str):
            entity[name] = _FITTERS.get(name, fit_text)(value)
        else:
            entity[name] = value
    if record.size is not None:
        entity["size"] = EntityProperty(record.size, EdmType.INT64)
    return entity


def from_entity(entity: Any) -> ImportRecord:
    known = {f.name for f in fields(ImportRecord)} - set(_HIDDEN)
    values = {name: entity[name] for name in known if name in entity and entity[name] is not None}
    for name, value in values.items():
        if isinstance(value, datetime):
            values[name] = value.astimezone(UTC)
        elif isinstance(value, EntityProperty):
            values[name] = value.value
    values["state"] = ImportState(values.get("state", INITIAL_STATE))
    if "size" in values:
        values["size"] = int(values["size"])
    record = ImportRecord(**values)
    record.table_etag = entity.metadata.get("etag") if hasattr(entity, "metadata") else None
    record.stored_state = record.state
    record.stored_due = (record.due_row_at or record.next_poll_at) if record.state in WATCHED_STATES else None
    return record
