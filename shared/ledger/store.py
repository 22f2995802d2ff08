"""Guarded reads and writes of import records in one Table Storage table.

Creation is `create_entity` (fails if the record exists); every later write replaces the entity
only if its ETag is unchanged since it was read (optimistic concurrency), and only along a move
the transition table allows. Nothing here creates the table: `ensure()` does, at the app's start.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.ledger.record import ImportRecord, from_entity, to_entity
from shared.ledger.states import check_move


class LedgerConflictError(Exception):
    """The record changed since it was read (another delivery, the timer or an operator)."""


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

        Raises:
            IllegalTransitionError: the move from the stored state is not in the transition table.
            LedgerConflictError: the entity changed or vanished since it was read.
        """
        check_move(record.blob, record.stored_state, record.state)
        try:
            with table_must_exist(self.table):
                metadata = self.table.update_entity(
                    to_entity(record),
                    mode=UpdateMode.REPLACE,
                    etag=record.table_etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceModifiedError, ResourceNotFoundError) as error:
            raise LedgerConflictError(f"record {record.blob} changed concurrently") from error
        record.table_etag, record.stored_state = metadata.get("etag"), record.state

    def query(self, query: str, parameters: Mapping[str, Any] | None = None) -> Iterator[ImportRecord]:
        with table_must_exist(self.table):
            for entity in self.table.query_entities(query, parameters=dict(parameters or {})):
                yield from_entity(entity)
