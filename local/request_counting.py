"""Storage requests counted as the SDKs send them, for benchmarks and tests: by scope (the trigger
group whose thread made them, or a scope named by the caller), service (blob, table, queue) and
operation (get_entity, create_snapshot, batch...), optionally with the project function that made each.

The counter sits in each client's own pipeline as its `raw_response_hook`, which azure-core's
CustomHookPolicy (tables) and the storage SDKs' response hook (blobs, queues) call once per request
sent, retries included, after the retry policy. A hook rather than an extra SansIOHTTPPolicy: the blob
and queue clients take no extra policies, and a table service client drops its per-call policies
from the table clients it makes. `counted_pipeline` builds a Pipeline whose every client counts, the
clients it makes for snapshots included.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from azure.core.pipeline import PipelineResponse

from shared.flows.pipeline import Pipeline
from shared.platform.settings import Settings
from shared.platform.storage import blob_service_client, status_queue_client, table_service_client

_scope: ContextVar[str | None] = ContextVar("storage_request_scope", default=None)


@dataclass(frozen=True)
class Request:
    scope: str
    service: str
    operation: str
    caller: str = ""


def thread_scope() -> str:
    """The scope named by `counting_scope`, else the thread's pool: `blob-trigger_3` counts as blob-trigger."""
    named = _scope.get()
    if named:
        return named
    return threading.current_thread().name.rsplit("_", 1)[0]


@contextlib.contextmanager
def counting_scope(name: str) -> Iterator[None]:
    token = _scope.set(name)
    try:
        yield
    finally:
        _scope.reset(token)


def _table_operation(method: str, path: str, headers: Any) -> str:
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if last == "$batch":
        return "batch"
    if "(" in last and "PartitionKey" in last:
        if method == "GET":
            return "get_entity"
        if method == "DELETE":
            return "delete_entity"
        conditional = "If-Match" in headers and headers["If-Match"] != "*"
        verb = "update" if method == "PUT" else "merge"
        return f"{verb}_entity_if_match" if conditional else f"{verb}_entity"
    if method == "POST":
        return "create_table" if last == "Tables" else "create_entity"
    return "query_entities" if method == "GET" else f"{method.lower()}_table"


def _blob_operation(method: str, path: str, query: dict[str, list[str]]) -> str:
    comp = (query.get("comp") or [""])[0]
    restype = (query.get("restype") or [""])[0]
    if restype == "container":
        return f"container_{comp or method.lower()}"
    names = {("PUT", "snapshot"): "create_snapshot", ("PUT", "tags"): "set_tags", ("GET", "tags"): "get_tags",
             ("PUT", "metadata"): "set_metadata", ("HEAD", ""): "get_properties", ("GET", ""): "download",
             ("PUT", ""): "upload", ("PUT", "block"): "put_block", ("PUT", "blocklist"): "put_block_list",
             ("DELETE", ""): "delete", ("GET", "list"): "list_blobs", ("POST", "userdelegationkey"): "delegation_key"}
    return names.get((method, comp), f"{method.lower()}_{comp or 'blob'}")


def _queue_operation(method: str, path: str) -> str:
    if path.rstrip("/").endswith("/messages"):
        return {"POST": "send_message", "GET": "receive_messages", "DELETE": "clear"}.get(method, method.lower())
    if "/messages/" in path:
        return {"DELETE": "delete_message", "PUT": "update_message"}.get(method, method.lower())
    return f"queue_{method.lower()}"


def operation_of(service: str, request: Any) -> str:
    parts = urlsplit(request.url)
    path = unquote(parts.path)
    if service == "table":
        return _table_operation(request.method, path, request.headers)
    if service == "queue":
        return _queue_operation(request.method, path)
    return _blob_operation(request.method, path, parse_qs(parts.query))


def project_caller() -> str:
    """The innermost function of shared.flows/shared.ledger (then the flow step that called it), from
    the stack: which call of the project made the request."""
    frame, found = sys._getframe(1), []
    while frame is not None and len(found) < 2:
        module = frame.f_globals.get("__name__", "")
        if module.startswith(("shared.flows", "shared.ledger")) and (not found or module.startswith("shared.flows")):
            name = f"{module.removeprefix('shared.')}.{frame.f_code.co_qualname}"
            if not found or name.split(".")[0:2] != found[-1].split(".")[0:2]:
                found.append(name)
        frame = frame.f_back
    return " < ".join(found)


class RequestCounter:
    """Every storage request of the clients it is attached to, thread-safe."""

    def __init__(self, *, callers: bool = False, scope_of: Callable[[], str] = thread_scope) -> None:
        self.callers, self.scope_of = callers, scope_of
        self.lock = threading.Lock()
        self.counts: Counter[Request] = Counter()

    def hook(self, service: str) -> Callable[[PipelineResponse], None]:
        return lambda response: self.count(service, response.http_request)

    def count(self, service: str, http_request: Any) -> None:
        key = Request(self.scope_of(), service, operation_of(service, http_request),
                      project_caller() if self.callers else "")
        with self.lock:
            self.counts[key] += 1

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()

    def snapshot(self) -> Counter[Request]:
        with self.lock:
            return Counter(self.counts)

    def total(self, scope: str | None = None, service: str | None = None) -> int:
        return sum(n for key, n in self.snapshot().items()
                   if (scope is None or key.scope == scope) and (service is None or key.service == service))


def counted_pipeline(settings: Settings, counter: RequestCounter, **options: Any) -> Pipeline:
    """A Pipeline from the settings whose blob, table and queue clients all count into `counter`."""
    blob_hook = counter.hook("blob")
    return Pipeline.from_settings(
        settings,
        blob_service=blob_service_client(settings, raw_response_hook=blob_hook),
        table_service=table_service_client(settings, raw_response_hook=counter.hook("table")),
        status_queue=status_queue_client(settings, raw_response_hook=counter.hook("queue")),
        blob_client_options={"raw_response_hook": blob_hook},
        **options,
    )
