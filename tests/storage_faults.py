"""Faults injected at the storage client: an azure-core policy that fails one matching table request.

The policy sits in the client's per-call policies, outside the SDK's own retry policy, so the caller
sees the failure as it would once the SDK's retries are spent. "Fails" means the request never
reached Azurite; "answer lost" means Azurite applied it but the client sees an error.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.core.pipeline.policies import HTTPPolicy
from azure.data.tables import TableClient

from shared.ledger.ledger import Ledger

Matcher = Callable[[Any], bool]
WRITE_METHODS = ("PUT", "PATCH", "MERGE", "POST")


class FailOnce(HTTPPolicy):
    """Fails the next request `matches` accepts after each `arm()`, once."""

    def __init__(self, matches: Matcher, *, answer_lost: bool = False) -> None:
        super().__init__()
        self.matches = matches
        self.answer_lost = answer_lost
        self.fired = 0
        self._armed = False
        self._lock = threading.Lock()

    def arm(self) -> None:
        with self._lock:
            self._armed = True

    def send(self, request):
        with self._lock:
            fire = self._armed and self.matches(request.http_request)
            if fire:
                self._armed = False
                self.fired += 1
        if not fire:
            return self.next.send(request)
        if self.answer_lost:
            self.next.send(request)
            raise ServiceResponseError("injected: the answer was lost after the write was applied")
        raise ServiceRequestError("injected: the write never reached storage")


def _body(request) -> dict[str, Any]:
    raw = request.body
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return {}


def entity_write(partition_prefix: str, **properties: Any) -> Matcher:
    """A write of one entity in a partition starting with `partition_prefix`, holding `properties`."""

    def matches(request) -> bool:
        if request.method not in WRITE_METHODS or f"PartitionKey='{partition_prefix}" not in unquote(request.url):
            return False
        body = _body(request)
        return all(body.get(name) == value for name, value in properties.items())

    return matches


def ledger_with(pipeline, connection_string: str, policy: HTTPPolicy) -> Ledger:
    """Give the pipeline a ledger on the same table whose client goes through `policy`."""
    table = TableClient.from_connection_string(
        connection_string, pipeline.settings.ledger_table, per_call_policies=[policy]
    )
    pipeline.ledger = Ledger(table, pipeline.clock)
    return pipeline.ledger
