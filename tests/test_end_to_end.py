"""End to end through the local host runner: files dropped into Azurite, the app's own functions
invoked from their binding metadata, the Loop emulator over HTTP, until every import is final."""

from __future__ import annotations

import pytest

from local.drop import drop_file
from shared.ledger import states
from tests.helpers import run_host_until_final

VALID = "123456789FEC20241231.txt"


@pytest.fixture
def fec_file(fec_bytes, tmp_path):
    path = tmp_path / "valid.txt"
    path.write_bytes(fec_bytes)
    return path


def test_the_runner_reads_the_bindings(host, pipeline_env):
    (blob_function,) = host.blob_functions
    timers = {timer.name: timer.schedule for timer in host.timer_functions}
    assert blob_function.container == pipeline_env["FEC_IMPORT_CONTAINER"]
    assert timers == {"fec_status_timer": pipeline_env["STATUS_POLL_SCHEDULE"],
                      "fec_ledger_purge": pipeline_env["LEDGER_PURGE_SCHEDULE"]}


def test_valid_file_reaches_3_unparsable_is_rejected_and_no_dossier_never_calls_loop(
    host, loop_emulator, blob_service, pipeline_env, fec_file, tmp_path
):
    container = pipeline_env["FEC_IMPORT_CONTAINER"]
    drop_file(blob_service, container, fec_file, name=VALID, dossier="DEMO001")
    unparsable = tmp_path / "123456789FEC20231231.txt"
    unparsable.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    drop_file(blob_service, container, unparsable, name="DEMO001/123456789FEC20231231.txt")
    drop_file(blob_service, container, fec_file, name="542107651FEC20210502.txt")

    records = run_host_until_final(host, count=3)

    valid = records[VALID]
    assert (valid.state, valid.loop_status) == (states.COMPLETED, 3)
    broken = records["DEMO001/123456789FEC20231231.txt"]
    assert broken.state == states.REJECTED
    assert "not_text" in broken.error
    no_dossier = records["542107651FEC20210502.txt"]
    assert no_dossier.state == states.REJECTED
    assert "SIREN 542107651" in no_dossier.error
    posts = [r for r in loop_emulator.requests() if r["path"] == "/importFEC"]
    assert [p["body"]["codeIbs"] for p in posts] == ["DEMO001"]


def test_loop_status_4_is_followed_to_failed(host, loop_emulator, blob_service, pipeline_env, fec_file):
    loop_emulator.set_faults({"final_status_by_dossier": {"DEMO002": 4}})
    drop_file(blob_service, pipeline_env["FEC_IMPORT_CONTAINER"], fec_file, dossier="DEMO002")
    (record,) = run_host_until_final(host, count=1).values()
    assert (record.state, record.loop_status) == (states.FAILED, 4)


def test_a_rescan_after_restart_does_not_send_again(host, loop_emulator, blob_service, pipeline_env, fec_file):
    drop_file(blob_service, pipeline_env["FEC_IMPORT_CONTAINER"], fec_file, dossier="DEMO001")
    run_host_until_final(host, count=1)
    host.seen.clear()  # a restarted host has forgotten its receipts
    assert host.scan_blobs() == 1
    host.wait_idle()
    assert len([r for r in loop_emulator.requests() if r["path"] == "/importFEC"]) == 1
