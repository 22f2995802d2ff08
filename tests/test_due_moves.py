"""Moving a due row in one entity-group transaction, and the `submitting` mark that keeps its claim's row:
what the fewer round trips rely on, against real Azurite and the Loop emulator."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from shared.flows.poll import check_import, row_of_message, schedule_due_checks
from shared.flows.submit import submit_blob
from shared.ledger import states
from shared.ledger.indexes import DUE_PARTITION, due_row
from tests.helpers import submit_dying_at_the_post, upload


def rows(pipeline) -> list[str]:
    return [entry.row for entry in pipeline.ledger.watched_entries()]


def test_a_transaction_whose_delete_finds_no_row_changes_nothing(pipeline):
    """Azurite applies a batch all or nothing, as Table Storage does: the fallback of `WatchIndex.move`
    relies on it (a failed move leaves no half-written row)."""
    table = pipeline.ledger.table
    row = {"PartitionKey": DUE_PARTITION, "RowKey": "20300101T000000.000000Z|p|r", "record_partition": "p",
           "record_row": "r"}
    with pytest.raises(TableTransactionError):
        table.submit_transaction([("upsert", row, {"mode": UpdateMode.REPLACE}),
                                  ("delete", {"PartitionKey": DUE_PARTITION, "RowKey": "20290101T000000.000000Z|p|r"})])
    with pytest.raises(ResourceNotFoundError):
        table.get_entity(DUE_PARTITION, row["RowKey"])


def test_a_move_replaces_the_row_and_one_from_a_row_already_gone_still_puts_the_new_one(pipeline, loop_emulator,
                                                                                       fec_bytes):
    record = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    old_row = pipeline.ledger.watch_index.row_of(record)
    record.next_poll_at = record.next_poll_at + timedelta(minutes=1)
    pipeline.ledger.watch_index.move(record, old_row)
    assert rows(pipeline) == [pipeline.ledger.watch_index.row_of(record)]
    record.next_poll_at = record.next_poll_at + timedelta(minutes=1)
    pipeline.ledger.watch_index.move(record, old_row)  # gone: the transaction fails whole, the new row alone
    assert pipeline.ledger.watch_index.row_of(record) in rows(pipeline)


def test_the_submitting_mark_keeps_the_claims_row_and_the_request_id_moves_it(pipeline, loop_emulator, fec_bytes):
    seen: list[tuple[str, list[str], datetime | None]] = []
    original = pipeline.loop.import_fec

    def post_and_look(*args, **kwargs):
        (stored,) = pipeline.ledger.all_records()
        seen.append((stored.state, rows(pipeline), stored.next_poll_at))
        return original(*args, **kwargs)

    pipeline.loop.import_fec = post_and_look
    started = pipeline.clock()
    record = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    ((state, during_post, give_up_at),) = seen
    (claim_row,) = during_post
    assert state == states.SUBMITTING
    assert due_row(started + pipeline.claim_lease, record.keys) <= claim_row < due_row(give_up_at, record.keys)
    assert rows(pipeline) == [pipeline.ledger.watch_index.row_of(record)]


def test_a_stalled_submitting_is_found_early_moved_to_its_give_up_time_then_called_unknown(pipeline, loop_emulator,
                                                                                           fec_bytes, monkeypatch):
    record = submit_dying_at_the_post(pipeline, monkeypatch, "DEMO001/a.txt", fec_bytes)
    pipeline.clock.advance(pipeline.claim_lease + timedelta(seconds=1))  # the claim's row is due, the record not
    sent: list[str] = []
    schedule_due_checks(pipeline, sent.append)
    assert check_import(pipeline, row_of_message(sent[0])) == "not_due"
    assert rows(pipeline) == [pipeline.ledger.watch_index.row_of(record)]  # at its give-up time, alone
    pipeline.clock.advance(record.next_poll_at - pipeline.clock())
    sent.clear()
    schedule_due_checks(pipeline, sent.append)
    assert check_import(pipeline, row_of_message(sent[0])) == "unknown"
    assert pipeline.ledger.get(*record.keys).state == states.UNKNOWN
    assert rows(pipeline) == []
