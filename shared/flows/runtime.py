"""The process-wide pipeline the functions share: built once, on first use, from the environment."""

from __future__ import annotations

import threading

from shared.flows.pipeline import Pipeline
from shared.platform.settings import load_settings

_lock = threading.Lock()
_pipeline: Pipeline | None = None


def current_pipeline() -> Pipeline:
    """Build on first call (settings errors surface in the first invocation's log, named)."""
    global _pipeline  # noqa: PLW0603 - one pipeline per worker process, like an SDK client
    with _lock:
        if _pipeline is None:
            pipeline = Pipeline.from_settings(load_settings())
            pipeline.ensure_resources()
            _pipeline = pipeline
        return _pipeline


def use_pipeline(pipeline: Pipeline) -> None:
    """Make `pipeline` the one the functions share (benchmarks install one whose clients count requests)."""
    global _pipeline  # noqa: PLW0603
    with _lock:
        _pipeline = pipeline


def reset_pipeline() -> None:
    """Forget the pipeline (tests and the local runner change settings between runs)."""
    global _pipeline  # noqa: PLW0603
    with _lock:
        if _pipeline is not None:
            _pipeline.loop.close()
        _pipeline = None
