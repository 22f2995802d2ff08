"""The ledger against a real Azurite Table service."""

import copy
import threading
from datetime import timedelta

import pytest

from shared.ledger import states
from shared.ledger.ledger import ImportRecord, Ledger, LedgerConflictError
from tests.helpers import MovableClock, unique_name

REQUEST_ID = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def ledger(table_service):
    built = Ledger.from_service(table_service, unique_name("ledger"), MovableClock())
    built.ensure()
    return built


def completed(ledger, record):
    """Take a record through submitting and pending to completed, as the pipeline does."""
    record = ledger.mark_submitting(record, None)
    record = ledger.record_request_id(record, REQUEST_ID)
    return ledger.move(record, states.COMPLETE)


def new_record(name="DEMO001/a #1?.txt", etag='"0x8DC1"'):
    return ImportRecord("api-import-ecrit", name, etag, size=10)


def test_claim_creates_once_and_returns_the_stored_record_afterwards(ledger):
    record, created = ledger.claim(new_record())
    assert created
    again, created_again = ledger.claim(new_record())
    assert not created_again
    assert again.keys == record.keys
    assert again.state == states.RECEIVED
    assert again.etag == '"0x8DC1"'
    assert again.blob_name == "DEMO001/a #1?.txt"


def test_concurrent_claims_make_exactly_one_winner(ledger):
    results = []
    barrier = threading.Barrier(10)

    def claim():
        barrier.wait()
        results.append(ledger.claim(new_record())[1])

    threads = [threading.Thread(target=claim) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 9 + [True]


def test_save_is_etag_guarded(ledger):
    record, _ = ledger.claim(new_record())
    stale = ledger.get(*record.keys)
    ledger.mark_submitting(record, None)
    with pytest.raises(LedgerConflictError):
        ledger.store.replace(stale)


def test_update_reapplies_on_conflict_and_keeps_both_changes(ledger):
    record, _ = ledger.claim(new_record())
    record = ledger.mark_submitting(record, None)
    stale = ledger.get(*record.keys)
    ledger.move(record, states.MARK_UNKNOWN, lambda current: current.add_flag("stale"))

    saved = ledger.record_request_id(stale, REQUEST_ID)
    stored = ledger.get(*record.keys)
    assert saved.state == stored.state == states.PENDING
    assert stored.has_flag("stale")
    assert ledger.by_request_id("11111111-2222-3333-4444-555555555555").keys == record.keys


def test_pending_index_follows_the_state(ledger):
    record, _ = ledger.claim(new_record())
    assert [r.keys for _, r in ledger.watched()] == [record.keys]
    completed(ledger, record)
    assert list(ledger.watched()) == []


def test_listing_by_state_and_versions(ledger):
    _first, _ = ledger.claim(new_record(etag='"0x1"'))
    second, _ = ledger.claim(new_record(etag='"0x2"'))
    ledger.finish(second, states.REJECT, "invalid")
    assert {r.etag for r in ledger.all_records()} == {'"0x1"', '"0x2"'}
    assert [r.etag for r in ledger.all_records(states.REJECTED)] == ['"0x2"']
    assert [r.etag for r in ledger.versions_of("api-import-ecrit", "DEMO001/a #1?.txt")] == ['"0x1"', '"0x2"']


def test_history_and_times_round_trip(ledger):
    record, _ = ledger.claim(new_record())
    expires = record.received_at + timedelta(hours=24)
    record = ledger.mark_submitting(record, expires)
    ledger.record_request_id(record, REQUEST_ID)
    stored = ledger.get(*record.keys)
    assert stored.sas_expires_at == expires
    assert [entry["state"] for entry in stored.to_dict()["history"]] == [
        states.RECEIVED, states.SUBMITTING, states.PENDING
    ]


def test_a_second_claim_of_a_finished_import_leaves_nothing_to_watch(ledger):
    record, _ = ledger.claim(new_record())
    completed(ledger, record)
    ledger.claim(new_record())
    assert list(ledger.watched()) == []


def test_a_late_answer_to_an_earlier_post_never_lands_on_an_operators_resubmission(ledger):
    """The timer called the first POST unknown, an operator resubmitted, and the second POST is in
    flight when the first one's answer finally arrives: that id belongs to the first submission and
    is not stored on the second (it is in the logs); the second's own id is."""
    record, _ = ledger.claim(new_record())
    first = copy.deepcopy(ledger.mark_submitting(record, None))  # the first delivery's own copy
    ledger.mark_unknown(ledger.get(*record.keys), "no request id stored after posting; check Loop")  # the timer
    ledger.reopen(ledger.get(*record.keys), "DEMO001", None, None)  # the operator's resubmit
    second = ledger.mark_submitting(ledger.get(*record.keys), None)
    assert ledger.record_request_id(first, "first-post-late-answer") is None
    stored = ledger.get(*record.keys)
    assert (stored.state, stored.request_id) == (states.SUBMITTING, None)
    pending = ledger.record_request_id(second, REQUEST_ID)
    assert (pending.state, pending.request_id) == (states.PENDING, REQUEST_ID)


def test_an_operator_resolving_an_unknown_import_is_not_refused_by_the_submission_guard(ledger):
    record, _ = ledger.claim(new_record())
    unknown = ledger.mark_unknown(ledger.mark_submitting(record, None), "no request id")
    resolved = ledger.record_request_id(unknown, REQUEST_ID, transition=states.RESOLVE, note="found in Loop")
    assert (resolved.state, resolved.request_id) == (states.PENDING, REQUEST_ID)
