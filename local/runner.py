"""A local stand-in for the Functions host, for machines without Azure Functions Core Tools.

It loads `function_app.app`, reads each registered function's own binding metadata (the blob
trigger's container path, the timer's NCRONTAB schedule, with `%SETTING%` expressions resolved from
the environment like the host does) and invokes those same functions: the blob function once per
new blob version seen in Azurite, the timer function when its schedule fires. Failed blob
invocations are retried like the host does (up to the poison threshold of host.json).
It is not a production host: no scale-out, receipts kept in memory only.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.storage.blob import BlobServiceClient
from croniter import croniter

PROJECT_ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("local.runner")
_SETTING_EXPRESSION = re.compile(r"%([A-Za-z0-9_]+)%")


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


def host_blob_retries(host_json: Path = PROJECT_ROOT / "host.json") -> int:
    """The poison threshold of host.json (the host's default is 5)."""
    config = json.loads(host_json.read_text())
    return int(config.get("extensions", {}).get("blobs", {}).get("poisonBlobThreshold", 5))


@dataclass
class BlobFunction:
    name: str
    arg_name: str
    container: str
    call: Callable[..., Any]


@dataclass
class TimerFunction:
    name: str
    arg_name: str
    schedule: str
    call: Callable[..., Any]
    next_run: datetime = field(default_factory=lambda: datetime.now(UTC))

    def schedule_next(self, after: datetime) -> None:
        self.next_run = croniter(self.schedule, after, second_at_beginning=True).get_next(datetime)


_indexed: dict[int, list[func.Function]] = {}


def registered_functions(app: func.FunctionApp) -> list[func.Function]:
    """app.get_functions(), indexed once per app: like the host, since a second call raises
    (azure-functions checks names against those it already indexed)."""
    if id(app) not in _indexed:
        _indexed[id(app)] = app.get_functions()
    return _indexed[id(app)]


def discover(app: func.FunctionApp, env: Mapping[str, str]) -> tuple[list[BlobFunction], list[TimerFunction]]:
    """The app's triggers, from the functions' own binding metadata."""
    blobs: list[BlobFunction] = []
    timers: list[TimerFunction] = []
    for function in registered_functions(app):
        trigger = json.loads(function.get_function_json())["bindings"][0]
        call = function.get_user_function()
        if trigger["type"] == "blobTrigger":
            container = resolve_expression(trigger["path"], env).split("/", 1)[0]
            blobs.append(BlobFunction(function.get_function_name(), trigger["name"], container, call))
        elif trigger["type"] == "timerTrigger":
            schedule = resolve_expression(trigger["schedule"], env)
            timer = TimerFunction(function.get_function_name(), trigger["name"], schedule, call)
            timer.schedule_next(datetime.now(UTC))
            timers.append(timer)
    return blobs, timers


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
        self.blob_functions, self.timer_functions = discover(app, env if env is not None else os.environ)
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
        client = self.blob_service.get_blob_client(function.container, blob_name)
        for attempt in range(1, self.max_attempts + 1):
            try:
                function.call(**{function.arg_name: client})
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
            ),
        )
        while not self.stop_event.is_set():
            try:
                self.scan_blobs()
                self.fire_due_timers()
            except Exception as error:
                log.warning("scan failed: %s", error)
            self.stop_event.wait(scan_interval)

    def stop(self) -> None:
        self.stop_event.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
