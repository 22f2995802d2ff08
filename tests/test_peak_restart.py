"""Bad input at a peak: a file that fails to submit is retried by the one backoff and blocks no other,
and stopping the local host in the middle of a peak (Ctrl-C in `make run`), then starting a new one,
ends every file with one POST. Real Azurite, the emulator over HTTP, the app's own functions run by
the local host with its three executors."""

from __future__ import annotations

import time
from collections import Counter

import pytest

import function_app
from local.host.host import LocalHost
from shared.flows.runtime import current_pipeline, reset_pipeline
from shared.ledger import states
from tests.helpers import run_host_until_final

FILES = 60
SCAN_INTERVAL = 0.2
FAILED_CALLS = 12


@pytest.fixture
def peak_env(pipeline_env, monkeypatch) -> dict[str, str]:
    env = {**pipeline_env, "RETRY_BACKOFF_BASE_SECONDS": "1", "RETRY_BACKOFF_MAX_SECONDS": "2"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_pipeline()
    current_pipeline()  # the app's start-up: its tables and containers
    yield env
    reset_pipeline()


def drop_peak(blob_service, container: str, fec_bytes: bytes) -> list[str]:
    """FILES distinct valid files (distinct bytes, so the content hold lets each through)."""
    names = []
    for number in range(FILES):
        name = f"DEMO001/peak-{number:03d}.txt"
        data = fec_bytes.replace(b"Facture", f"Facture {number}".encode())
        blob_service.get_blob_client(container, name).upload_blob(data, overwrite=True)
        names.append(name)
    return names


def posts(loop_emulator) -> list[dict]:
    return [r for r in loop_emulator.requests() if r["path"] == "/importFEC"]


def accepted_posts(loop_emulator) -> int:
    return sum(1 for r in posts(loop_emulator) if r.get("status") == 200)


def test_a_host_stopped_mid_peak_and_started_again_ends_every_file_with_one_post(
    peak_env, loop_emulator, blob_service, fec_bytes
):
    # The first 12 import calls answer 503: with 4 blob workers posting at once and each call tried
    # 3 times (LOOP_MAX_RETRIES=2), some files exhaust their HTTP retries and go to retry_wait with
    # the backoff, while the others go on.
    loop_emulator.set_faults({"importFEC": [{"kind": "http", "status": 503, "times": FAILED_CALLS}]})
    names = drop_peak(blob_service, peak_env["FEC_IMPORT_CONTAINER"], fec_bytes)

    first = LocalHost(function_app.app, blob_service, peak_env, retry_delay=0.1)
    first.start(SCAN_INTERVAL)
    deadline = time.monotonic() + 60
    while accepted_posts(loop_emulator) < FILES // 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.stop()  # what Ctrl-C does in `make run`: invocations in progress finish, the rest are dropped
    records = list(current_pipeline().ledger.all_records())
    unfinished = [r for r in records if r.state not in states.FINAL_STATES]
    assert len(records) < FILES or unfinished, "the peak was over before the stop: nothing was interrupted"

    second = LocalHost(function_app.app, blob_service, peak_env, retry_delay=0.1)
    try:
        final = run_host_until_final(second, count=FILES, timeout=180)
    finally:
        second.stop()

    assert sorted(final) == names
    assert {name: record.state for name, record in final.items()} == dict.fromkeys(names, states.COMPLETED)
    imports = loop_emulator.imports()
    per_content = Counter(entry["sha256"] for entry in imports)
    assert len(imports) == FILES
    assert set(per_content.values()) == {1}  # one import per file, none twice
    failed_first = [r for r in posts(loop_emulator) if r.get("status") == 503]
    assert len(failed_first) == FAILED_CALLS
    retried = [record for record in final.values() if any(
        entry["state"] == states.RETRY_WAIT for entry in record.history_entries())]
    assert retried, "no file went through retry_wait: the fault did not exhaust a call's HTTP retries"
