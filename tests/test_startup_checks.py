"""What stops a run before it starts, each in one clear line: an unknown blob trigger source, a
storage connection nothing answers or that is refused, `make run` against a dead port."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import azure.functions as func
import pytest

from blob_trigger import trigger_source
from local.azurite import DEV_ACCOUNT_KEY, connection_string, free_port
from local.paths import PROJECT_ROOT
from shared.platform.settings import load_settings
from shared.platform.storage import StorageUnavailableError, check_storage


def storage_settings(connection: str):
    return load_settings({"AzureWebJobsStorage": connection}, require_loop=False)


@pytest.mark.parametrize(
    ("value", "source"),
    [(None, func.BlobSource.LOGS_AND_CONTAINER_SCAN), ("", func.BlobSource.LOGS_AND_CONTAINER_SCAN),
     ("EventGrid", func.BlobSource.EVENT_GRID), (" eventgrid ", func.BlobSource.EVENT_GRID),
     ("logsandcontainerscan", func.BlobSource.LOGS_AND_CONTAINER_SCAN)],
)
def test_blob_trigger_sources_accepted(value, source):
    assert trigger_source(value) == source


def test_an_unknown_blob_trigger_source_is_refused_naming_the_accepted_ones():
    with pytest.raises(ValueError, match="BLOB_TRIGGER_SOURCE='Event Grid' is not a blob trigger source") as caught:
        trigger_source("Event Grid")
    assert "EventGrid (Azure, Flex Consumption), LogsAndContainerScan (polling, local runs)" in str(caught.value)


def test_an_unknown_blob_trigger_source_stops_indexing():
    """At start-up, where the host indexes the functions: never a silent fallback to polling."""
    result = subprocess.run(
        [sys.executable, "-c", "import function_app"], cwd=PROJECT_ROOT, capture_output=True, text=True,
        env={**os.environ, "BLOB_TRIGGER_SOURCE": "Polling"}, timeout=60, check=False,
    )
    assert result.returncode != 0
    assert "BLOB_TRIGGER_SOURCE='Polling' is not a blob trigger source" in result.stderr


def test_storage_nothing_answers_names_the_endpoint():
    port = free_port()
    with pytest.raises(StorageUnavailableError) as caught:
        check_storage(storage_settings(connection_string(port, port, port)))
    message = str(caught.value)
    assert message.startswith(f"storage unreachable at http://127.0.0.1:{port}/devstoreaccount1: nothing answered")
    assert "check AzureWebJobsStorage" in message
    assert "\n" not in message
    assert DEV_ACCOUNT_KEY not in message


def test_storage_refusing_the_key_says_so(azurite):
    wrong = azurite.connection_string.replace(DEV_ACCOUNT_KEY, "d3Jvbmcta2V5LW5vdC10aGUtb25l" * 3 + "AA==")
    with pytest.raises(StorageUnavailableError) as caught:
        check_storage(storage_settings(wrong))
    message = str(caught.value)
    endpoint = f"http://127.0.0.1:{azurite.blob_port}/devstoreaccount1"
    assert message.startswith(f"storage at {endpoint} refused the credentials (HTTP 403 AuthorizationFailure)")
    assert "the account key" in message
    assert "d3Jvbmcta2V5" not in message


def test_an_endpoint_that_is_not_storage_says_what_answered(loop_emulator):
    port = int(loop_emulator.base_url.rsplit(":", 1)[1])
    with pytest.raises(StorageUnavailableError, match=r"answered HTTP 4\d\d .*is it a storage account's blob endpoint"):
        check_storage(storage_settings(connection_string(port, port, port)))


def test_a_sas_token_never_reaches_the_message():
    port = free_port()
    connection = f"BlobEndpoint=http://127.0.0.1:{port}/acct;SharedAccessSignature=sv=2022-11-02&sig=S3cr3tSig%3D"
    with pytest.raises(StorageUnavailableError) as caught:
        check_storage(storage_settings(connection))
    assert "S3cr3tSig" not in str(caught.value)
    assert f"http://127.0.0.1:{port}/acct" in str(caught.value)


def test_a_working_storage_passes(azurite):
    check_storage(storage_settings(azurite.connection_string))


def dead_storage_env() -> dict[str, str]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AzureWebJobs", "LOOP_"))}
    # A Loop URL that is not on this machine: no emulator starts, nothing is contacted before storage.
    return {**env, "AzureWebJobsStorage": connection_string(port, port, port), "LOOP_API_BASE_URL": "https://loop.invalid",
            "PORT_FOR_TEST": str(port)}


def test_local_run_against_a_dead_port_exits_with_one_line():
    env = dead_storage_env()
    result = subprocess.run([sys.executable, "-m", "local.run"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"make run: storage unreachable at http://127.0.0.1:{env['PORT_FOR_TEST']}/devstoreaccount1: nothing "
        "answered; check AzureWebJobsStorage (locally: is Azurite running? `make run` starts it)"
    ]


def test_make_run_against_a_dead_port_exits_non_zero_with_that_line():
    """Through the Makefile itself; its prerequisites are not rebuilt here (the suite runs after
    `make install`), and local.settings.json is not created by the test."""
    make = shutil.which("make")
    assert make, "make is one of the three tools a fresh machine has"
    env = dead_storage_env()
    result = subprocess.run(
        [make, "--no-print-directory", "-o", "local.settings.json", "run",
         "STAMP_PY=", "STAMP_NODE=", "STAMP_CHECKOV=", f"PY={sys.executable}"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if not re.match(r"make(\[\d+\])?: \*\*\*", line)]
    assert ours == [f"make run: storage unreachable at http://127.0.0.1:{env['PORT_FOR_TEST']}/devstoreaccount1: "
                    "nothing answered; check AzureWebJobsStorage (locally: is Azurite running? `make run` starts it)"]
    assert "Traceback" not in result.stdout + result.stderr
