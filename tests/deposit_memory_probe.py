"""Run in a process of its own by tests/test_deposit_memory.py: one delivery of a large blob in
deposit mode, with the deposit step's Python allocations traced (tracemalloc) and the process's
peak RSS read before and after. Prints one JSON line. Settings come from the environment.

Usage: python -m tests.deposit_memory_probe <container> <blob name>
"""

from __future__ import annotations

import json
import resource
import sys
import time
import tracemalloc
from typing import Any

from shared.flows import deposit
from shared.flows.pipeline import Pipeline
from shared.flows.submit import submit_blob
from shared.platform.settings import load_settings


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def main(container: str, blob_name: str) -> dict[str, Any]:
    pipeline = Pipeline.from_settings(load_settings())
    measured: dict[str, Any] = {}
    real_deposit = deposit.deposit

    def traced(*args: Any, **kwargs: Any) -> Any:
        tracemalloc.start()
        started = time.perf_counter()
        try:
            return real_deposit(*args, **kwargs)
        finally:
            measured["deposit_seconds"] = round(time.perf_counter() - started, 2)
            measured["deposit_peak_bytes"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()

    deposit.deposit = traced  # measured, not replaced: the real deposit runs inside
    blob = pipeline.blob_service.get_blob_client(container, blob_name)
    rss_before = _peak_rss_bytes()
    record = submit_blob(pipeline, blob)
    return {
        **measured, "state": str(record.state) if record else None, "request_id": record and record.request_id,
        "content_sha256": record and record.content_sha256, "peak_rss_before": rss_before,
        "peak_rss_after": _peak_rss_bytes(),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
