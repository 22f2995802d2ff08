"""The listing and request-id rows of the ledger (docs/ledger-index.md): written with the record's
writes, put right by a status check when their write was lost, never two for one import."""

from __future__ import annotations

from datetime import timedelta

from shared.flows.poll import check_import, poll_imports, row_of_message, schedule_due_checks
from shared.flows.submit import submit_blob
from shared.ledger import states
from shared.ledger.indexes import LIST_PREFIX, ListingIndex
from tests.helpers import poll_until_final, upload, wait_until_final_at_loop


def listed(pipeline) -> list[tuple[str, str]]:
    """(blob name, indexed state) of every listing row, newest first."""
    page = pipeline.ledger.listing.page(LIST_PREFIX, ListingIndex.end_of(None), limit=1000)
    return [(pipeline.ledger.get(*row.keys).blob_name, row.state) for row in page.rows]


def test_the_listing_follows_an_import_from_its_claim_to_its_final_state(pipeline, loop_emulator, fec_bytes):
    blob = upload(pipeline, "DEMO001/a.txt", fec_bytes)
    record = submit_blob(pipeline, blob)
    assert listed(pipeline) == [("DEMO001/a.txt", "pending")]
    assert pipeline.ledger.listing.find_request(record.request_id) == record.keys
    assert pipeline.ledger.listing.find_request(record.request_id.upper()) == record.keys
    wait_until_final_at_loop(loop_emulator)
    poll_until_final(pipeline, record)
    assert listed(pipeline) == [("DEMO001/a.txt", "completed")]


def test_a_further_delivery_of_a_version_leaves_one_listing_row(pipeline, loop_emulator, fec_bytes):
    blob = upload(pipeline, "DEMO001/a.txt", fec_bytes)
    submit_blob(pipeline, blob)
    pipeline.clock.advance(timedelta(seconds=1))
    assert submit_blob(pipeline, blob) is None
    assert listed(pipeline) == [("DEMO001/a.txt", "pending")]


def test_the_due_rows_are_read_apart_from_the_listing(pipeline, loop_emulator, fec_bytes):
    record = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    assert [entry.keys for entry in pipeline.ledger.watched_entries()] == [record.keys]


def test_a_lost_write_of_the_listing_rows_is_put_right_by_the_next_status_check(pipeline, loop_emulator, fec_bytes,
                                                                                monkeypatch):
    listing = pipeline.ledger.listing
    written = listing.operations
    with monkeypatch.context() as patch:  # the rows the POST's answer writes are lost
        patch.setattr(listing, "operations", lambda record: [] if record.request_id else written(record))
        patch.setattr(listing, "write", lambda record: None)
        record = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    assert record.state == states.PENDING
    assert pipeline.ledger.listing.find_request(record.request_id) is None
    assert listed(pipeline) == [("DEMO001/a.txt", "received")]
    sent: list[str] = []
    schedule_due_checks(pipeline, sent.append)  # the first check, as on Azure: a leased row, a message
    assert [check_import(pipeline, row_of_message(message)) for message in sent] in (["checked"], ["status_changed"], ["completed"])
    assert pipeline.ledger.listing.find_request(record.request_id) == record.keys
    assert listed(pipeline)[0][1] in ("pending", "completed")


def test_a_lost_write_of_the_listing_rows_is_put_right_by_an_in_process_check(pipeline, loop_emulator, fec_bytes,
                                                                              monkeypatch):
    listing = pipeline.ledger.listing
    written = listing.operations
    with monkeypatch.context() as patch:
        patch.setattr(listing, "operations", lambda record: [] if record.request_id else written(record))
        patch.setattr(listing, "write", lambda record: None)
        record = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    assert pipeline.ledger.listing.find_request(record.request_id) is None
    poll_imports(pipeline)
    assert pipeline.ledger.listing.find_request(record.request_id) == record.keys


def test_a_purge_reads_the_old_end_of_the_listing_by_state(pipeline, loop_emulator, fec_bytes):
    first = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    pipeline.clock.advance(timedelta(days=2))
    submit_blob(pipeline, upload(pipeline, "DEMO001/b.txt", b""))  # rejected: empty
    cutoff = pipeline.clock() - timedelta(days=1)
    old = list(pipeline.ledger.listing.received_before(cutoff))
    assert [row.keys for row in old] == [first.keys]
    assert list(pipeline.ledger.listing.received_before(cutoff, states.FINAL_STATES)) == []
    assert len(list(pipeline.ledger.listing.received_before(pipeline.clock() + timedelta(seconds=1),
                                                            states.FINAL_STATES))) == 1
