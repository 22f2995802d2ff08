"""The functions as the host sees them: binding metadata from function_app.app, then invocations."""

from __future__ import annotations

import json

import pytest

import function_app
from local.host.arguments import LocalTimerRequest, queue_trigger_argument
from local.host.bindings import registered_functions
from shared.flows.runtime import current_pipeline, reset_pipeline
from shared.flows.submit import SubmitRetryableError
from shared.ledger import states
from tests.helpers import upload, wait_until_final_at_loop


def functions_by_name():
    return {fn.get_function_name(): fn for fn in registered_functions(function_app.app)}


def trigger_of(function):
    return json.loads(function.get_function_json())["bindings"][0]


@pytest.fixture
def app_env(pipeline_env, monkeypatch):
    """The functions read their settings from the environment, like on Azure."""
    for name, value in pipeline_env.items():
        monkeypatch.setenv(name, value)
    reset_pipeline()
    yield pipeline_env
    reset_pipeline()


def test_the_app_registers_exactly_its_functions():
    assert sorted(functions_by_name()) == [
        "fec_blob_trigger", "fec_ledger_purge", "fec_status_check", "fec_status_timer", "imports_api_list",
        "imports_api_show",
    ]


def test_the_api_binding_metadata_asks_for_a_function_key():
    functions = functions_by_name()
    show, listing = trigger_of(functions["imports_api_show"]), trigger_of(functions["imports_api_list"])
    assert (show["type"], show["route"], show["methods"], show["authLevel"]) == (
        "httpTrigger", "imports/{*name}", ["GET"], "FUNCTION")
    assert (listing["route"], listing["authLevel"]) == ("imports", "FUNCTION")


def test_blob_trigger_binding_metadata():
    trigger = trigger_of(functions_by_name()["fec_blob_trigger"])
    assert trigger == {
        "direction": "IN",
        "type": "blobTrigger",
        "name": "client",
        "path": "%FEC_IMPORT_CONTAINER%/{name}",
        "connection": "AzureWebJobsStorage",
        "source": "LogsAndContainerScan",
    }


def test_timer_binding_metadata():
    trigger = trigger_of(functions_by_name()["fec_status_timer"])
    assert trigger["type"] == "timerTrigger"
    assert trigger["schedule"] == "%STATUS_POLL_SCHEDULE%"
    assert trigger["runOnStartup"] is False
    purge = trigger_of(functions_by_name()["fec_ledger_purge"])
    assert (purge["type"], purge["schedule"], purge["runOnStartup"]) == ("timerTrigger", "%LEDGER_PURGE_SCHEDULE%", False)


def test_the_blob_function_never_takes_the_blob_bytes():
    """An SDK BlobClient parameter, not func.InputStream (which is the whole blob in memory)."""
    call = functions_by_name()["fec_blob_trigger"].get_user_function()
    assert "BlobClient" in str(call.__annotations__["client"])


def test_invoking_the_functions_imports_a_file(app_env, loop_emulator, fec_bytes):
    functions = functions_by_name()
    pipeline = current_pipeline()
    pipeline.ensure_resources()
    blob = upload(pipeline, "DEMO001/542107651FEC20210502.txt", fec_bytes)
    functions["fec_blob_trigger"].get_user_function()(client=blob)
    (record,) = pipeline.ledger.all_records()
    assert record.state == states.PENDING
    wait_until_final_at_loop(loop_emulator)
    functions["fec_status_timer"].get_user_function()(timer=LocalTimerRequest())
    (message,) = pipeline.status_queue.receive_messages()  # the timer enqueued one check
    functions["fec_status_check"].get_user_function()(message=queue_trigger_argument(message))
    assert pipeline.ledger.get(*record.keys).state == states.COMPLETED


def test_loop_unreachable_fails_the_invocation(app_env, fec_bytes, monkeypatch):
    from local.azurite import free_port  # noqa: PLC0415

    monkeypatch.setenv("LOOP_API_BASE_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("LOOP_MAX_RETRIES", "0")
    reset_pipeline()
    pipeline = current_pipeline()
    pipeline.ensure_resources()
    blob = upload(pipeline, "DEMO001/a.txt", fec_bytes)
    with pytest.raises(SubmitRetryableError):
        functions_by_name()["fec_blob_trigger"].get_user_function()(client=blob)
    assert [r.state for r in pipeline.ledger.all_records()] == [states.RETRY_WAIT]


def test_event_grid_source_is_chosen_by_setting(monkeypatch):
    import importlib  # noqa: PLC0415

    import azure.functions as func  # noqa: PLC0415

    import blob_trigger  # noqa: PLC0415

    monkeypatch.setenv("BLOB_TRIGGER_SOURCE", "EventGrid")
    try:
        reloaded = importlib.reload(blob_trigger)
        assert reloaded.TRIGGER_SOURCE == func.BlobSource.EVENT_GRID
    finally:
        monkeypatch.delenv("BLOB_TRIGGER_SOURCE")
        importlib.reload(blob_trigger)
