"""The pipeline's metrics, as OpenTelemetry instruments (Application Insights `customMetrics`).

| name | kind | unit | attributes |
|---|---|---|---|
| `fec.imports` | counter | import | `outcome` (the final state, or `unknown`), `event` |
| `fec.validation.duration` | histogram | s | `valid` |
| `fec.validation.throughput` | histogram | By/s | `valid` |
| `fec.loop.duration` | histogram | s | `operation` (importFEC, getImportStatus...), `result` (`ok`, error class) |
| `fec.imports.pending` | gauge | import | (set by the timer on each tick) |
| `fec.imports.pending.oldest_age` | gauge | s | (set by the timer on each tick) |
| `fec.poll.tick.duration` | histogram | s | |

Instruments come from the global meter: before an SDK is configured (and always without a
connection string) they are no-ops.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from opentelemetry import metrics

METER_NAME = "fec_import"
# An import's outcome as counted in `fec.imports`: the states an import ends in, and `unknown`
# (waits for an operator).
OUTCOME_STATES = frozenset({
    "completed", "failed", "rejected", "submit_failed", "duplicate", "superseded", "cancelled", "unknown",
})

_meter = metrics.get_meter(METER_NAME)
imports = _meter.create_counter("fec.imports", unit="{import}", description="Imports by outcome")
validation_duration = _meter.create_histogram("fec.validation.duration", unit="s",
                                              description="Time to stream, validate and hash one file")
validation_throughput = _meter.create_histogram("fec.validation.throughput", unit="By/s",
                                                description="Bytes validated per second, per file")
loop_duration = _meter.create_histogram("fec.loop.duration", unit="s", description="Loop API call latency")
pending = _meter.create_gauge("fec.imports.pending", unit="{import}", description="Imports pending at Loop")
oldest_pending_age = _meter.create_gauge("fec.imports.pending.oldest_age", unit="s",
                                         description="Age of the oldest pending import (since its POST)")
poll_tick_duration = _meter.create_histogram("fec.poll.tick.duration", unit="s", description="Timer tick duration")


def count_outcome(state: str | None, event: str) -> None:
    """Count an event that leaves an import in an outcome state (once per such event)."""
    if state in OUTCOME_STATES:
        imports.add(1, {"outcome": state, "event": event})


def record_validation(seconds: float, size: int | None, valid: bool) -> None:
    attributes = {"valid": valid}
    validation_duration.record(seconds, attributes)
    if size and seconds > 0:
        validation_throughput.record(size / seconds, attributes)


@contextmanager
def timed_loop_call(operation: str) -> Iterator[dict[str, str]]:
    """Time one Loop call; the caller sets `result` in the yielded dict when it is not `ok`."""
    outcome = {"result": "ok"}
    started = time.perf_counter()
    try:
        yield outcome
    finally:
        loop_duration.record(time.perf_counter() - started, {"operation": operation, "result": outcome["result"]})


def observe_pending(submitted_times: list[datetime], now: datetime) -> None:
    """What the timer saw this tick: how many imports are pending, and the oldest one's age."""
    pending.set(len(submitted_times))
    oldest = min(submitted_times, default=None)
    oldest_pending_age.set((now - oldest).total_seconds() if oldest else 0.0)


@contextmanager
def timed_tick() -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        poll_tick_duration.record(time.perf_counter() - started)
