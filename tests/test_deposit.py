"""LOOP_TRANSFER_MODE=deposit through the submit flow: real Azurite, the emulator process over HTTP,
its deposits real write-only SAS URLs in Azurite. Each failure before the POST (the deposit call,
the upload) is retried like any failure before the POST, and the POST stays at most once."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from shared.cli.main import main as cli_main
from shared.flows.deposit import DepositError, deposit_filename
from shared.flows.operator_actions import find_import, resubmit
from shared.flows.poll import poll_imports
from shared.flows.submit import submit_blob
from shared.ledger import states
from tests import deposit_fixtures
from tests.deposit_fixtures import calls, uploaded
from tests.helpers import poll_until_final, upload

deposit_emulator = deposit_fixtures.deposit_emulator
loop_emulator = deposit_fixtures.loop_emulator
pipeline_env = deposit_fixtures.pipeline_env

NAME = "DEMO001/123456789FEC20241231.txt"


def only_record(pipeline):
    (record,) = pipeline.ledger.all_records()
    return record


def posts(emulator) -> list[dict]:
    return calls(emulator, "/importFEC")


def redrive(pipeline):
    """Time passes beyond the claim lease and the backoff; the timer takes the import over."""
    pipeline.clock.advance(pipeline.claim_lease + timedelta(hours=2))
    return poll_imports(pipeline)


def test_one_deposit_one_upload_one_post_and_loop_reads_exactly_the_validated_bytes(
    pipeline, loop_emulator, fec_bytes
):
    blob = upload(pipeline, NAME, fec_bytes)
    record = submit_blob(pipeline, blob)
    assert record.state == states.PENDING
    assert submit_blob(pipeline, blob) is None  # a second delivery sends nothing
    (post,) = posts(loop_emulator)
    assert post["body"]["URL"] == ""
    (deposit,) = uploaded(loop_emulator)
    assert post["body"]["URI"] == deposit["uri"]
    assert [c["query"]["filename"] for c in calls(loop_emulator, "/getFileUrlDeposit")] == ["123456789FEC20241231.txt"]
    expected = hashlib.sha256(fec_bytes).hexdigest()
    assert deposit["sha256"] == expected == record.content_sha256
    loop_import = loop_emulator.wait_for_download(record.request_id)
    assert (loop_import["by"], loop_import["sha256"], loop_import["failure"]) == ("URI", expected, None)
    stored = only_record(pipeline)
    assert (stored.transfer_mode, stored.deposit_uri, stored.sas_expires_at) == ("deposit", deposit["uri"], None)
    assert poll_until_final(pipeline, record).state == states.COMPLETED
    assert len(posts(loop_emulator)) == 1
    assert len(loop_emulator.deposits()) == 1


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "http", "status": 503, "retry_after": 0, "times": 3},
        {"kind": "http", "status": 500},
        {"kind": "reset"},
        {"kind": "hang", "seconds": 3},
    ],
    ids=["busy", "500", "reset", "hang"],
)
def test_a_failed_deposit_call_is_retried_by_the_timer_and_posts_once(pipeline, loop_emulator, fec_bytes, fault):
    loop_emulator.set_faults({"getFileUrlDeposit": [fault]})
    blob = upload(pipeline, NAME, fec_bytes)
    with pytest.raises(DepositError, match="getFileUrlDeposit"):
        submit_blob(pipeline, blob)
    stored = only_record(pipeline)
    assert stored.state == states.RECEIVED
    assert stored.error.startswith("DepositError: getFileUrlDeposit")
    assert submit_blob(pipeline, blob) is None  # the host's retry respects the lease
    assert posts(loop_emulator) == []
    assert redrive(pipeline).outcomes["redriven"] == 1
    assert only_record(pipeline).state == states.PENDING
    assert len(posts(loop_emulator)) == 1
    assert len(uploaded(loop_emulator)) == 1


@pytest.mark.parametrize("kind", ["expired", "read_only", "bad_signature", "missing_container"])
def test_a_failed_upload_is_retried_with_a_new_deposit_and_posts_once(pipeline, loop_emulator, fec_bytes, kind):
    loop_emulator.set_faults({"upload": [{"kind": kind}]})
    blob = upload(pipeline, NAME, fec_bytes)
    with pytest.raises(DepositError, match=r"upload to the deposit URL failed: HTTP (403|404)"):
        submit_blob(pipeline, blob)
    stored = only_record(pipeline)
    assert (stored.state, stored.transfer_mode) == (states.RECEIVED, None)
    assert "upload to the deposit URL failed" in stored.error
    assert posts(loop_emulator) == []
    assert uploaded(loop_emulator) == []
    redrive(pipeline)
    record = only_record(pipeline)
    assert record.state == states.PENDING
    assert len(posts(loop_emulator)) == 1
    (deposit,) = uploaded(loop_emulator)
    assert len(loop_emulator.deposits()) == 2
    assert loop_emulator.wait_for_download(record.request_id)["sha256"] == deposit["sha256"]
    assert poll_until_final(pipeline, record).state == states.COMPLETED


def test_failed_uploads_are_closed_after_the_attempt_limit(pipeline, loop_emulator, fec_bytes):
    limit = pipeline.settings.submit_max_attempts
    loop_emulator.set_faults({"upload": [{"kind": "expired", "times": limit + 1}]})
    blob = upload(pipeline, NAME, fec_bytes)
    with pytest.raises(DepositError):
        submit_blob(pipeline, blob)
    for _ in range(limit):
        redrive(pipeline)
    record = only_record(pipeline)
    assert record.state == states.SUBMIT_FAILED
    assert f"gave up after {limit} attempts" in record.error
    assert "upload to the deposit URL failed" in record.error
    assert posts(loop_emulator) == []


@pytest.mark.parametrize("fault", [{"kind": "reset"}, {"kind": "hang", "seconds": 3}], ids=["reset", "hang"])
def test_a_reset_after_the_upload_leaves_the_outcome_unknown_and_never_posts_again(
    pipeline, loop_emulator, fec_bytes, fault
):
    loop_emulator.set_faults({"importFEC": [fault]})
    blob = upload(pipeline, NAME, fec_bytes)
    record = submit_blob(pipeline, blob)
    assert record.state == states.UNKNOWN
    assert submit_blob(pipeline, blob) is None
    redrive(pipeline)
    assert only_record(pipeline).state == states.UNKNOWN
    assert len(posts(loop_emulator)) == 1
    assert len(loop_emulator.deposits()) == 1


@pytest.mark.parametrize(
    ("fault", "event", "fragment"),
    [
        ({"kind": "error_body", "message": "Le fichier est trop volumineux."}, "import.submit_failed",
         "Le fichier est trop volumineux."),
        ({"kind": "http", "status": 401}, "import.auth_failed", "fault"),
        ({"kind": "json", "status": 200, "body": {"status": "ok", "message": "Quota de dépôt atteint"}},
         "import.submit_failed", "the answer has no deposit URL (fields: message, status): Quota de dépôt atteint"),
        ({"kind": "json", "status": 200, "body": ["https://x.example/a"]}, "import.submit_failed",
         "the answer is a JSON list, not a deposit URL"),
        ({"kind": "raw", "status": 200, "text": "<html>maintenance</html>"}, "import.submit_failed",
         "the answer is text, not a deposit URL: '<html>maintenance</html>'"),
        ({"kind": "json", "status": 200, "body": {"depositUrl": "ftp://x/y"}}, "import.submit_failed",
         "no deposit URL (fields: depositUrl)"),
    ],
    ids=["error-body", "401", "no-url", "list", "html", "not-http"],
)
def test_loop_refusing_the_deposit_closes_the_import_with_its_message(
    pipeline, loop_emulator, fec_bytes, caplog, fault, event, fragment
):
    loop_emulator.set_faults({"getFileUrlDeposit": [fault]})
    record = submit_blob(pipeline, upload(pipeline, NAME, fec_bytes))
    assert record.state == states.SUBMIT_FAILED
    assert fragment in record.error
    assert record.error.startswith("getFileUrlDeposit: ")
    assert event in caplog.text
    assert posts(loop_emulator) == []
    again = submit_blob(pipeline, upload(pipeline, "DEMO001/again.txt", fec_bytes))
    assert again.state == states.PENDING, "a refused import released its bytes"


@pytest.mark.parametrize("shape", ["depositUrl", "uri"])
def test_every_known_shape_of_deposit_answer_imports(pipeline, loop_emulator, fec_bytes, shape):
    loop_emulator.set_faults({"deposit_answer": shape})
    record = submit_blob(pipeline, upload(pipeline, NAME, fec_bytes))
    assert record.state == states.PENDING
    (post,) = posts(loop_emulator)
    assert post["body"]["URI"]
    assert post["body"]["URL"] == ""
    assert "sig=" not in (record.deposit_uri or "")
    assert "?" not in record.deposit_uri
    loop_import = loop_emulator.wait_for_download(record.request_id)
    assert (loop_import["failure"], loop_import["sha256"]) == (None, hashlib.sha256(fec_bytes).hexdigest())


def test_resubmit_deposits_again_and_show_tells_the_mode_and_uri(
    pipeline, pipeline_env, loop_emulator, fec_bytes, capsys, monkeypatch
):
    record = submit_blob(pipeline, upload(pipeline, NAME, fec_bytes))
    poll_until_final(pipeline, record)
    again = resubmit(pipeline, find_import(pipeline, NAME))
    assert again.state == states.PENDING
    assert again.request_id != record.request_id
    assert len(uploaded(loop_emulator)) == 2
    assert len(posts(loop_emulator)) == 2
    assert again.deposit_uri != record.deposit_uri
    for name, value in pipeline_env.items():
        monkeypatch.setenv(name, value)
    assert cli_main(["imports", "show", NAME]) == 0
    out = capsys.readouterr().out
    assert "transfer     deposit" in out
    assert f"deposit URI  {again.deposit_uri}" in out


def test_a_failed_deposit_on_resubmit_is_recorded_and_named(pipeline, pipeline_env, loop_emulator, fec_bytes,
                                                            capsys, monkeypatch):
    record = submit_blob(pipeline, upload(pipeline, NAME, fec_bytes))
    poll_until_final(pipeline, record)
    loop_emulator.set_faults({"upload": [{"kind": "read_only"}]})
    for name, value in pipeline_env.items():
        monkeypatch.setenv(name, value)
    assert cli_main(["imports", "resubmit", NAME]) == 1
    assert "upload to the deposit URL failed: HTTP 403" in capsys.readouterr().err
    stored = only_record(pipeline)
    assert stored.state == states.RECEIVED
    assert "upload to the deposit URL failed" in stored.error
    redrive(pipeline)
    assert only_record(pipeline).state == states.PENDING
    assert len(posts(loop_emulator)) == 2


def test_sas_mode_is_unchanged_by_the_deposit_code(pipeline, loop_emulator, fec_bytes, monkeypatch):
    import dataclasses  # noqa: PLC0415

    pipeline.settings = dataclasses.replace(pipeline.settings, loop_transfer_mode="sas")
    record = submit_blob(pipeline, upload(pipeline, NAME, fec_bytes))
    (post,) = posts(loop_emulator)
    assert post["body"]["URI"] == ""
    assert "sig=REDACTED" in post["body"]["URL"]
    assert calls(loop_emulator, "/getFileUrlDeposit") == []
    assert (record.transfer_mode, record.deposit_uri) == ("sas", None)
    assert record.sas_expires_at is not None


@pytest.mark.parametrize(
    ("blob_name", "expected"),
    [
        ("DEMO001/123456789FEC20241231.txt", "123456789FEC20241231.txt"),
        ("a/b/fichier été #1?.txt", "fichier__t___1_.txt"),
        ("DEMO001/\n\r", "fec.txt"),
        ("x/" + "a" * 300 + ".txt", "a" * 124 + ".txt"),
    ],
)
def test_the_deposit_file_name_is_the_base_name_made_safe(blob_name, expected):
    assert deposit_filename(blob_name) == expected
