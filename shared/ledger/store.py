"""Guarded reads and writes of import records in one Table Storage table.

Creation is `create_entity` (fails if the record exists); every later write replaces the entity
only if its ETag is unchanged since it was read (optimistic concurrency), and only along a move
the transition table allows. Nothing here creates the table: `ensure()` does, at the app's start.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, UpdateMode

from shared.ledger.record import ImportRecord, from_entity, to_entity
from shared.ledger.states import check_move

log = logging.getLogger(__name__)
T = TypeVar("T")
WRITE_ATTEMPTS = 3
RETRY_PAUSE_SECONDS = 0.2


class LedgerConflictError(Exception):
    """The record changed since it was read (another delivery, the timer or an operator).

    `fresh` is the stored record when the store read it to tell (saves the caller a read)."""

    def __init__(self, message: str, fresh: ImportRecord | None = None) -> None:
        super().__init__(message)
        self.fresh = fresh


def is_transient(error: AzureError) -> bool:
    """A failure worth one more try: no answer, or storage busy or failing (not a refused condition)."""
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return True
    status = getattr(error, "status_code", None) or 0
    return isinstance(error, HttpResponseError) and (status >= 500 or status in (408, 429))


def with_retries(call: Callable[[], T], what: str) -> T:
    """Run an idempotent (or ETag-guarded) storage call, again on a transient failure, a few times.

    The SDK's own retries may be spent, or may not apply (an answer lost after the request was
    sent): these tries make the ledger's writes around the POST survive a failure once."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            return call()
        except AzureError as error:
            if attempt == WRITE_ATTEMPTS or not is_transient(error):
                raise
            log.warning("storage: %s failed (%s); try %d of %d", what, type(error).__name__, attempt + 1,
                        WRITE_ATTEMPTS)
            time.sleep(RETRY_PAUSE_SECONDS * attempt)
    raise AssertionError("unreachable")


class LedgerMissingError(Exception):
    """The ledger table does not exist: the app creates it at start; nothing else does."""


def is_missing_table(error: ResourceNotFoundError) -> bool:
    return getattr(error, "error_code", None) == "TableNotFound" or "TableNotFound" in str(error)


@contextlib.contextmanager
def table_must_exist(table: TableClient) -> Iterator[None]:
    """Turn "the table does not exist" into LedgerMissingError naming the table and what to do."""
    try:
        yield
    except ResourceNotFoundError as error:
        if not is_missing_table(error):
            raise
        raise LedgerMissingError(
            f"table {table.table_name!r} does not exist at {table.url}: "
            "start the app once (it creates its tables), or check IMPORT_LEDGER_TABLE and AzureWebJobsStorage"
        ) from None


class RecordStore:
    """Create, read, replace and query records; writes are ETag-guarded and transition-checked."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    def ensure(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self.table.create_table()

    def create(self, record: ImportRecord) -> bool:
        """Store a new record; False if one with these keys exists already."""
        check_move(record.blob, None, record.state)
        try:
            with table_must_exist(self.table):
                metadata = self.table.create_entity(to_entity(record))
        except ResourceExistsError:
            return False
        record.table_etag, record.stored_state = metadata.get("etag"), record.state
        return True

    def get(self, partition: str, row: str) -> ImportRecord | None:
        try:
            with table_must_exist(self.table):
                return from_entity(self.table.get_entity(partition, row))
        except ResourceNotFoundError:
            return None

    def replace(self, record: ImportRecord) -> None:
        """Write the record if nobody changed it since it was read and the move is allowed.

        A transient failure is tried again under the same ETag. When the ETag no longer matches, the
        stored record is read: if it holds this write's token, an earlier try landed and only its
        answer was lost, so the write is done; else someone else wrote it.

        Raises:
            IllegalTransitionError: the move from the stored state is not in the transition table.
            LedgerConflictError: the entity changed or vanished since it was read.
        """
        check_move(record.blob, record.stored_state, record.state)
        record.write_id = uuid.uuid4().hex
        entity = to_entity(record)
        try:
            with table_must_exist(self.table):
                metadata = with_retries(lambda: self.table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=record.table_etag,
                    match_condition=MatchConditions.IfNotModified,
                ), f"write of {record.blob}")
        except (ResourceModifiedError, ResourceNotFoundError) as error:
            fresh = self.get(*record.keys)
            if fresh is None or fresh.write_id != record.write_id:
                raise LedgerConflictError(f"record {record.blob} changed concurrently", fresh) from error
            metadata = {"etag": fresh.table_etag}
        record.table_etag, record.stored_state = metadata.get("etag"), record.state

    def delete(self, record: ImportRecord) -> bool:
        """Delete the record only if nobody wrote it since this copy was read (its table ETag); False
        if it changed (a resubmit, a late answer: it is not the record that was judged). A record gone
        already counts as deleted."""
        try:
            with table_must_exist(self.table):
                self.table.delete_entity(*record.keys, etag=record.table_etag,
                                         match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError:
            return False
        except ResourceNotFoundError:
            return True
        return True

    def query(self, query: str, parameters: Mapping[str, Any] | None = None) -> Iterator[ImportRecord]:
        with table_must_exist(self.table):
            for entity in self.table.query_entities(query, parameters=dict(parameters or {})):
                yield from_entity(entity)
