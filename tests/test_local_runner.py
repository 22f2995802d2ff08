"""The local host runner: what it hands the blob trigger (the extension's converter), the trigger
types it runs, and the ones it refuses. Real Azurite; nothing mocked."""

from __future__ import annotations

import json
import threading
import uuid

import azure.functions as func
import pytest
from azure.storage.blob import BlobClient as SdkBlobClient
from azurefunctions.extensions.bindings import blob
from azurefunctions.extensions.bindings.blob import BlobClientConverter

import function_app
from local.host.bindings import SUPPORTED_TRIGGERS, UnsupportedTriggerError, discover
from local.host.host import LocalHost


def blob_app(container: str, received: list, annotation: type = blob.BlobClient) -> func.FunctionApp:
    """An app with one blob trigger that records the argument it is handed."""
    app = func.FunctionApp()

    def record(client) -> None:
        received.append(client)

    record.__annotations__ = {"client": annotation, "return": None}
    app.function_name("recorder")(app.blob_trigger(arg_name="client", path=f"{container}/{{name}}",
                                                   connection="AzureWebJobsStorage")(record))
    return app


@pytest.fixture
def storage_env(azurite, monkeypatch) -> dict[str, str]:
    """The converter reads the connection from the process environment, as on Azure."""
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    return {"AzureWebJobsStorage": azurite.connection_string}


@pytest.fixture
def container(blob_service) -> str:
    name = f"runner{uuid.uuid4().hex[:12]}"
    blob_service.create_container(name)
    return name


@pytest.fixture
def decode_calls(monkeypatch) -> list[tuple]:
    """Every call of the extension's converter, with what it returned (the real one runs)."""
    calls: list[tuple] = []
    real = BlobClientConverter.decode.__func__
    lock = threading.Lock()

    def spy(cls, data, *, trigger_metadata, pytype):
        result = real(cls, data, trigger_metadata=trigger_metadata, pytype=pytype)
        with lock:
            calls.append((data, pytype, result))
        return result

    monkeypatch.setattr(BlobClientConverter, "decode", classmethod(spy))
    return calls


def run_once(host: LocalHost) -> None:
    host.scan_blobs()
    host.wait_idle(timeout=30)


def test_the_blob_trigger_gets_the_client_the_extensions_converter_built(
    storage_env, blob_service, container, decode_calls
):
    blob_service.get_blob_client(container, "DEMO001/a.txt").upload_blob(b"hello")
    received: list = []
    host = LocalHost(blob_app(container, received), blob_service, storage_env, retry_delay=0.01)
    try:
        run_once(host)
    finally:
        host.stop()
    ((data, pytype, built),) = decode_calls
    (client,) = received
    assert client is built, "the function must get exactly what the converter built"
    assert pytype is blob.BlobClient
    assert data.type == "model_binding_data"
    assert (data.value.source, data.value.content_type) == ("AzureStorageBlobs", "application/json")
    assert json.loads(data.value.content) == {
        "Connection": "AzureWebJobsStorage", "ContainerName": container, "BlobName": "DEMO001/a.txt",
    }
    assert isinstance(client, SdkBlobClient)
    assert client.download_blob().readall() == b"hello"


def test_a_converter_failure_reaches_the_invocation_not_a_fallback(
    storage_env, blob_service, container, monkeypatch
):
    """If the runner built the client itself, this converter change would go unnoticed."""

    def broken(cls, data, *, trigger_metadata, pytype):
        raise ValueError("the extension changed")

    monkeypatch.setattr(BlobClientConverter, "decode", classmethod(broken))
    blob_service.get_blob_client(container, "b.txt").upload_blob(b"x")
    received: list = []
    host = LocalHost(blob_app(container, received), blob_service, storage_env, max_attempts=2, retry_delay=0.01)
    try:
        run_once(host)
    finally:
        host.stop()
    assert received == []


def test_the_real_blob_trigger_is_read_with_its_sdk_type_and_connection(storage_env, monkeypatch):
    monkeypatch.setenv("FEC_IMPORT_CONTAINER", "api-import-ecrit")
    env = {**storage_env, "FEC_IMPORT_CONTAINER": "api-import-ecrit", "STATUS_POLL_SCHEDULE": "0 */1 * * * *",
           "LEDGER_PURGE_SCHEDULE": "0 30 2 * * *", "STATUS_CHECK_QUEUE": "checks-discovered"}
    found = discover(function_app.app, env)
    (blob_function,) = found.blobs
    assert (blob_function.name, blob_function.container) == ("fec_blob_trigger", "api-import-ecrit")
    assert (blob_function.connection, blob_function.pytype) == ("AzureWebJobsStorage", blob.BlobClient)
    assert sorted(timer.name for timer in found.timers) == ["fec_ledger_purge", "fec_status_timer"]
    assert [(q.name, q.queue.queue_name) for q in found.queues] == [("fec_status_check", "checks-discovered")]
    assert sorted((h.name, h.route, h.methods, h.auth_level) for h in found.http) == [
        ("imports_api_list", "imports", ("GET",), "FUNCTION"),
        ("imports_api_show", "imports/{*name}", ("GET",), "FUNCTION"),
    ]


def test_the_supported_trigger_types_are_one_table():
    assert set(SUPPORTED_TRIGGERS) == {"blobTrigger", "timerTrigger", "queueTrigger", "httpTrigger"}


def test_a_trigger_type_the_runner_cannot_run_is_refused_by_name(storage_env, blob_service):
    app = func.FunctionApp()

    @app.function_name("on_event")
    @app.event_hub_message_trigger(arg_name="event", event_hub_name="work", connection="EventHubConnection")
    def on_event(event: func.EventHubEvent) -> None:
        return None

    with pytest.raises(UnsupportedTriggerError) as caught:
        LocalHost(app, blob_service, storage_env)
    message = str(caught.value)
    assert "on_event has a eventHubTrigger trigger" in message
    assert "blobTrigger, timerTrigger, queueTrigger, httpTrigger" in message
    assert "SUPPORTED_TRIGGERS" in message


def test_a_blob_trigger_without_an_sdk_type_is_refused(storage_env, blob_service, container):
    with pytest.raises(UnsupportedTriggerError, match="SDK type"):
        LocalHost(blob_app(container, [], annotation=func.InputStream), blob_service, storage_env)


def test_the_connection_must_be_where_the_converter_reads_it(azurite, blob_service, container, monkeypatch):
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    monkeypatch.delenv("AzureWebJobsStorage__accountName", raising=False)
    env = {"AzureWebJobsStorage": azurite.connection_string}
    with pytest.raises(UnsupportedTriggerError, match="not in the process environment"):
        LocalHost(blob_app(container, []), blob_service, env)
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    with pytest.raises(UnsupportedTriggerError, match="differs between the runner's settings and the process"):
        LocalHost(blob_app(container, []), blob_service, env)
