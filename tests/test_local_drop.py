"""`make drop` and `python -m local.drop` (issue #25): the blob name and `force` reach the blob's
metadata, and a forced re-drop of a duplicate is imported again. Real Azurite, real host and emulator."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from local.drop import main
from shared.ledger import states
from tests.helpers import PROJECT_ROOT, drive_host_once, run_host_until_final


@pytest.fixture
def fec_file(fec_bytes, tmp_path):
    path = tmp_path / "123456789FEC20241231.txt"
    path.write_bytes(fec_bytes)
    return path


@pytest.fixture
def drop_env(pipeline_env, monkeypatch):
    for name, value in pipeline_env.items():
        monkeypatch.setenv(name, value)
    return pipeline_env


def _make_drop(*variables: str) -> list[str]:
    """The command `make drop` would run (make -n: printed, not run)."""
    make = shutil.which("make")
    assert make, "make is on the PATH wherever the README's commands run"
    result = subprocess.run([make, "-n", "drop", *variables], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=60, check=True)
    (command,) = [line for line in result.stdout.splitlines() if "-m local.drop" in line]
    return command.split("-m local.drop", 1)[1].split()


def test_make_drop_passes_dossier_name_and_force():
    assert _make_drop("FILE=a.txt", "DOSSIER=DEMO001", "NAME=DEMO001/b.txt", "FORCE=1") == [
        '"a.txt"', "--dossier", '"DEMO001"', "--name", '"DEMO001/b.txt"', "--force"]
    assert _make_drop("FILE=a.txt", "FORCE=0") == ['"a.txt"']
    assert _make_drop("FILE=a.txt", "FORCE=true", "NAME=x.txt") == ['"a.txt"', "--name", '"x.txt"', "--force"]


def test_drop_writes_the_name_and_metadata_it_is_given(drop_env, blob_service, fec_file, capsys):
    container = blob_service.get_container_client(drop_env["FEC_IMPORT_CONTAINER"])
    assert main([str(fec_file), "--name", "DEMO002/renamed é.txt", "--dossier", "DEMO001", "--force"]) == 0
    assert container.get_blob_client("DEMO002/renamed é.txt").get_blob_properties().metadata == {
        "codeibs": "DEMO001", "force": "true"}
    assert (f"as {drop_env['FEC_IMPORT_CONTAINER']}/DEMO002/renamed é.txt for dossier DEMO001 with force=true"
            in capsys.readouterr().out)
    assert main([str(fec_file)]) == 0
    assert container.get_blob_client(fec_file.name).get_blob_properties().metadata == {}
    assert main([str(fec_file.parent / "missing.txt")]) == 2
    assert "is not a file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(fec_file), "--force=yes"])


def _newest_version_final(host, name: str, versions: int, timeout: float = 30.0):
    """Drive the local host until blob `name` has `versions` versions in the ledger, the newest final."""
    from shared.flows.runtime import current_pipeline  # noqa: PLC0415

    pipeline = current_pipeline()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        drive_host_once(host)
        found = pipeline.ledger.versions_of(pipeline.settings.container, name)
        if len(found) == versions and found[-1].state in states.FINAL_STATES:
            return found[-1]
        time.sleep(0.2)
    raise AssertionError(f"{name}: not {versions} versions, the newest final, after {timeout}s")


def test_a_forced_drop_imports_a_duplicate_again(host, loop_emulator, fec_file, capsys):
    """The duplicate's page says to set force=true: `make drop ... NAME=<its name> FORCE=1` does it."""
    assert main([str(fec_file), "--name", "DEMO001/first.txt"]) == 0
    assert run_host_until_final(host, count=1)["DEMO001/first.txt"].state == states.COMPLETED
    assert main([str(fec_file), "--name", "DEMO001/again.txt"]) == 0
    again = run_host_until_final(host, count=2)["DEMO001/again.txt"]
    assert again.state == states.DUPLICATE
    assert "set metadata force=true" in again.error
    posts = [r for r in loop_emulator.requests() if r["path"] == "/importFEC"]
    assert len(posts) == 1

    assert main([str(fec_file), "--name", "DEMO001/again.txt", "--force"]) == 0
    forced = _newest_version_final(host, "DEMO001/again.txt", versions=2)
    assert forced.etag != again.etag
    assert (forced.state, forced.loop_status) == (states.COMPLETED, 3)
    assert len([r for r in loop_emulator.requests() if r["path"] == "/importFEC"]) == 2
