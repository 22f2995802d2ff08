"""The local host runs each trigger group in its own executor, as the Functions host does: a blob
backlog never delays a queue message or a timer tick. Real Azurite; the functions are stand-ins that
record when they ran (the blob ones hold their worker until the test ends)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import azure.functions as func
import pytest
from azurefunctions.extensions.bindings import blob

from local.host.host import LocalHost
from local.host.host_json import BlobOptions, QueueOptions
from local.host.visibility import VisibilityRenewer
from tests.helpers import unique_name

BACKLOG = 300
SCAN_INTERVAL = 0.5
GENEROUS = 10.0  # "within one scan interval", with room for a loaded 2-core machine


class Recorder:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.blobs_started = 0
        self.messages: list[tuple[bytes, float]] = []
        self.ticks: list[float] = []
        self.lock = threading.Lock()

    def app(self, container: str, queue: str) -> func.FunctionApp:
        app = func.FunctionApp()

        def on_blob(client: blob.BlobClient) -> None:
            with self.lock:
                self.blobs_started += 1
            self.release.wait(60)

        def on_message(message: func.QueueMessage) -> None:
            with self.lock:
                self.messages.append((message.get_body(), time.monotonic()))

        def on_tick(timer: func.TimerRequest) -> None:
            with self.lock:
                self.ticks.append(time.monotonic())

        app.function_name("slow_blob")(app.blob_trigger(arg_name="client", path=f"{container}/{{name}}",
                                                        connection="AzureWebJobsStorage")(on_blob))
        app.function_name("quick_message")(app.queue_trigger(arg_name="message", queue_name=queue,
                                                             connection="AzureWebJobsStorage")(on_message))
        app.function_name("every_second")(app.timer_trigger(arg_name="timer", schedule="*/1 * * * * *")(on_tick))
        return app


@pytest.fixture
def storage_env(azurite, monkeypatch) -> dict[str, str]:
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    return {"AzureWebJobsStorage": azurite.connection_string}


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_queue_message_and_a_timer_tick_do_not_wait_behind_a_blob_backlog(storage_env, blob_service):
    container, queue_name = unique_name("backlog"), unique_name("quick")
    blob_service.create_container(container)
    with ThreadPoolExecutor(8) as uploads:
        list(uploads.map(lambda n: blob_service.get_blob_client(container, f"f{n:04d}.txt").upload_blob(b"x"),
                         range(BACKLOG)))
    recorder = Recorder()
    host = LocalHost(recorder.app(container, queue_name), blob_service, storage_env)
    (listened,) = host.queue_functions
    server = threading.Thread(target=host.serve_forever, args=(SCAN_INTERVAL,), daemon=True)
    try:
        server.start()
        assert wait_for(lambda: recorder.blobs_started > 0, GENEROUS)
        # every version scanned, all but the running ones waiting (the scan may still be handing them over)
        assert wait_for(lambda: len(host.in_flight) == BACKLOG, GENEROUS), len(host.in_flight)
        ticks_before = len(recorder.ticks)
        sent_at = time.monotonic()
        listened.queue.send_message("aGVsbG8=")  # base64, as the queue trigger expects
        assert wait_for(lambda: recorder.messages, GENEROUS), "the message waited behind the blob backlog"
        assert wait_for(lambda: len(recorder.ticks) >= ticks_before + 2, GENEROUS), "the timer waited"
    finally:
        recorder.release.set()
        host.stop()
    (body, handled_at) = recorder.messages[0]
    assert body == b"hello"
    assert handled_at - sent_at < GENEROUS
    assert recorder.blobs_started <= BACKLOG


def test_executors_are_sized_from_host_json(storage_env, blob_service):
    container, queue_name = unique_name("sizes"), unique_name("sizes")
    blob_service.create_container(container)
    host = LocalHost(Recorder().app(container, queue_name), blob_service, storage_env)
    try:
        blobs, queues = BlobOptions.from_host_json(), QueueOptions.from_host_json()
        assert host.blob_pool._max_workers == blobs.max_degree_of_parallelism
        assert host.queue_pool._max_workers == queues.batch_size + queues.new_batch_threshold
    finally:
        host.stop()


def test_host_json_defaults_are_the_hosts(tmp_path):
    empty = tmp_path / "host.json"
    empty.write_text('{"version": "2.0"}')
    queues = QueueOptions.from_host_json(empty)
    assert (queues.batch_size, queues.new_batch_threshold, queues.max_polling_interval) == (16, 8, 60.0)
    assert BlobOptions.from_host_json(empty).poison_threshold == 5


def queue_app(queue: str, handle) -> func.FunctionApp:
    app = func.FunctionApp()
    app.function_name("slow_message")(app.queue_trigger(arg_name="message", queue_name=queue,
                                                        connection="AzureWebJobsStorage")(handle))
    return app


def test_a_message_handled_longer_than_its_visibility_is_renewed_and_handled_once(storage_env, blob_service):
    """As the host's queue listener: the message stays invisible while its function runs (renewed at
    half its visibility), then is deleted with the latest pop receipt. Without the renewal it comes
    back after 4 s and a second worker handles it too."""
    queue_name = unique_name("renewed")
    calls: list[float] = []

    def slow(message: func.QueueMessage) -> None:
        calls.append(time.monotonic())
        time.sleep(6)

    host = LocalHost(queue_app(queue_name, slow), blob_service, storage_env)
    host.renewer = VisibilityRenewer(4)  # renewed from 2 s on, looked at every 0.5 s
    (listened,) = host.queue_functions

    listened.queue.send_message("aGVsbG8=")
    host.start()
    try:
        assert wait_for(lambda: calls, GENEROUS)
        time.sleep(9)  # the function's 6 s, then more than half a visibility: a lost renewal would show
    finally:
        host.stop()
    assert len(calls) == 1
    assert list(listened.queue.peek_messages(max_messages=5)) == []  # deleted, with the renewed receipt


def test_a_message_received_but_never_started_is_visible_again_when_the_host_stops(storage_env, blob_service):
    queue_name = unique_name("released")
    started, release = threading.Event(), threading.Event()

    def blocking(message: func.QueueMessage) -> None:
        started.set()
        release.wait(30)

    host = LocalHost(queue_app(queue_name, blocking), blob_service, storage_env)
    host.queue_pool = ThreadPoolExecutor(1)  # one worker: the second message waits in the executor
    (listened,) = host.queue_functions

    listened.queue.send_message("Zmlyc3Q=")
    listened.queue.send_message("c2Vjb25k")
    host.start()
    assert started.wait(GENEROUS)
    assert wait_for(lambda: list(listened.queue.peek_messages(max_messages=5)) == [], GENEROUS)  # both received
    stopping = threading.Thread(target=host.stop)
    stopping.start()
    time.sleep(0.5)
    release.set()
    stopping.join(60)
    visible = list(listened.queue.receive_messages(max_messages=5, visibility_timeout=1))
    assert len(visible) == 1  # the one never started, at once (not after FETCH_VISIBILITY_SECONDS)
