"""infra/hooks/postdeploy.sh against a stand-in `az` (Azure is out of reach): it waits for the
blobs_extension key until it exists and is non-empty, names the subscription on every call, and
stops with a clear message when the key never comes."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

HOOK = Path(__file__).resolve().parent.parent / "infra" / "hooks" / "postdeploy.sh"
FAKE_AZ = """#!/bin/sh
echo "$*" >> "$AZ_LOG"
case "$*" in
  *"functionapp keys list"*)
    count=$(cat "$AZ_COUNT" 2>/dev/null || echo 0); count=$((count + 1)); echo "$count" > "$AZ_COUNT"
    if [ "$count" -eq 1 ]; then echo "ERROR: host not started" >&2; exit 1; fi
    if [ "$count" -ge "$KEY_FROM_CALL" ]; then echo "k3y-from-host"; else echo ""; fi ;;
esac
"""


def run_hook(tmp_path: Path, key_from_call: int, attempts: int = 5) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(FAKE_AZ)
    az.chmod(az.stat().st_mode | stat.S_IEXEC)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "AZ_LOG": str(tmp_path / "az.log"),
        "AZ_COUNT": str(tmp_path / "count"), "KEY_FROM_CALL": str(key_from_call),
        "AZURE_SUBSCRIPTION_ID": "0000-sub", "AZURE_FUNCTION_APP_NAME": "func-fec-x", "RESOURCE_GROUP": "rg-fec",
        "EVENT_GRID_SYSTEM_TOPIC_NAME": "evgt-fec-x", "FEC_KEY_WAIT_ATTEMPTS": str(attempts),
        "FEC_KEY_WAIT_SECONDS": "0",
    }
    sh = shutil.which("sh")
    assert sh
    return subprocess.run([sh, str(HOOK)], env=env, capture_output=True, text=True, timeout=30, check=False)


def test_the_key_is_awaited_then_the_subscription_created(tmp_path):
    result = run_hook(tmp_path, key_from_call=3)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "az.log").read_text().splitlines()
    assert [call.startswith("functionapp keys list") for call in calls] == [True, True, True, False]
    assert all("--subscription 0000-sub" in call for call in calls)
    create = calls[-1]
    assert create.startswith("eventgrid system-topic event-subscription create")
    assert "functionName=Host.Functions.fec_blob_trigger&code=k3y-from-host" in create
    assert "--subject-begins-with /blobServices/default/containers/api-import-ecrit/" in create
    assert "subscription 0000-sub" in result.stdout


@pytest.mark.parametrize("attempts", [1, 4])
def test_no_key_stops_the_hook_with_what_to_check(tmp_path, attempts):
    result = run_hook(tmp_path, key_from_call=99, attempts=attempts)
    assert result.returncode == 1
    assert f"no blobs_extension key on func-fec-x after {attempts} attempts" in result.stderr
    assert "azd hooks run postdeploy" in result.stderr
    assert "eventgrid" not in (tmp_path / "az.log").read_text()
