"""Queue messages kept invisible while the local host handles them, as the Functions host does: its
queue listener receives each batch invisible for 10 minutes and renews that while the function runs
(WebJobs SDK; azure-webjobs-sdk issue #1040), so a slow invocation is never handed out twice."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from azure.storage.queue import QueueMessage as QueueMessageItem

from local.host.bindings import QueueFunction

log = logging.getLogger("local.host")
# What the host's queue listener receives messages with; renewed at half of it.
FETCH_VISIBILITY_SECONDS = 600


@dataclass
class _Held:
    function: QueueFunction
    message: QueueMessageItem
    renew_at: float
    lock: threading.Lock = field(default_factory=threading.Lock)


class VisibilityRenewer:
    """Keeps each message in process invisible: renewed when half its visibility has passed, so a
    slow invocation is never handed to a second worker. A renewal changes the message's pop receipt,
    so the receipt is used (delete, update) only under `finishing`, never while that message is being
    renewed; other messages are not held up."""

    def __init__(self, visibility: float) -> None:
        self.visibility = visibility
        self.held: dict[int, _Held] = {}  # by the received message object: a message received again is another
        self.lock = threading.Lock()

    def hold(self, function: QueueFunction, message: QueueMessageItem) -> None:
        with self.lock:
            self.held[id(message)] = _Held(function, message, time.monotonic() + self.visibility / 2)

    @contextlib.contextmanager
    def finishing(self, message: QueueMessageItem) -> Iterator[None]:
        """No more renewals of the message; its receipt is stable inside the block."""
        with self.lock:
            held = self.held.pop(id(message), None)
        if held is None:
            yield
            return
        with held.lock:
            yield

    def renew_due(self) -> int:
        """Renew every held message whose renewal time has come; return how many were renewed."""
        now = time.monotonic()
        with self.lock:
            due = [held for held in self.held.values() if held.renew_at <= now]
        return sum(self._renew(held) for held in due)

    def _renew(self, held: _Held) -> bool:
        with held.lock:
            with self.lock:
                if self.held.get(id(held.message)) is not held:
                    return False  # finished meanwhile
            message = held.message
            try:
                receipt = held.function.queue.update_message(message.id, message.pop_receipt,
                                                             visibility_timeout=int(self.visibility))
            except Exception as error:
                log.warning("could not renew message %s of %s: %s", message.id, held.function.queue.queue_name,
                            error)
                held.renew_at = time.monotonic() + self.visibility / 4  # tried again later, not every look
                return False
            message.pop_receipt = receipt.pop_receipt
            held.renew_at = time.monotonic() + self.visibility / 2
            return True
