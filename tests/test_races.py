"""Exactly once under real races: threads released together by a barrier, each scenario repeated,
real Azurite and the Loop emulator over HTTP."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from azure.storage.blob import BlobClient

from shared.flows.dossier import DossierError
from shared.flows.operator_actions import OperatorError, cancel, resubmit
from shared.flows.poll import poll_imports
from shared.flows.submit import redrive, submit_blob
from shared.ledger import states
from tests.helpers import run_together, upload, wait_until_final_at_loop

ROUNDS = 20


class Crash(BaseException):
    """The process dying: no handler of the pipeline catches it."""


def crash(*_args, **_kwargs):
    raise Crash


def posts(emulator) -> list[dict]:
    return [r for r in emulator.requests() if r["path"] == "/importFEC"]


def unique_bytes(fec_bytes: bytes, tag: str) -> bytes:
    """Valid FEC bytes of their own (another label), so rounds never share content."""
    return fec_bytes.replace(b"Facture", f"Facture {tag}".encode())


@pytest.mark.parametrize("copies", [6, 20])
def test_the_same_bytes_under_many_names_at_once_are_sent_once(pipeline, loop_emulator, fec_bytes, copies):
    rounds = ROUNDS  # 20 rounds for 6 names and for 20 names
    for round_number in range(rounds):
        data = unique_bytes(fec_bytes, f"r{copies}-{round_number}")
        blobs = [upload(pipeline, f"DEMO001/r{round_number}/copy {n}.txt", data) for n in range(copies)]
        before = len(posts(loop_emulator))
        results = run_together(copies, lambda n, blobs=blobs: submit_blob(pipeline, blobs[n]))
        assert not [r for r in results if isinstance(r, Exception)]
        assert len(posts(loop_emulator)) - before == 1, f"round {round_number}"
        outcomes = sorted(str(r.state) for r in results)
        assert outcomes == ["duplicate"] * (copies - 1) + ["pending"], f"round {round_number}"


def _stalled_record(pipeline, blob):
    """A delivery that died after its claim, before any POST, its lease now over."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("shared.flows.submit.resolve_dossier", crash)
        with pytest.raises(Crash):
            submit_blob(pipeline, blob)
    pipeline.clock.advance(pipeline.claim_lease + timedelta(seconds=1))
    (record,) = pipeline.ledger.versions_of(blob.container_name, blob.blob_name)
    return record


def test_redrive_from_a_stale_copy_never_overwrites_submitting(pipeline, loop_emulator, fec_bytes, monkeypatch):
    """The timer read the record, then found the blob overwritten, while a delivery (which had its
    snapshot) was posting: superseding from the stale copy must be refused, the id kept."""
    blob = upload(pipeline, "DEMO001/a.txt", fec_bytes)
    stale = _stalled_record(pipeline, blob)
    original_post = pipeline.loop.import_fec

    def post_while_the_timer_redrives(*args, **kwargs):
        upload(pipeline, "DEMO001/a.txt", fec_bytes + b"\r\n")  # a new version lands
        redrive(pipeline, stale)  # the timer, from what it read before the delivery marked submitting
        return original_post(*args, **kwargs)

    monkeypatch.setattr(pipeline.loop, "import_fec", post_while_the_timer_redrives)
    sent = submit_blob(pipeline, blob)
    stored = pipeline.ledger.get(*stale.keys)
    assert (stored.state, stored.request_id) == (states.PENDING, sent.request_id)
    assert len(posts(loop_emulator)) == 1


def test_a_redelivery_and_the_timer_at_once_post_once(pipeline, loop_emulator, fec_bytes):
    for round_number in range(ROUNDS):
        blob = upload(pipeline, f"DEMO001/stalled {round_number}.txt", unique_bytes(fec_bytes, f"s{round_number}"))
        record = _stalled_record(pipeline, blob)
        before = len(posts(loop_emulator))
        results = run_together(2, lambda n, blob=blob: submit_blob(pipeline, blob) if n else poll_imports(pipeline))
        assert not [r for r in results if isinstance(r, Exception)], results
        assert len(posts(loop_emulator)) - before == 1, f"round {round_number}"
        assert pipeline.ledger.get(*record.keys).state == states.PENDING


def _leftover_watch_row(pipeline, record):
    """A final import whose watch row is still there (a timer stopped before dropping it)."""
    pipeline.ledger.watch_index.watch(record)
    return pipeline.ledger.watch_index.entry_of(record)


def test_the_timer_never_drops_the_watch_row_of_an_import_an_operator_just_reopened(
    pipeline, loop_emulator, fec_bytes, monkeypatch
):
    loop_emulator.set_faults({"final_status": 4})
    sent = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    wait_until_final_at_loop(loop_emulator)
    poll_imports(pipeline)
    failed = pipeline.ledger.get(*sent.keys)
    assert failed.state == states.FAILED
    _leftover_watch_row(pipeline, failed)
    loop_emulator.set_faults({"final_status": 3})
    original_get = pipeline.ledger.get
    reopened = {}

    def read_then_operator_resubmits(partition, row):
        record = original_get(partition, row)  # the timer sees `failed`...
        if not reopened:
            reopened["record"] = resubmit(pipeline, original_get(partition, row))  # ...an operator resubmits
        return record

    monkeypatch.setattr(pipeline.ledger, "get", read_then_operator_resubmits)
    assert dict(poll_imports(pipeline).outcomes) == {"unwatched": 1}
    monkeypatch.undo()
    assert reopened["record"].state == states.PENDING
    assert [entry.keys for entry in pipeline.ledger.watched_entries()] == [sent.keys]


def test_resubmit_and_the_timer_at_once_leave_a_live_import_watched(pipeline, loop_emulator, fec_bytes):
    loop_emulator.set_faults({"final_status": 4})
    for round_number in range(ROUNDS):
        sent = submit_blob(pipeline, upload(pipeline, f"DEMO001/w{round_number}.txt",
                                            unique_bytes(fec_bytes, f"w{round_number}")))
        wait_until_final_at_loop(loop_emulator)
        poll_imports(pipeline)
        failed = pipeline.ledger.get(*sent.keys)
        assert failed.state == states.FAILED
        _leftover_watch_row(pipeline, failed)
        results = run_together(2, lambda n, failed=failed: resubmit(pipeline, failed) if n else poll_imports(pipeline))
        assert not [r for r in results if isinstance(r, Exception)], results
        stored = pipeline.ledger.get(*sent.keys)
        watched = {entry.keys for entry in pipeline.ledger.watched_entries()}
        assert stored.state == states.PENDING
        assert stored.keys in watched, f"round {round_number}: a pending import lost its watch row"
        pipeline.ledger.finish(stored, states.CANCEL, "end of round")


def test_resubmit_validates_bytes_that_were_never_validated(pipeline, loop_emulator, fec_bytes):
    broken = fec_bytes.replace(b"|20240202|401000", b"|20240231|401000", 1)
    never_validated = submit_blob(pipeline, upload(pipeline, "nodossier.txt", broken))
    assert never_validated.state == states.REJECTED
    assert "invalid_date" in never_validated.error  # a file without a dossier is validated anyway (issue 25)
    never_validated.validation = never_validated.snapshot = None  # as a record rejected before issue 25 was
    with pytest.raises(OperatorError, match=r"not a valid FEC file.*invalid_date"):
        resubmit(pipeline, never_validated, "DEMO001")
    assert posts(loop_emulator) == []
    assert pipeline.ledger.get(*never_validated.keys).state == states.REJECTED
    valid = submit_blob(pipeline, upload(pipeline, "nodossier-valid.txt", fec_bytes))
    resent = resubmit(pipeline, valid, "DEMO001")
    assert resent.state == states.PENDING
    assert len(posts(loop_emulator)) == 1


def test_resubmit_snapshots_only_the_recorded_version(pipeline, loop_emulator, fec_bytes, monkeypatch):
    """An overwrite between the operator's command and the snapshot must not send the new bytes."""
    record = submit_blob(pipeline, upload(pipeline, "nodossier.txt", fec_bytes))
    record.snapshot = None  # as a record rejected before issue 25, when a file without a dossier had no snapshot
    original_snapshot = BlobClient.create_snapshot

    def overwritten_just_before(self, *args, **kwargs):
        upload(pipeline, "nodossier.txt", fec_bytes.replace(b"Facture", b"Autre facture"))
        return original_snapshot(self, *args, **kwargs)

    monkeypatch.setattr(BlobClient, "create_snapshot", overwritten_just_before)
    with pytest.raises(OperatorError, match="overwritten since"):
        resubmit(pipeline, record, "DEMO001")
    assert posts(loop_emulator) == []


def test_releasing_content_never_drops_a_row_another_import_holds(pipeline, loop_emulator, fec_bytes):
    first = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    forced = submit_blob(pipeline, upload(pipeline, "DEMO001/b.txt", fec_bytes, force="true"))
    assert forced.state == states.PENDING
    cancel(pipeline, pipeline.ledger.get(*first.keys))  # releases first's claim on the bytes: not forced's
    third = submit_blob(pipeline, upload(pipeline, "DEMO001/c.txt", fec_bytes))
    assert third.state == states.DUPLICATE
    assert forced.blob in third.error
    assert len(posts(loop_emulator)) == 2


def test_a_caller_reports_the_stored_state_when_the_record_moved_on(pipeline, loop_emulator, fec_bytes, monkeypatch):
    blob = upload(pipeline, "nodossier.txt", fec_bytes)

    def operator_cancels_then_no_dossier(name, *_args):
        (record,) = pipeline.ledger.versions_of(blob.container_name, name)
        cancel(pipeline, record)
        raise DossierError("no dossier")

    monkeypatch.setattr("shared.flows.submit.resolve_dossier", operator_cancels_then_no_dossier)
    returned = submit_blob(pipeline, blob)
    assert returned.state == states.CANCELLED
    assert pipeline.ledger.get(*returned.keys).state == states.CANCELLED


def test_a_delivery_that_keeps_failing_before_the_post_gives_up_with_its_reason(
    pipeline, loop_emulator, fec_bytes, monkeypatch
):
    pipeline.settings = dataclasses.replace(pipeline.settings, submit_max_attempts=3)
    validations = []
    import shared.flows.snapshot_validation as submit_module  # noqa: PLC0415

    original_validate = submit_module.validate_stream
    monkeypatch.setattr(submit_module, "validate_stream",
                        lambda *a, **k: (validations.append(1), original_validate(*a, **k))[1])

    def signing_down(*_args, **_kwargs):
        raise RuntimeError("signing service down")

    monkeypatch.setattr(pipeline.signer, "sign", signing_down)
    blob = upload(pipeline, "DEMO001/a.txt", fec_bytes)
    with pytest.raises(RuntimeError):
        submit_blob(pipeline, blob)
    stored = pipeline.ledger.versions_of(blob.container_name, blob.blob_name)[0]
    assert (stored.state, stored.error) == (states.RECEIVED, "RuntimeError: signing service down")
    assert poll_imports(pipeline).outcomes == {}  # the backoff is not over: not due, not even read
    outcomes = []
    for _ in range(4):
        pipeline.clock.advance(timedelta(hours=2))
        outcomes.append(dict(poll_imports(pipeline).outcomes))
    final = pipeline.ledger.get(*stored.keys)
    assert final.state == states.SUBMIT_FAILED
    assert final.error == "gave up after 3 attempts; last: RuntimeError: signing service down"
    assert validations == [1]  # later attempts reused the verdict on the same snapshot
    assert posts(loop_emulator) == []
    assert list(pipeline.ledger.watched_entries()) == []


def test_a_resubmit_from_a_stale_copy_never_sends_an_import_sent_meanwhile(pipeline, loop_emulator, fec_bytes,
                                                                         monkeypatch):
    """The operator read the import in retry_wait; a redelivery sent it (outcome unknown) before the
    operator's reopen was written: the reopen must not re-apply on the fresh copy."""
    loop_emulator.set_faults({"importFEC": [{"kind": "http", "status": 503, "retry_after": 0, "times": 5}]})
    blob = upload(pipeline, "DEMO001/a.txt", fec_bytes)
    with pytest.raises(Exception, match="busy"):
        submit_blob(pipeline, blob)
    seen_by_operator = pipeline.ledger.versions_of(blob.container_name, blob.blob_name)[0]
    assert seen_by_operator.state == states.RETRY_WAIT
    loop_emulator.set_faults({"importFEC": [{"kind": "reset"}]})
    assert submit_blob(pipeline, blob).state == states.UNKNOWN  # the host's redelivery: sent, outcome unknown
    with pytest.raises(OperatorError, match="changed state meanwhile"):
        resubmit(pipeline, seen_by_operator)
    assert len([p for p in posts(loop_emulator) if p["status"] != 503]) == 1
    assert pipeline.ledger.get(*seen_by_operator.keys).state == states.UNKNOWN


def test_an_import_still_submitting_cannot_be_resolved(pipeline, loop_emulator, fec_bytes, monkeypatch):
    from shared.flows.operator_actions import resolve  # noqa: PLC0415

    monkeypatch.setattr(pipeline.loop, "import_fec", crash)
    with pytest.raises(Crash):
        submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    (record,) = pipeline.ledger.all_records()
    assert record.state == states.SUBMITTING
    with pytest.raises(OperatorError, match="only unknown imports"):
        resolve(pipeline, record, "11111111-2222-3333-4444-555555555555")


def test_a_failure_before_the_post_releases_the_claim_on_the_bytes(pipeline, loop_emulator, fec_bytes, monkeypatch):
    def signing_down(*_args, **_kwargs):
        raise RuntimeError("signing service down")

    with monkeypatch.context() as patch:
        patch.setattr(pipeline.signer, "sign", signing_down)
        with pytest.raises(RuntimeError):
            submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    copy = submit_blob(pipeline, upload(pipeline, "DEMO001/copy.txt", fec_bytes))
    assert copy.state == states.PENDING  # not a duplicate of an import that may never be sent


def test_a_failed_status_check_never_lands_on_the_submission_an_operator_made_meanwhile(
    pipeline, loop_emulator, fec_bytes, monkeypatch
):
    """The check read the import and asked Loop, which failed; meanwhile an operator cancelled and
    resubmitted it: the failure is the old request's, the new submission stays due and unmarked."""
    from shared.flows.poll import check_import  # noqa: PLC0415

    original_status = pipeline.loop.get_import_status
    operator: dict = {}

    def loop_fails_while_the_operator_resubmits(request_id):
        if "keys" in operator and "resent" not in operator:
            cancel(pipeline, pipeline.ledger.get(*operator["keys"]))
            operator["resent"] = resubmit(pipeline, pipeline.ledger.get(*operator["keys"]))
        return original_status(request_id)

    monkeypatch.setattr(pipeline.loop, "get_import_status", loop_fails_while_the_operator_resubmits)
    wrong = []
    for round_number in range(ROUNDS):
        sent = submit_blob(pipeline, upload(pipeline, f"DEMO001/p{round_number}.txt",
                                            unique_bytes(fec_bytes, f"p{round_number}")))
        operator.clear()
        operator["keys"] = sent.keys
        loop_emulator.set_faults({"status": [{"kind": "http", "status": 500}]})
        row = pipeline.ledger.watch_index.row_of(pipeline.ledger.get(*sent.keys))
        outcome = check_import(pipeline, row)
        stored = pipeline.ledger.get(*sent.keys)
        resent = operator["resent"]
        seen = (outcome, stored.request_id == resent.request_id, stored.poll_failures, stored.error,
                stored.next_poll_at == resent.next_poll_at)
        if seen[1:] != (True, 0, None, True):
            wrong.append((round_number, *seen))
        pipeline.ledger.finish(stored, states.CANCEL, "end of round")
    assert not wrong, f"{len(wrong)}/{ROUNDS} rounds: the old request's failure landed on the new one: {wrong[:3]}"


def test_cancel_while_the_post_is_in_flight_keeps_the_request_id_and_the_content_hold(
    pipeline, loop_emulator, fec_bytes, monkeypatch
):
    """An operator cancels (from a copy read before the mark, and from a fresh one) while the POST is
    in flight: both are refused with a message saying why, the request id is stored, the bytes held."""
    original_post, original_sign = pipeline.loop.import_fec, pipeline.signer.sign
    seen: dict = {}

    def sign_after_the_operator_reads(container, blob_name, **kwargs):
        seen["before_the_mark"] = pipeline.ledger.versions_of(container, blob_name)[-1]
        return original_sign(container, blob_name, **kwargs)

    def post_while_the_operator_cancels(*args, **kwargs):
        for copy in (seen["before_the_mark"], pipeline.ledger.get(*seen["before_the_mark"].keys)):
            try:
                seen.setdefault("answers", []).append(cancel(pipeline, copy).state)
            except OperatorError as refused:
                seen.setdefault("answers", []).append(str(refused))
        return original_post(*args, **kwargs)

    monkeypatch.setattr(pipeline.signer, "sign", sign_after_the_operator_reads)
    monkeypatch.setattr(pipeline.loop, "import_fec", post_while_the_operator_cancels)
    wrong = []
    for round_number in range(ROUNDS):
        seen.clear()
        data = unique_bytes(fec_bytes, f"c{round_number}")
        before = {item["id"] for item in loop_emulator.imports()}
        sent = submit_blob(pipeline, upload(pipeline, f"DEMO001/c{round_number}.txt", data))
        (in_loop,) = [item["id"] for item in loop_emulator.imports() if item["id"] not in before]
        monkeypatch.setattr(pipeline.loop, "import_fec", original_post)
        copy = submit_blob(pipeline, upload(pipeline, f"DEMO001/c{round_number} copy.txt", data))
        monkeypatch.setattr(pipeline.loop, "import_fec", post_while_the_operator_cancels)
        stored = pipeline.ledger.get(*sent.keys)
        refused = [answer for answer in seen["answers"] if "is submitting" in str(answer)]
        if (stored.state, stored.request_id, copy.state, len(refused)) != (states.PENDING, in_loop, states.DUPLICATE, 2):
            wrong.append((round_number, stored.state, stored.request_id, copy.state, seen["answers"]))
    assert not wrong, f"{len(wrong)}/{ROUNDS} rounds lost the request id or the hold: {wrong[:2]}"
