"""The local host's loops, one executor per trigger group as on Azure: blob versions scanned and
handed to the blob functions in the blob executor (retried, then given up as poison), queue messages
received by a listener per queue and handled in the queue executor (failed messages made visible
again, then moved to `<queue>-poison`), timers fired on their own thread. serve_forever runs them
side by side until stop, so a blob backlog never delays a queue message or a timer tick.

Sizes, from host.json as the host reads them: the blob executor runs `blobs.maxDegreeOfParallelism`
invocations at once; the queue executor `queues.batchSize + newBatchThreshold`, a new batch being
received as soon as the messages in process drop to `newBatchThreshold`; the timer is a singleton
that runs one tick at a time. docs/local-host.md compares this with the Functions host.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueMessage as QueueMessageItem

from local.host.arguments import LocalTimerRequest, blob_trigger_argument, queue_trigger_argument
from local.host.bindings import BlobFunction, QueueFunction, TimerFunction, discover
from local.host.host_json import BlobOptions, QueueOptions
from local.host.visibility import FETCH_VISIBILITY_SECONDS, VisibilityRenewer

log = logging.getLogger("local.host")
_FIRST_POLLING_INTERVAL = 0.1  # the queue listener's first wait on an empty queue, doubled up to maxPollingInterval
_TIMER_LOOK_SECONDS = 1.0  # the timer thread looks at the schedule at least this often
_RENEW_LOOK_SECONDS = 1.0  # the renewer looks at the messages in process at least this often


class QueueListener:
    """Receives one queue's messages in batches and hands them to the queue executor: a new batch
    as soon as the messages in process drop to newBatchThreshold, as the host's queue listener does."""

    def __init__(self, host: LocalHost, function: QueueFunction) -> None:
        self.host, self.function = host, function
        self.in_process = 0
        self.changed = threading.Condition()

    def run(self) -> None:
        waiting = _FIRST_POLLING_INTERVAL
        while not self.host.stop_event.is_set():
            self._wait_for_room()
            try:
                messages = self.host.receive(self.function)
            except Exception as error:
                log.warning("receiving from %s failed: %s", self.function.queue.queue_name, error)
                messages = []
            if not messages:
                self.host.stop_event.wait(waiting)
                waiting = min(waiting * 2, max(self.host.queue_options.max_polling_interval, _FIRST_POLLING_INTERVAL))
                continue
            waiting = _FIRST_POLLING_INTERVAL
            for message in messages:
                self._start(message)

    def _wait_for_room(self) -> None:
        threshold = self.host.queue_options.new_batch_threshold
        with self.changed:
            while self.in_process > threshold and not self.host.stop_event.is_set():
                self.changed.wait(0.5)

    def _start(self, message: QueueMessageItem) -> None:
        with self.changed:
            self.in_process += 1
        try:
            future = self.host.queue_pool.submit(self.host._invoke_queue, self.function, message)
        except RuntimeError:  # the executor shut down (stop)
            self._done(message, None)
            return
        future.add_done_callback(lambda done: self._done(message, done))

    def _done(self, message: QueueMessageItem, future: Future[None] | None) -> None:
        if future is None or future.cancelled():  # received, never started: visible again now
            self.host.release(self.function, message)
        with self.changed:
            self.in_process -= 1
            self.changed.notify_all()


class LocalHost:
    """Scans containers for new blob versions, listens to queues and fires timers; invokes the app's
    functions, each trigger group in its own executor."""

    def __init__(
        self,
        app: func.FunctionApp,
        blob_service: BlobServiceClient,
        env: Mapping[str, str] | None = None,
        *,
        max_attempts: int | None = None,
        retry_delay: float = 2.0,
        workers: int | None = None,
    ) -> None:
        """`workers` overrides host.json's blob concurrency (`blobs.maxDegreeOfParallelism`)."""
        self.blob_service = blob_service
        found = discover(app, env if env is not None else os.environ)
        self.blob_functions, self.timer_functions = found.blobs, found.timers
        self.queue_functions = found.queues
        self.http_functions = found.http  # served by local/host/http_server.py
        self.blob_options = BlobOptions.from_host_json()
        self.queue_options = QueueOptions.from_host_json()
        self.max_attempts = max_attempts or self.blob_options.poison_threshold
        self.retry_delay = retry_delay
        self.blob_pool = ThreadPoolExecutor(workers or self.blob_options.max_degree_of_parallelism,
                                            thread_name_prefix="blob-trigger")
        self.queue_pool = ThreadPoolExecutor(self.queue_options.concurrency, thread_name_prefix="queue-trigger")
        self.renewer = VisibilityRenewer(FETCH_VISIBILITY_SECONDS)
        self.seen: dict[tuple[str, str], str] = {}
        self.in_flight: list[Future[None]] = []
        self.stop_event = threading.Event()
        self.renewals_end = threading.Event()  # after stop: the invocations still running keep their renewals
        self.threads: list[threading.Thread] = []
        self.renew_thread: threading.Thread | None = None

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
                self.in_flight.append(self.blob_pool.submit(self._invoke_blob, function, item.name))
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

    def receive(self, function: QueueFunction) -> list[QueueMessageItem]:
        """One batch of the function's queue (batchSize messages at most), invisible while handled
        (FETCH_VISIBILITY_SECONDS, renewed by the renewer while an invocation runs)."""
        return list(function.queue.receive_messages(
            messages_per_page=self.queue_options.batch_size, max_messages=self.queue_options.batch_size,
            visibility_timeout=int(self.renewer.visibility),
        ))

    def release(self, function: QueueFunction, message: QueueMessageItem) -> None:
        """A message received but never handled (the host stopped) is made visible again at once."""
        try:
            function.queue.update_message(message.id, message.pop_receipt, visibility_timeout=0)
        except Exception as error:
            log.warning("message %s stays invisible until its timeout: %s", message.id, error)

    def drain_queues(self, max_batches: int | None = None) -> int:
        """Receive and handle queue messages in the queue executor, a batch at a time, until the
        queues are empty or `max_batches` batches were taken; return how many were handled."""
        handled = 0
        for function in self.queue_functions:
            batches = 0
            while max_batches is None or batches < max_batches:
                messages = self.receive(function)
                if not messages:
                    break
                batches += 1
                wait([self.queue_pool.submit(self._invoke_queue, function, message) for message in messages])
                handled += len(messages)
        return handled

    def _invoke_queue(self, function: QueueFunction, message: QueueMessageItem) -> None:
        argument = queue_trigger_argument(message)
        self.renewer.hold(function, message)
        try:
            function.call(**{function.arg_name: argument})
        except Exception as error:
            log.warning("%s failed for message %s (attempt %d of %d): %s", function.name, message.id,
                        message.dequeue_count, self.queue_options.max_dequeue_count, error)
            with self.renewer.finishing(message):
                self._after_failure(function, message)
            return
        except BaseException:
            with self.renewer.finishing(message):  # no more renewals: visible again when it runs out
                raise
        with self.renewer.finishing(message):
            function.queue.delete_message(message)

    def _after_failure(self, function: QueueFunction, message: QueueMessageItem) -> None:
        """Visible again after host.json's visibilityTimeout, or to `<queue>-poison` after maxDequeueCount."""
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

    def _scan_loop(self, scan_interval: float) -> None:
        while not self.stop_event.is_set():
            try:
                self.scan_blobs()
            except Exception as error:
                log.warning("blob scan failed: %s", error)
            self.stop_event.wait(scan_interval)

    def _renew_loop(self) -> None:
        look = min(_RENEW_LOOK_SECONDS, self.renewer.visibility / 8)  # renewed well before it lapses
        while not self.renewals_end.wait(look):
            self.renewer.renew_due()

    def _timer_loop(self) -> None:
        """The timers' own thread: a tick runs on time whatever the other executors hold, one at a time."""
        while not self.stop_event.is_set():
            self.fire_due_timers()
            upcoming = min(timer.next_run for timer in self.timer_functions)
            wait_for = (upcoming - datetime.now(UTC)).total_seconds()
            self.stop_event.wait(min(max(wait_for, 0.01), _TIMER_LOOK_SECONDS))

    def _start_thread(self, name: str, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def start(self, scan_interval: float = 1.0) -> None:
        """Start the blob scan, one listener per queue and the timers, each on its own thread."""
        if self.blob_functions:
            self._start_thread("blob-scan", self._scan_loop, scan_interval)
        for function in self.queue_functions:
            self._start_thread(f"queue-listener-{function.name}", QueueListener(self, function).run)
        if self.queue_functions:
            self.renew_thread = threading.Thread(target=self._renew_loop, name="queue-visibility", daemon=True)
            self.renew_thread.start()
        if self.timer_functions:
            self._start_thread("timer-trigger", self._timer_loop)

    def serve_forever(self, scan_interval: float = 1.0) -> None:
        log.info(
            "local host: %s",
            ", ".join(
                [f"{f.name} on container {f.container}" for f in self.blob_functions]
                + [f"{t.name} on schedule '{t.schedule}'" for t in self.timer_functions]
                + [f"{q.name} on queue {q.queue.queue_name}" for q in self.queue_functions]
            ),
        )
        self.start(scan_interval)
        while not self.stop_event.wait(0.5):
            pass

    def stop(self) -> None:
        """Stop every loop; invocations in progress finish, those not started are dropped (their
        blobs are scanned again at the next start, their messages become visible again)."""
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=30)
        self.blob_pool.shutdown(wait=True, cancel_futures=True)
        self.queue_pool.shutdown(wait=True, cancel_futures=True)
        self.renewals_end.set()
        if self.renew_thread is not None:
            self.renew_thread.join(timeout=30)
