"""The one source of time for the pipeline: every step reads `pipeline.clock`, so tests move time
instead of sleeping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The wall clock, timezone-aware (UTC): the pipeline's default clock."""
    return datetime.now(UTC)
