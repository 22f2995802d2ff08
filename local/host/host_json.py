"""The host options the local host reads from host.json, with the host's defaults."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from local.paths import HOST_JSON


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
