"""The submit flow against a real Azurite and the Loop emulator over HTTP."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading

import pytest

import shared.flows.submit as submit_module
from shared.flows.submit import SubmitRetryableError, process, submit_blob
from shared.ledger import states
from shared.ledger.record import ImportRecord
from tests.fec_factory import FecSpec
from tests.helpers import upload


def posts(emulator) -> list[dict]:
    return [r for r in emulator.requests() if r["path"] == "/importFEC"]


def events(caplog, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event_name", None) == name]


def test_valid_file_is_sent_once_and_loop_downloads_exactly_its_bytes(pipeline, loop_emulator, fec_bytes, caplog):
    caplog.set_level(logging.INFO, logger="fec_import")
    blob = upload(pipeline, "DEMO001/542107651FEC20210502.txt", fec_bytes)
    record = submit_blob(pipeline, blob)
    assert record.state == states.PENDING
    assert record.code_ibs == "DEMO001"
    assert len(posts(loop_emulator)) == 1
    body = posts(loop_emulator)[0]["body"]
    assert body["codeIbs"] == "DEMO001"
    assert body["URI"] == ""
    (imported,) = loop_emulator.imports()
    assert imported["id"] == record.request_id
    loop_emulator.wait_for_download(record.request_id)
    assert loop_emulator.imports()[0]["sha256"] == hashlib.sha256(fec_bytes).hexdigest()
    stored = pipeline.ledger.by_request_id(record.request_id)
    assert stored.state == states.PENDING
    assert stored.content_sha256 == hashlib.sha256(fec_bytes).hexdigest()
    assert [e.custom_dimensions["state"] for e in events(caplog, "import.submitted")] == ["pending"]


def test_a_second_delivery_does_nothing(pipeline, loop_emulator, fec_bytes, caplog):
    caplog.set_level(logging.INFO, logger="fec_import")
    blob = upload(pipeline, "DEMO001/a.txt", fec_bytes)
    submit_blob(pipeline, blob)
    assert submit_blob(pipeline, blob) is None
    assert len(posts(loop_emulator)) == 1
    assert len(events(caplog, "import.duplicate_delivery")) == 1


def test_ten_concurrent_deliveries_make_one_post(pipeline, loop_emulator, fec_bytes):
    blob = upload(pipeline, "DEMO001/a.txt", fec_bytes)
    barrier = threading.Barrier(10)
    errors: list[BaseException] = []

    def deliver():
        barrier.wait()
        try:
            submit_blob(pipeline, pipeline.blob_service.get_blob_client(blob.container_name, blob.blob_name))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(posts(loop_emulator)) == 1
    (record,) = pipeline.ledger.all_records()
    assert record.state == states.PENDING


@pytest.mark.parametrize(
    ("name", "data", "metadata", "reason"),
    [
        ("DEMO001/empty.txt", b"", {}, "empty file"),
        ("nodossier.txt", None, {}, "no dossier"),
        ("999999999FEC20210502.txt", None, {}, "SIREN 999999999 is not in the dossier table"),
        ("x.txt", None, {"codeibs": "DEMO 001"}, "not a plausible dossier code"),
        ("x.txt", None, {"codeibs": "A" * 40}, "not a plausible dossier code"),
    ],
)
def test_rejections_are_recorded_and_never_reach_loop(pipeline, loop_emulator, fec_bytes, name, data, metadata, reason):
    blob = upload(pipeline, name, fec_bytes if data is None else data, **metadata)
    record = submit_blob(pipeline, blob)
    assert record.state == states.REJECTED
    assert reason in record.error
    assert posts(loop_emulator) == []
    assert pipeline.ledger.get(*record.keys).state == states.REJECTED
    assert blob.get_blob_tags() == {"fecimport": "rejected"}


def test_siren_mapping_finds_the_dossier(pipeline, loop_emulator, fec_bytes):
    pipeline.dossiers.set("542107651", "DEMO002")
    record = submit_blob(pipeline, upload(pipeline, "542107651FEC20210502.txt", fec_bytes))
    assert record.state == states.PENDING
    assert posts(loop_emulator)[0]["body"]["codeIbs"] == "DEMO002"


def test_invalid_file_is_rejected_with_its_report(pipeline, loop_emulator, fec_bytes, caplog):
    caplog.set_level(logging.INFO, logger="fec_import")
    broken = fec_bytes.replace(b"|20240202|401000", b"|20240231|401000", 1)
    record = submit_blob(pipeline, upload(pipeline, "DEMO001/542107651FEC20210502.txt", broken))
    assert record.state == states.REJECTED
    assert "invalid_date" in record.error
    assert "line 2" in record.error
    assert posts(loop_emulator) == []
    report = pipeline.reports.load(record.report_blob)
    assert report["valid"] is False
    assert report["errors"][0]["rule"] == "invalid_date"
    (event,) = events(caplog, "import.rejected")
    assert event.custom_dimensions["rules"]["errors"]["invalid_date"] == 1
    console = event.getMessage().split(" rules=", 1)[1].split(" ", 1)[0]
    assert json.loads(console) == json.loads(event.rules) == event.custom_dimensions["rules"]
    assert set(json.loads(console)) == {"errors", "warnings"}


def test_loop_error_body_ends_submit_failed_with_loops_message(pipeline, loop_emulator, fec_bytes):
    record = submit_blob(pipeline, upload(pipeline, "DEMO999/a.txt", fec_bytes))
    assert record.state == states.SUBMIT_FAILED
    assert "DEMO999" in record.error
    assert "n'existe pas" in record.error
    assert len(posts(loop_emulator)) == 1


def test_overwritten_before_reading_is_superseded_and_the_new_version_goes(pipeline, loop_emulator, fec_bytes):
    blob = upload(pipeline, "DEMO001/a.txt", fec_bytes)
    props = blob.get_blob_properties()
    record, _ = pipeline.ledger.claim(ImportRecord(blob.container_name, blob.blob_name, props.etag, size=props.size))
    upload(pipeline, "DEMO001/a.txt", fec_bytes + b"\r\n")
    assert process(pipeline, blob, record, props).state == states.SUPERSEDED
    assert posts(loop_emulator) == []
    assert submit_blob(pipeline, blob).state == states.PENDING


def test_overwritten_after_snapshot_loop_still_gets_the_validated_bytes(pipeline, loop_emulator, fec_bytes, monkeypatch):
    blob = upload(pipeline, "DEMO001/a.txt", fec_bytes)
    original_sign = pipeline.signer.sign

    def sign_then_overwrite(*args, **kwargs):
        signed = original_sign(*args, **kwargs)
        upload(pipeline, "DEMO001/a.txt", b"not the validated bytes")
        return signed

    monkeypatch.setattr(pipeline.signer, "sign", sign_then_overwrite)
    record = submit_blob(pipeline, blob)
    loop_emulator.wait_for_download(record.request_id)
    assert loop_emulator.imports()[0]["sha256"] == hashlib.sha256(fec_bytes).hexdigest()


def test_a_large_file_overwritten_while_it_is_read_is_validated_and_sent_as_claimed(
    pipeline, loop_emulator, monkeypatch
):
    """The first GET gives the version and its first chunk; the rest is read If-Match that version,
    and when the blob was overwritten meanwhile, from the snapshot: the hash, the verdict and Loop's
    bytes are those of the claimed version, not a mix."""
    pipeline.settings = dataclasses.replace(pipeline.settings, download_chunk_bytes=64 * 1024)
    entries = [[("401000", 0, 12000 + n), ("607000", 10000 + n, 0), ("445660", 2000, 0)] for n in range(3000)]
    claimed = FecSpec(entries=entries).render()
    assert len(claimed) > 4 * 64 * 1024
    blob = upload(pipeline, "DEMO001/large.txt", claimed)
    original_snapshot = submit_module._snapshot

    def snapshot_then_overwrite(*args, **kwargs):
        taken = original_snapshot(*args, **kwargs)
        upload(pipeline, "DEMO001/large.txt", b"JournalCode\tnot the claimed bytes\n" * 10_000)
        return taken

    monkeypatch.setattr(submit_module, "_snapshot", snapshot_then_overwrite)
    record = submit_blob(pipeline, blob)
    assert record.state == states.PENDING, record.error
    assert record.content_sha256 == hashlib.sha256(claimed).hexdigest()
    assert record.size == len(claimed)
    loop_emulator.wait_for_download(record.request_id)
    assert loop_emulator.imports()[0]["sha256"] == hashlib.sha256(claimed).hexdigest()


def test_deleted_before_processing_is_logged_not_raised(pipeline, loop_emulator, fec_bytes, caplog):
    caplog.set_level(logging.INFO, logger="fec_import")
    blob = upload(pipeline, "DEMO001/a.txt", fec_bytes)
    blob.delete_blob()
    assert submit_blob(pipeline, blob) is None
    assert len(events(caplog, "import.blob_missing")) == 1
    assert posts(loop_emulator) == []


def test_folders_are_ignored(pipeline, loop_emulator):
    blob = upload(pipeline, "DEMO001/", b"", hdi_isfolder="true")
    assert submit_blob(pipeline, blob) is None
    assert list(pipeline.ledger.all_records()) == []


def test_loop_unreachable_fails_the_invocation_and_the_ledger_shows_it(pipeline, fec_bytes, loop_emulator):
    from local.azurite import free_port  # noqa: PLC0415

    pipeline.loop.base_url = f"http://127.0.0.1:{free_port()}"
    blob = upload(pipeline, "DEMO001/a.txt", fec_bytes)
    with pytest.raises(SubmitRetryableError, match="unreachable"):
        submit_blob(pipeline, blob)
    (record,) = pipeline.ledger.all_records()
    assert record.state == states.RETRY_WAIT
    assert "unreachable" in record.error
    pipeline.loop.base_url = loop_emulator.base_url
    assert submit_blob(pipeline, blob).state == states.PENDING
    assert len(posts(loop_emulator)) == 1
