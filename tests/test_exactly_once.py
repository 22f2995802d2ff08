"""At most one importFEC per blob version, whatever fails: crashes at each step, unknown outcomes,
duplicate bytes, odd names and metadata. Real Azurite, the emulator over HTTP."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import timedelta

import pytest

from shared.flows import submit as submit_module
from shared.flows.operator_actions import OperatorError, cancel, find_import, resolve, resubmit
from shared.flows.poll import poll_imports
from shared.flows.submit import submit_blob
from shared.ledger import states
from tests.helpers import poll_until_final, upload, wait_until_final_at_loop


class Crash(BaseException):
    """The process dying: not an Exception, so no handler of the pipeline catches it."""



def posts(emulator) -> list[dict]:
    return [r for r in emulator.requests() if r["path"] == "/importFEC"]


def only_record(pipeline):
    (record,) = pipeline.ledger.all_records()
    return record


def crash(*_args, **_kwargs):
    raise Crash


@pytest.mark.parametrize(
    "where",
    [
        "shared.flows.submit.resolve_dossier",      # right after the claim
        "shared.flows.snapshot_validation.validate_stream",  # while reading the file
        "signer",                             # after signing, before marking submitting
    ],
)
def test_a_crash_before_the_post_is_recovered_with_exactly_one_post(
    pipeline, loop_emulator, fec_bytes, monkeypatch, where
):
    blob = upload(pipeline, "DEMO001/a.txt", fec_bytes)
    with monkeypatch.context() as patch:
        if where == "signer":
            original = pipeline.signer.sign
            patch.setattr(pipeline.signer, "sign", lambda *a, **k: (original(*a, **k), crash())[0])
        else:
            patch.setattr(where, crash)
        with pytest.raises(Crash):
            submit_blob(pipeline, blob)
    assert only_record(pipeline).state == states.RECEIVED
    assert submit_blob(pipeline, blob) is None  # an immediate redelivery respects the lease
    assert posts(loop_emulator) == []
    pipeline.clock.advance(pipeline.claim_lease + timedelta(seconds=1))
    assert poll_imports(pipeline).outcomes["redriven"] == 1
    assert only_record(pipeline).state == states.PENDING
    assert len(posts(loop_emulator)) == 1


def test_a_redelivery_after_the_lease_takes_over(pipeline, loop_emulator, fec_bytes, monkeypatch):
    pipeline.settings = dataclasses.replace(pipeline.settings, claim_lease_seconds=1)
    blob = upload(pipeline, "DEMO001/a.txt", fec_bytes)
    with monkeypatch.context() as patch:
        patch.setattr("shared.flows.submit.resolve_dossier", crash)
        with pytest.raises(Crash):
            submit_blob(pipeline, blob)
    pipeline.clock.advance(timedelta(seconds=1.2))
    assert submit_blob(pipeline, blob).state == states.PENDING
    assert only_record(pipeline).attempts == 2
    assert len(posts(loop_emulator)) == 1


def test_a_crash_after_the_post_never_posts_again_and_an_operator_resolves_it(
    pipeline, loop_emulator, fec_bytes, monkeypatch
):
    blob = upload(pipeline, "DEMO001/a.txt", fec_bytes)
    with monkeypatch.context() as patch:
        patch.setattr(submit_module, "_store_request_id", crash)
        with pytest.raises(Crash):
            submit_blob(pipeline, blob)
    assert only_record(pipeline).state == states.SUBMITTING
    assert submit_blob(pipeline, blob) is None
    pipeline.clock.advance(pipeline.submit_timeout + timedelta(minutes=1))
    assert poll_imports(pipeline).outcomes["unknown"] == 1
    assert submit_blob(pipeline, blob) is None
    assert len(posts(loop_emulator)) == 1
    (in_loop,) = loop_emulator.imports()
    resolved = resolve(pipeline, find_import(pipeline, "DEMO001/a.txt"), in_loop["id"])
    assert resolved.state == states.PENDING
    assert poll_until_final(pipeline, resolved).state == states.COMPLETED
    assert len(posts(loop_emulator)) == 1


@pytest.mark.parametrize("fault", [{"kind": "hang", "seconds": 4}, {"kind": "reset"}])
def test_an_unknown_outcome_waits_for_an_operator(pipeline, loop_emulator, fec_bytes, fault):
    loop_emulator.set_faults({"importFEC": [fault]})
    blob = upload(pipeline, "DEMO001/a.txt", fec_bytes)
    record = submit_blob(pipeline, blob)
    assert pipeline.ledger.get(*record.keys).state == states.UNKNOWN
    assert submit_blob(pipeline, blob) is None
    pipeline.clock.advance(timedelta(hours=1))
    poll_imports(pipeline)
    assert len(posts(loop_emulator)) == 1
    assert only_record(pipeline).state == states.UNKNOWN


def test_the_same_bytes_under_another_name_are_not_sent_twice(pipeline, loop_emulator, fec_bytes):
    first = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    second = submit_blob(pipeline, upload(pipeline, "DEMO001/copy of a.txt", fec_bytes))
    assert second.state == states.DUPLICATE
    assert first.blob in second.error
    assert len(posts(loop_emulator)) == 1
    other_dossier = submit_blob(pipeline, upload(pipeline, "DEMO002/a.txt", fec_bytes))
    assert other_dossier.state == states.PENDING
    forced = submit_blob(pipeline, upload(pipeline, "DEMO001/again.txt", fec_bytes, force="true"))
    assert forced.state == states.PENDING
    assert len(posts(loop_emulator)) == 3


def test_the_duplicate_window_is_configurable(pipeline, loop_emulator, fec_bytes):
    pipeline.settings = dataclasses.replace(pipeline.settings, duplicate_window_hours=0)
    submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    pipeline.clock.advance(timedelta(seconds=0.1))
    assert submit_blob(pipeline, upload(pipeline, "DEMO001/b.txt", fec_bytes)).state == states.PENDING


def test_a_failed_import_can_be_dropped_again(pipeline, loop_emulator, fec_bytes):
    loop_emulator.set_faults({"final_status": 4})
    first = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    assert poll_until_final(pipeline, first).state == states.FAILED
    assert submit_blob(pipeline, upload(pipeline, "DEMO001/a-fixed.txt", fec_bytes)).state == states.PENDING


HOSTILE_NAMES = [
    "DEMO001/with space.txt",
    "DEMO001/hash#tag.txt",
    "DEMO001/percent%41.txt",
    "DEMO001/question?mark.txt",
    "DEMO001/plus+sign.txt",
    "DEMO001/écritures-ÇØ-ß.txt",
    "DEMO001/deep/nested/folders/file.txt",
    "DEMO001/" + "n" * 990 + ".txt",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: n[:30])
def test_odd_names_still_give_loop_the_right_bytes(pipeline, loop_emulator, fec_bytes, name):
    """Bytes unique to this name, and a decoy with other bytes where a badly encoded URL would point."""
    data = fec_bytes.replace(b"Facture", b"Facture " + hashlib.sha256(name.encode()).hexdigest()[:8].encode())
    assert data != fec_bytes
    decoy = name.split("#")[0].split("?")[0].replace("%41", "A").replace("+", " ")
    if decoy != name:
        upload(pipeline, decoy, fec_bytes)
    record = submit_blob(pipeline, upload(pipeline, name, data))
    assert record.state == states.PENDING
    downloaded = loop_emulator.wait_for_download(record.request_id)
    assert downloaded["sha256"] == hashlib.sha256(data).hexdigest()
    assert downloaded["failure"] is None
    assert find_import(pipeline, name).keys == record.keys


def test_an_overwrite_is_a_new_version_with_its_own_import(pipeline, loop_emulator, fec_bytes):
    blob = upload(pipeline, "DEMO001/a.txt", fec_bytes)
    submit_blob(pipeline, blob)
    upload(pipeline, "DEMO001/a.txt", fec_bytes + b"\r\n")
    submit_blob(pipeline, blob)
    versions = pipeline.ledger.versions_of(blob.container_name, blob.blob_name)
    assert [v.state for v in versions] == [states.PENDING, states.PENDING]
    assert len({v.etag for v in versions}) == 2
    assert len(posts(loop_emulator)) == 2


def test_resubmit_sends_again_and_keeps_history(pipeline, loop_emulator, fec_bytes):
    loop_emulator.set_faults({"final_status": 4})
    first = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    poll_until_final(pipeline, first)
    loop_emulator.set_faults({"final_status": 3})
    again = resubmit(pipeline, find_import(pipeline, first.request_id))
    assert again.state == states.PENDING
    assert again.request_id != first.request_id
    assert find_import(pipeline, first.request_id).keys == first.keys  # the replaced id still finds it
    assert find_import(pipeline, again.request_id).keys == first.keys
    assert poll_until_final(pipeline, again).state == states.COMPLETED
    history = [entry["state"] for entry in again.to_dict()["history"]]
    assert history.count(states.SUBMITTING) == 2
    assert states.FAILED in history
    assert len(posts(loop_emulator)) == 2


def test_resubmit_after_the_lifecycle_rule_deleted_the_snapshot_sends_a_new_snapshot_of_the_same_version(
    pipeline, loop_emulator, fec_bytes
):
    """infra's lifecycle rule deletes snapshots after snapshotRetentionDays: a resubmit then snapshots
    the version again (same ETag, same bytes), and Loop downloads those bytes, not a dead URL."""
    loop_emulator.set_faults({"final_status": 4})
    first = poll_until_final(pipeline, submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes)))
    loop_emulator.set_faults({"final_status": 3})
    pipeline.blob_service.get_blob_client(first.container, first.blob_name, snapshot=first.snapshot).delete_blob()
    again = resubmit(pipeline, find_import(pipeline, first.request_id))
    assert again.snapshot not in (None, first.snapshot)
    loop_emulator.wait_for_download(again.request_id)
    assert loop_emulator.imports()[-1]["sha256"] == hashlib.sha256(fec_bytes).hexdigest()
    assert poll_until_final(pipeline, again).state == states.COMPLETED


def test_resubmit_snapshots_the_version_anew_and_falls_back_to_its_snapshot_once_overwritten(
    pipeline, loop_emulator, fec_bytes
):
    """A new snapshot while the blob is the recorded version (its SAS never outlives the snapshot the
    lifecycle rule counts from); once the blob is overwritten, the import's own snapshot: either way
    Loop downloads the validated bytes."""
    loop_emulator.set_faults({"final_status": 4})
    first = poll_until_final(pipeline, submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes)))
    again = poll_until_final(pipeline, resubmit(pipeline, find_import(pipeline, first.request_id)))
    assert again.snapshot not in (None, first.snapshot)
    upload(pipeline, "DEMO001/a.txt", fec_bytes.replace(b"Facture", b"Autre facture"))  # overwritten
    third = resubmit(pipeline, find_import(pipeline, again.request_id))
    assert third.snapshot == again.snapshot
    loop_emulator.wait_for_download(third.request_id)
    assert [item["sha256"] for item in loop_emulator.imports()] == [hashlib.sha256(fec_bytes).hexdigest()] * 3


def test_resubmit_of_an_overwritten_version_whose_snapshot_is_gone_says_so_and_sends_nothing(
    pipeline, loop_emulator, fec_bytes
):
    loop_emulator.set_faults({"final_status": 4})
    first = poll_until_final(pipeline, submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes)))
    pipeline.blob_service.get_blob_client(first.container, first.blob_name, snapshot=first.snapshot).delete_blob()
    upload(pipeline, "DEMO001/a.txt", fec_bytes.replace(b"Facture", b"Autre facture"))  # overwritten
    with pytest.raises(OperatorError, match="overwritten since"):
        resubmit(pipeline, find_import(pipeline, first.request_id))
    assert len(posts(loop_emulator)) == 1


def test_operator_actions_refuse_what_does_not_apply(pipeline, loop_emulator, fec_bytes):
    record = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    with pytest.raises(OperatorError, match="cancel it first"):
        resubmit(pipeline, record)
    with pytest.raises(OperatorError, match="only unknown imports"):
        resolve(pipeline, record, "11111111-1111-1111-1111-111111111111")
    cancelled = cancel(pipeline, record)
    assert cancelled.state == states.CANCELLED
    wait_until_final_at_loop(loop_emulator)  # Loop finished it: the timer must still leave it cancelled
    assert poll_imports(pipeline).outcomes.get("completed", 0) == 0
    assert pipeline.ledger.get(*record.keys).state == states.CANCELLED
    with pytest.raises(OperatorError, match="already cancelled"):
        cancel(pipeline, cancelled)
    with pytest.raises(OperatorError, match="no import found"):
        find_import(pipeline, "nothing-here.txt")


def test_a_file_with_validation_errors_cannot_be_resubmitted(pipeline, loop_emulator, fec_bytes):
    broken = fec_bytes.replace(b"|20240202|401000", b"|20240230|401000", 1)
    record = submit_blob(pipeline, upload(pipeline, "DEMO001/broken.txt", broken))
    with pytest.raises(OperatorError, match="validation errors"):
        resubmit(pipeline, record)
    assert posts(loop_emulator) == []
