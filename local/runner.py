"""A local stand-in for the Functions host, for machines without Azure Functions Core Tools.

It loads `function_app.app`, reads each registered function's own binding metadata (the blob
trigger's container path, the timer's NCRONTAB schedule, with `%SETTING%` expressions resolved from
the environment like the host does) and invokes those same functions: the blob function once per
new blob version seen in Azurite, the timer function when its schedule fires. Failed blob
invocations are retried like the host does (up to the poison threshold of host.json).

The blob function gets what the host gives it: the host sends model binding data (the connection
name, container and blob name) and the binding extension's own converter turns it into the
annotated SDK type, here through the same converter registry the Python worker uses. The converter
reads the connection from the process environment, as on Azure.

A trigger type missing from SUPPORTED_TRIGGERS is refused at start-up, never silently skipped.
It is not a production host: no scale-out, receipts kept in memory only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
import typing
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.functions import meta
from azure.functions.queue import QueueMessageInConverter
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient
from azure.storage.queue import QueueMessage as QueueMessageItem
from azurefunctions.extensions.base import Datum, get_binding_registry
from croniter import croniter

from local.paths import HOST_JSON

log = logging.getLogger("local.runner")
_SETTING_EXPRESSION = re.compile(r"%([A-Za-z0-9_]+)%")


class UnsupportedTriggerError(RuntimeError):
    """A function whose trigger (or trigger argument type) the local runner cannot run."""


@dataclass(frozen=True)
class ModelBindingData:
    """The fields of the worker's ModelBindingData message that SDK-type converters read."""

    version: str
    source: str
    content_type: str
    content: str


class LocalTimerRequest(func.TimerRequest):
    def __init__(self, past_due: bool = False) -> None:
        self._past_due = past_due

    @property
    def past_due(self) -> bool:
        return self._past_due


def resolve_expression(value: str, env: Mapping[str, str]) -> str:
    """Replace `%NAME%` with the setting's value, as the host resolves binding expressions."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise KeyError(f"binding expression %{name}% has no setting {name}")
        return env[name]

    return _SETTING_EXPRESSION.sub(lookup, value)


def host_blob_retries(host_json: Path = HOST_JSON) -> int:
    """The poison threshold of host.json (the host's default is 5)."""
    config = json.loads(host_json.read_text())
    return int(config.get("extensions", {}).get("blobs", {}).get("poisonBlobThreshold", 5))


@dataclass(frozen=True)
class QueueOptions:
    """host.json's `extensions.queues`, with the host's defaults."""

    batch_size: int = 16
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0

    @classmethod
    def from_host_json(cls, host_json: Path = HOST_JSON) -> QueueOptions:
        queues = json.loads(host_json.read_text()).get("extensions", {}).get("queues", {})
        hours, minutes, seconds = (float(part) for part in queues.get("visibilityTimeout", "00:00:00").split(":"))
        return cls(
            batch_size=int(queues.get("batchSize", 16)),
            max_dequeue_count=int(queues.get("maxDequeueCount", 5)),
            visibility_timeout=hours * 3600 + minutes * 60 + seconds,
        )


@dataclass
class BlobFunction:
    name: str
    arg_name: str
    container: str
    call: Callable[..., Any]
    connection: str = "AzureWebJobsStorage"
    pytype: type | None = None

    def argument(self, blob_name: str) -> Any:
        """What the host hands the function for this blob: the binding extension's converter,
        found in the registry the worker reads, decoding the model binding data the host sends."""
        converter = get_binding_registry().get("blobTrigger")
        if converter is None:
            raise UnsupportedTriggerError("no converter registered for blobTrigger: is azurefunctions-extensions-"
                                          "bindings-blob imported by the function's module?")
        content = {"Connection": self.connection, "ContainerName": self.container, "BlobName": blob_name}
        data = ModelBindingData("1.0", "AzureStorageBlobs", "application/json", json.dumps(content))
        return converter.decode(Datum(data, "model_binding_data"), trigger_metadata={}, pytype=self.pytype)


@dataclass
class TimerFunction:
    name: str
    arg_name: str
    schedule: str
    call: Callable[..., Any]
    next_run: datetime = field(default_factory=lambda: datetime.now(UTC))

    def schedule_next(self, after: datetime) -> None:
        self.next_run = croniter(self.schedule, after, second_at_beginning=True).get_next(datetime)


def queue_trigger_argument(message: QueueMessageItem) -> func.QueueMessage:
    """What the worker hands a queue-triggered function: built by azure-functions' own converter
    from the payload and trigger metadata, as the host sends them."""
    metadata = {
        "Id": meta.Datum(message.id, "string"),
        "DequeueCount": meta.Datum(message.dequeue_count, "int"),
        "PopReceipt": meta.Datum(message.pop_receipt, "string"),
    }
    return QueueMessageInConverter.decode(meta.Datum(message.content, "bytes"), trigger_metadata=metadata)


@dataclass
class QueueFunction:
    """A queue-triggered function: its messages are received, handed over as func.QueueMessage,
    deleted on success, made visible again after a failure, and moved to `<queue>-poison` after
    maxDequeueCount attempts, as the host does."""

    name: str
    arg_name: str
    queue: QueueClient
    call: Callable[..., Any]

    @property
    def poison(self) -> QueueClient:
        return QueueClient.from_queue_url(
            f"{self.queue.url}-poison", credential=self.queue.credential,
            message_encode_policy=BinaryBase64EncodePolicy(), message_decode_policy=BinaryBase64DecodePolicy(),
        )


_indexed: weakref.WeakKeyDictionary[func.FunctionApp, list[func.Function]] = weakref.WeakKeyDictionary()


def registered_functions(app: func.FunctionApp) -> list[func.Function]:
    """app.get_functions(), indexed once per app: like the host, since a second call raises
    (azure-functions checks names against those it already indexed). Keyed by the app itself, not
    its id(), which a later app may reuse."""
    if app not in _indexed:
        _indexed[app] = app.get_functions()
    return _indexed[app]


@dataclass
class Triggers:
    """The app's functions, grouped by how the local host runs them."""

    blobs: list[BlobFunction] = field(default_factory=list)
    timers: list[TimerFunction] = field(default_factory=list)
    queues: list[QueueFunction] = field(default_factory=list)


def _trigger_binding(function: func.Function) -> dict[str, Any]:
    bindings = json.loads(function.get_function_json())["bindings"]
    return next(binding for binding in bindings if binding["type"].endswith("Trigger"))


def _add_blob(found: Triggers, function: func.Function, trigger: dict[str, Any], env: Mapping[str, str]) -> None:
    call = function.get_user_function()
    pytype = typing.get_type_hints(call).get(trigger["name"])
    converter = get_binding_registry().get("blobTrigger")
    if converter is None or pytype is None or not converter.check_input_type_annotation(pytype):
        raise UnsupportedTriggerError(
            f"{function.get_function_name()}: the local runner hands blob triggers an SDK type built by the "
            f"blob extension's converter (blob.BlobClient, ContainerClient, StorageStreamDownloader), not {pytype}"
        )
    _check_connection(function.get_function_name(), trigger.get("connection") or "", env)
    container = resolve_expression(trigger["path"], env).split("/", 1)[0]
    found.blobs.append(BlobFunction(
        function.get_function_name(), trigger["name"], container, call, trigger.get("connection") or "", pytype,
    ))


def _check_connection(function_name: str, connection: str, env: Mapping[str, str]) -> None:
    """The extension's converter reads the connection from the process environment, as on Azure:
    it must be there, and be the one the runner was given (else it would read another account)."""
    names = [connection, *(f"{connection}__{suffix}" for suffix in ("blobServiceUri", "serviceUri", "accountName"))]
    present = [name for name in names if os.environ.get(name)]
    if not present:
        raise UnsupportedTriggerError(
            f"{function_name}: its connection {connection!r} is not in the process environment, where the blob "
            f"extension's converter reads it: set {connection} (or {connection}__accountName)"
        )
    differing = [name for name in present if env.get(name, os.environ[name]) != os.environ[name]]
    if differing:
        raise UnsupportedTriggerError(
            f"{function_name}: {', '.join(differing)} differs between the runner's settings and the process "
            "environment, where the blob extension's converter reads it"
        )


def _add_timer(found: Triggers, function: func.Function, trigger: dict[str, Any], env: Mapping[str, str]) -> None:
    schedule = resolve_expression(trigger["schedule"], env)
    timer = TimerFunction(function.get_function_name(), trigger["name"], schedule, function.get_user_function())
    timer.schedule_next(datetime.now(UTC))
    found.timers.append(timer)


def _add_queue(found: Triggers, function: func.Function, trigger: dict[str, Any], env: Mapping[str, str]) -> None:
    connection = trigger.get("connection") or "AzureWebJobsStorage"
    if not env.get(connection):
        raise UnsupportedTriggerError(
            f"{function.get_function_name()}: the local runner reads queues through a connection string in "
            f"{connection}; identity-based connections run on Azure only"
        )
    queue = QueueClient.from_connection_string(
        env[connection], resolve_expression(trigger["queueName"], env),
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()
    found.queues.append(QueueFunction(function.get_function_name(), trigger["name"], queue,
                                      function.get_user_function()))


# The trigger types the local runner can run: the binding type of function.json and how it is read.
# A new trigger is one row here, its dataclass and its loop in LocalHost.
SUPPORTED_TRIGGERS: dict[str, Callable[[Triggers, func.Function, dict[str, Any], Mapping[str, str]], None]] = {
    "blobTrigger": _add_blob,
    "timerTrigger": _add_timer,
    "queueTrigger": _add_queue,
}


def discover(app: func.FunctionApp, env: Mapping[str, str]) -> Triggers:
    """The app's triggers, from the functions' own binding metadata; an unknown trigger type is an
    error (a function the runner silently skipped would look like a function that never fires)."""
    found = Triggers()
    for function in registered_functions(app):
        trigger = _trigger_binding(function)
        add = SUPPORTED_TRIGGERS.get(trigger["type"])
        if add is None:
            raise UnsupportedTriggerError(
                f"{function.get_function_name()} has a {trigger['type']} trigger, which the local runner cannot run "
                f"(it runs {', '.join(SUPPORTED_TRIGGERS)}): add it to SUPPORTED_TRIGGERS in local/runner.py, "
                "or run under Azure Functions Core Tools (func start)"
            )
        add(found, function, trigger, env)
    return found


class LocalHost:
    """Scans containers for new blob versions and fires timers; invokes the app's functions."""

    def __init__(
        self,
        app: func.FunctionApp,
        blob_service: BlobServiceClient,
        env: Mapping[str, str] | None = None,
        *,
        max_attempts: int | None = None,
        retry_delay: float = 2.0,
        workers: int = 4,
    ) -> None:
        self.blob_service = blob_service
        found = discover(app, env if env is not None else os.environ)
        self.blob_functions, self.timer_functions = found.blobs, found.timers
        self.queue_functions = found.queues
        self.queue_options = QueueOptions.from_host_json()
        self.max_attempts = max_attempts or host_blob_retries()
        self.retry_delay = retry_delay
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="blob-trigger")
        self.seen: dict[tuple[str, str], str] = {}
        self.in_flight: list[Future[None]] = []
        self.stop_event = threading.Event()

    def scan_blobs(self) -> int:
        """Start an invocation for each blob version not seen yet; return how many started."""
        started = 0
        self.in_flight = [future for future in self.in_flight if not future.done()]
        for function in self.blob_functions:
            for item in self.blob_service.get_container_client(function.container).list_blobs():
                key = (function.container, item.name)
                if self.seen.get(key) == item.etag:
                    continue
                self.seen[key] = item.etag
                self.in_flight.append(self.pool.submit(self._invoke_blob, function, item.name))
                started += 1
        return started

    def _invoke_blob(self, function: BlobFunction, blob_name: str) -> None:
        for attempt in range(1, self.max_attempts + 1):
            try:
                function.call(**{function.arg_name: function.argument(blob_name)})
                return
            except Exception as error:
                log.warning(
                    "%s failed for %s/%s (attempt %d of %d): %s",
                    function.name, function.container, blob_name, attempt, self.max_attempts, error,
                )
                if attempt < self.max_attempts and not self.stop_event.wait(self.retry_delay * attempt):
                    continue
                log.error("%s gave up on %s/%s (poison)", function.name, function.container, blob_name)
                return

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait until every blob invocation started so far has finished."""
        deadline = time.monotonic() + timeout
        for future in list(self.in_flight):
            future.result(timeout=max(deadline - time.monotonic(), 0.01))
        self.in_flight = [future for future in self.in_flight if not future.done()]

    def drain_queues(self, max_batches: int | None = None) -> int:
        """Receive and handle queue messages (batchSize at a time, handled in the pool) until the
        queues are empty or `max_batches` batches were taken; return how many were handled."""
        handled = 0
        for function in self.queue_functions:
            batches = 0
            while max_batches is None or batches < max_batches:
                messages = list(function.queue.receive_messages(
                    messages_per_page=self.queue_options.batch_size, max_messages=self.queue_options.batch_size,
                    visibility_timeout=max(int(self.queue_options.visibility_timeout), 30),
                ))
                if not messages:
                    break
                batches += 1
                list(self.pool.map(lambda message, f=function: self._invoke_queue(f, message), messages))
                handled += len(messages)
        return handled

    def _invoke_queue(self, function: QueueFunction, message: QueueMessageItem) -> None:
        argument = queue_trigger_argument(message)
        try:
            function.call(**{function.arg_name: argument})
        except Exception as error:
            log.warning("%s failed for message %s (attempt %d of %d): %s", function.name, message.id,
                        message.dequeue_count, self.queue_options.max_dequeue_count, error)
            if message.dequeue_count >= self.queue_options.max_dequeue_count:
                poison = function.poison
                with contextlib.suppress(ResourceExistsError):
                    poison.create_queue()
                poison.send_message(message.content)
                function.queue.delete_message(message)
                log.error("%s moved message %s to %s-poison", function.name, message.id, function.queue.queue_name)
            else:
                function.queue.update_message(message.id, message.pop_receipt,
                                              visibility_timeout=int(self.queue_options.visibility_timeout))
            return
        function.queue.delete_message(message)

    def fire_due_timers(self, now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        fired = 0
        for timer in self.timer_functions:
            if timer.next_run <= now:
                self.fire_timer(timer, past_due=(now - timer.next_run).total_seconds() > 60)
                timer.schedule_next(now)
                fired += 1
        return fired

    def fire_timer(self, timer: TimerFunction | None = None, past_due: bool = False) -> None:
        """Invoke a timer function now (the first one by default)."""
        timer = timer or self.timer_functions[0]
        try:
            timer.call(**{timer.arg_name: LocalTimerRequest(past_due)})
        except Exception:
            log.exception("%s failed", timer.name)

    def serve_forever(self, scan_interval: float = 1.0) -> None:
        log.info(
            "local host: %s",
            ", ".join(
                [f"{f.name} on container {f.container}" for f in self.blob_functions]
                + [f"{t.name} on schedule '{t.schedule}'" for t in self.timer_functions]
                + [f"{q.name} on queue {q.queue.queue_name}" for q in self.queue_functions]
            ),
        )
        while not self.stop_event.is_set():
            try:
                self.scan_blobs()
                self.fire_due_timers()
                self.drain_queues(max_batches=4)
            except Exception as error:
                log.warning("scan failed: %s", error)
            self.stop_event.wait(scan_interval)

    def stop(self) -> None:
        self.stop_event.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
