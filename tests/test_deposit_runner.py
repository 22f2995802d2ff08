"""Deposit mode end to end through the local host runner: the app's own functions, invoked from
their binding metadata, files dropped into Azurite, the emulator process over HTTP with its deposits
in Azurite, until every import is final."""

from __future__ import annotations

import hashlib

import pytest

from local.drop import drop_file
from shared.ledger import states
from tests import deposit_fixtures
from tests.deposit_fixtures import calls, uploaded
from tests.helpers import run_host_until_final

deposit_emulator = deposit_fixtures.deposit_emulator
loop_emulator = deposit_fixtures.loop_emulator
pipeline_env = deposit_fixtures.pipeline_env


@pytest.fixture
def host_env(pipeline_env) -> dict[str, str]:
    """A failed delivery is re-driven by the timer once its lease and backoff are over: seconds here."""
    return {**pipeline_env, "CLAIM_LEASE_SECONDS": "1", "RETRY_BACKOFF_BASE_SECONDS": "1", "RETRY_BACKOFF_JITTER": "0"}


def test_files_deposited_through_the_local_host_complete_with_one_upload_and_one_post_each(
    host, loop_emulator, blob_service, pipeline_env, fec_bytes, tmp_path
):
    loop_emulator.set_faults({"upload": [{"kind": "expired"}], "getFileUrlDeposit": [{"kind": "reset"}]})
    container = pipeline_env["FEC_IMPORT_CONTAINER"]
    contents = {}
    for number in range(3):
        path = tmp_path / f"12345678{number}FEC20241231.txt"
        contents[path.name] = fec_bytes + b"\n" * number
        path.write_bytes(contents[path.name])
        drop_file(blob_service, container, path, dossier="DEMO001")

    records = run_host_until_final(host, count=3, timeout=40)

    assert {r.state for r in records.values()} == {states.COMPLETED}
    assert {r.transfer_mode for r in records.values()} == {"deposit"}
    assert len(calls(loop_emulator, "/importFEC")) == 3
    deposits = uploaded(loop_emulator)
    assert len(deposits) == 3, "a failed upload or deposit call left nothing behind, each file was uploaded once"
    assert len(calls(loop_emulator, "/getFileUrlDeposit")) == 5
    assert sorted(d["sha256"] for d in deposits) == sorted(hashlib.sha256(c).hexdigest() for c in contents.values())
    by_uri = {d["uri"]: d for d in deposits}
    for record in records.values():
        assert by_uri[record.deposit_uri]["sha256"] == record.content_sha256
