"""Which functions the app registers and how the local host runs each: read from the functions'
own binding metadata (the blob trigger's container path, the timer's NCRONTAB schedule, the queue's
name, the HTTP trigger's route, methods and authLevel), with `%SETTING%` expressions resolved from
the environment like the host does.

A trigger type missing from SUPPORTED_TRIGGERS is refused at start-up, never silently skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import typing
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient
from azurefunctions.extensions.base import get_binding_registry
from croniter import croniter

_SETTING_EXPRESSION = re.compile(r"%([A-Za-z0-9_]+)%")


class UnsupportedTriggerError(RuntimeError):
    """A function whose trigger (or trigger argument type) the local runner cannot run."""


def resolve_expression(value: str, env: Mapping[str, str]) -> str:
    """Replace `%NAME%` with the setting's value, as the host resolves binding expressions."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise KeyError(f"binding expression %{name}% has no setting {name}")
        return env[name]

    return _SETTING_EXPRESSION.sub(lookup, value)


@dataclass
class BlobFunction:
    """A blob-triggered function: invoked once per new blob version in `container`, with the SDK type
    `pytype` that arguments.blob_trigger_argument builds."""

    name: str
    arg_name: str
    container: str
    call: Callable[..., Any]
    connection: str = "AzureWebJobsStorage"
    pytype: type | None = None


@dataclass
class TimerFunction:
    name: str
    arg_name: str
    schedule: str
    call: Callable[..., Any]
    next_run: datetime = field(default_factory=lambda: datetime.now(UTC))

    def schedule_next(self, after: datetime) -> None:
        self.next_run = croniter(self.schedule, after, second_at_beginning=True).get_next(datetime)


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


@dataclass
class HttpFunction:
    """An HTTP-triggered function: served by local/host/http_server.py on `api/<route>` for `methods`;
    `auth_level` FUNCTION or ADMIN asks for a key, ANONYMOUS does not."""

    name: str
    arg_name: str
    route: str
    methods: tuple[str, ...]
    auth_level: str
    call: Callable[..., Any]


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
    http: list[HttpFunction] = field(default_factory=list)


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


def _add_http(found: Triggers, function: func.Function, trigger: dict[str, Any], env: Mapping[str, str]) -> None:
    methods = tuple(str(method).upper() for method in trigger.get("methods") or ("GET", "POST"))
    route = resolve_expression(trigger.get("route") or function.get_function_name(), env).strip("/")
    found.http.append(HttpFunction(function.get_function_name(), trigger["name"], route, methods,
                                   str(trigger.get("authLevel") or "FUNCTION").upper(), function.get_user_function()))


# The trigger types the local runner can run: the binding type of function.json and how it is read.
# A new trigger is one row here, its dataclass and its loop in LocalHost.
SUPPORTED_TRIGGERS: dict[str, Callable[[Triggers, func.Function, dict[str, Any], Mapping[str, str]], None]] = {
    "blobTrigger": _add_blob,
    "timerTrigger": _add_timer,
    "queueTrigger": _add_queue,
    "httpTrigger": _add_http,
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
                f"(it runs {', '.join(SUPPORTED_TRIGGERS)}): add it to SUPPORTED_TRIGGERS in local/host/bindings.py, "
                "or run under Azure Functions Core Tools (func start)"
            )
        add(found, function, trigger, env)
    return found
