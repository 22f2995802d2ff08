"""The poll flow against a real Azurite and the Loop emulator over HTTP."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from shared.flows.operator_actions import cancel
from shared.flows.poll import poll_imports
from shared.flows.submit import submit_blob
from shared.ledger import states
from tests.helpers import poll_until_final, upload, wait_until_final_at_loop


def submitted(pipeline, fec_bytes, name="DEMO001/a.txt"):
    return submit_blob(pipeline, upload(pipeline, name, fec_bytes))


def status_events(caplog):
    return [r.custom_dimensions for r in caplog.records if getattr(r, "event_name", "").startswith("import.")]


def test_import_goes_to_completed_with_every_status_logged_and_tagged(pipeline, loop_emulator, fec_bytes, caplog):
    caplog.set_level(logging.INFO, logger="fec_import")
    record = submitted(pipeline, fec_bytes)
    assert record.to_dict()["next_poll_at"] == record.next_poll_at.isoformat()
    final = poll_until_final(pipeline, record)
    assert final.state == states.COMPLETED
    assert "next_poll_at" not in final.to_dict()  # nothing is due on a finished import
    assert final.loop_status == 3
    assert final.finished_at is not None
    assert list(pipeline.ledger.watched()) == []
    seen = [(d["event"], d["loopStatus"]) for d in status_events(caplog)]
    assert ("import.completed", 3) in seen
    assert seen.index(("import.completed", 3)) > seen.index(("import.submitted", None))
    blob = pipeline.blob_service.get_blob_client(record.container, record.blob_name)
    assert blob.get_blob_tags() == {"fecimport": "completed", "looprequestid": record.request_id, "loopstatus": "3"}


def test_loop_status_4_ends_failed(pipeline, loop_emulator, fec_bytes):
    loop_emulator.set_faults({"final_status": 4})
    final = poll_until_final(pipeline, submitted(pipeline, fec_bytes))
    assert final.state == states.FAILED
    assert final.loop_status == 4
    assert "status 4" in final.error


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "http", "status": 500},
        {"kind": "json", "status": 200, "body": {"status": 9}},
        {"kind": "json", "status": 200, "body": {"status": 0}},
        {"kind": "json", "status": 200, "body": {"status": 3.7}},
        {"kind": "json", "status": 200, "body": {"status": 2.9}},
        {"kind": "json", "status": 200, "body": {"status": True}},
        {"kind": "raw", "status": 200, "text": "not json"},
        {"kind": "json", "status": 404, "body": {"error": {"message": "unknown id"}}},
        {"kind": "hang", "seconds": 4},
    ],
)
def test_a_bad_status_answer_affects_only_that_import(pipeline, loop_emulator, fec_bytes, fault):
    first = submitted(pipeline, fec_bytes, "DEMO001/a.txt")
    second = submitted(pipeline, fec_bytes + b"\r\n", "DEMO001/b.txt")
    wait_until_final_at_loop(loop_emulator)
    loop_emulator.set_faults({"status": [fault]})
    summary = poll_imports(pipeline)
    assert summary.outcomes["status_check_failed"] == 1
    assert summary.outcomes["completed"] == 1
    records = {r.blob_name: r for r in pipeline.ledger.all_records()}
    failed = [r for r in records.values() if r.state == states.PENDING]
    assert len(failed) == 1
    assert failed[0].poll_failures == 1
    assert failed[0].next_poll_at > pipeline.clock()
    assert failed[0].loop_status is None  # a bad answer is not a status: nothing rounded into one
    assert failed[0].error.startswith("status check: ")
    assert {first.blob_name, second.blob_name} == set(records)


def test_backoff_skips_an_import_until_due_then_recovers(pipeline, loop_emulator, fec_bytes):
    record = submitted(pipeline, fec_bytes)
    loop_emulator.set_faults({"status": [{"kind": "http", "status": 500}]})
    poll_imports(pipeline)
    status_calls = len([r for r in loop_emulator.requests() if r["path"] != "/importFEC"])
    assert poll_imports(pipeline).outcomes == {}  # backing off: not due, so not even read
    assert len([r for r in loop_emulator.requests() if r["path"] != "/importFEC"]) == status_calls
    wait_until_final_at_loop(loop_emulator)
    pipeline.clock.advance(timedelta(minutes=2))
    assert poll_imports(pipeline).outcomes["completed"] == 1
    final = pipeline.ledger.get(*record.keys)
    assert (final.state, final.poll_failures) == (states.COMPLETED, 0)


class Crash(BaseException):
    """The process dying: no handler of the pipeline catches it."""


def test_stuck_submitting_becomes_unknown(pipeline, loop_emulator, fec_bytes, monkeypatch):
    def die(*_args, **_kwargs):
        raise Crash

    monkeypatch.setattr(pipeline.loop, "import_fec", die)
    with pytest.raises(Crash):
        submitted(pipeline, fec_bytes)
    (record,) = pipeline.ledger.all_records()
    assert poll_imports(pipeline).outcomes == {}  # not due before SUBMIT_TIMEOUT_MINUTES
    pipeline.clock.advance(pipeline.submit_timeout + timedelta(minutes=1))
    assert poll_imports(pipeline).outcomes["unknown"] == 1
    assert pipeline.ledger.get(*record.keys).state == states.UNKNOWN


def test_sas_expiry_and_age_are_flagged_once(pipeline, loop_emulator, fec_bytes, caplog):
    caplog.set_level(logging.INFO, logger="fec_import")
    loop_emulator.set_faults({"waiting_seconds": 3600})
    record = submitted(pipeline, fec_bytes)
    pipeline.clock.advance(record.sas_expires_at - timedelta(minutes=30) - pipeline.clock())
    poll_imports(pipeline)
    pipeline.clock.advance(timedelta(minutes=1))
    poll_imports(pipeline)
    flagged = pipeline.ledger.get(*record.keys)
    assert flagged.has_flag("sas_expiring")
    assert flagged.has_flag("stale")
    names = [d["event"] for d in status_events(caplog)]
    assert names.count("import.sas_expiring") == 1
    assert names.count("import.stale") == 1


def test_an_operator_cancel_during_a_poll_is_not_overwritten(pipeline, loop_emulator, fec_bytes, monkeypatch):
    record = submitted(pipeline, fec_bytes)
    wait_until_final_at_loop(loop_emulator)
    original = pipeline.loop.get_import_status

    def status_while_operator_cancels(request_id):
        answer = original(request_id)
        cancel(pipeline, pipeline.ledger.get(*record.keys))
        return answer

    monkeypatch.setattr(pipeline.loop, "get_import_status", status_while_operator_cancels)
    poll_imports(pipeline)
    assert pipeline.ledger.get(*record.keys).state == states.CANCELLED


def test_two_pollers_at_once_complete_each_import_once(pipeline, loop_emulator, fec_bytes, caplog):
    caplog.set_level(logging.INFO, logger="fec_import")
    records = [submitted(pipeline, fec_bytes + b"\r\n" * n, f"DEMO001/{n}.txt") for n in range(6)]
    wait_until_final_at_loop(loop_emulator)
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: poll_imports(pipeline), range(2)))
    assert {pipeline.ledger.get(*r.keys).state for r in records} == {states.COMPLETED}
    completed = [d["blob"] for d in status_events(caplog) if d["event"] == "import.completed"]
    assert sorted(completed) == sorted(r.blob for r in records)
