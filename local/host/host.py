"""The local host's loops: blob versions scanned and handed to the blob functions (retried, then
given up as poison), queues drained in batches (failed messages made visible again, then moved to
`<queue>-poison`), timers fired on their schedule; serve_forever runs the three until stop."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueMessage as QueueMessageItem

from local.host.arguments import LocalTimerRequest, blob_trigger_argument, queue_trigger_argument
from local.host.bindings import BlobFunction, QueueFunction, TimerFunction, discover
from local.host.host_json import QueueOptions, host_blob_retries

log = logging.getLogger("local.host")


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
        self.http_functions = found.http  # served by local/host/http_server.py
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
                function.call(**{function.arg_name: blob_trigger_argument(function, blob_name)})
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
