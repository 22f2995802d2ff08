"""The host options the local host reads from host.json, with the host's defaults."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.paths import HOST_JSON


def _extension(name: str, host_json: Path) -> dict[str, Any]:
    return json.loads(host_json.read_text()).get("extensions", {}).get(name, {})


def _timespan_seconds(value: str) -> float:
    """`hh:mm:ss` (host.json's TimeSpan format) in seconds."""
    hours, minutes, seconds = (float(part) for part in value.split(":"))
    return hours * 3600 + minutes * 60 + seconds


@dataclass(frozen=True)
class BlobOptions:
    """host.json's `extensions.blobs`: `maxDegreeOfParallelism` is the concurrency of all
    blob-triggered functions of an instance (the extension's default: 8 per core)."""

    max_degree_of_parallelism: int = 8
    poison_threshold: int = 5

    @classmethod
    def from_host_json(cls, host_json: Path = HOST_JSON) -> BlobOptions:
        blobs = _extension("blobs", host_json)
        default_parallelism = 8 * (os.cpu_count() or 1)
        return cls(
            max_degree_of_parallelism=max(int(blobs.get("maxDegreeOfParallelism", default_parallelism)), 1),
            poison_threshold=int(blobs.get("poisonBlobThreshold", 5)),
        )


@dataclass(frozen=True)
class QueueOptions:
    """host.json's `extensions.queues`, with the host's defaults. A new batch is fetched when the
    messages in process drop to `new_batch_threshold`: at most batchSize + newBatchThreshold run at once."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 60.0

    @classmethod
    def from_host_json(cls, host_json: Path = HOST_JSON) -> QueueOptions:
        queues = _extension("queues", host_json)
        batch_size = int(queues.get("batchSize", 16))
        return cls(
            batch_size=batch_size,
            new_batch_threshold=int(queues.get("newBatchThreshold", batch_size // 2)),
            max_dequeue_count=int(queues.get("maxDequeueCount", 5)),
            visibility_timeout=_timespan_seconds(queues.get("visibilityTimeout", "00:00:00")),
            max_polling_interval=_timespan_seconds(queues.get("maxPollingInterval", "00:01:00")),
        )

    @property
    def concurrency(self) -> int:
        """The most messages one instance handles at once."""
        return self.batch_size + self.new_batch_threshold
