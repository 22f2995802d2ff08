"""One backoff policy for everything the pipeline tries again: submit retries and status checks.

Like Temporal's RetryPolicy: one value (base, factor, cap, jitter) gives the delay before attempt
n + 1. The HTTP retries inside one Loop call are urllib3's (shared.loop.client), and the host's
blob retries follow host.json: both are bounded by their own, much shorter, settings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from shared.platform.settings import Settings


@dataclass(frozen=True)
class Backoff:
    base: timedelta = timedelta(minutes=1)
    factor: float = 2.0
    cap: timedelta = timedelta(hours=1)
    jitter: float = 0.1  # each delay is spread by up to this fraction, up or down

    @classmethod
    def from_settings(cls, settings: Settings) -> Backoff:
        return cls(
            base=timedelta(seconds=settings.backoff_base_seconds),
            factor=settings.backoff_factor,
            cap=timedelta(seconds=settings.backoff_max_seconds),
            jitter=settings.backoff_jitter,
        )

    def delay(self, failures: int, rng: random.Random | None = None) -> timedelta:
        """The wait after the `failures`-th failure in a row (1 for the first): base × factor^(n-1),
        capped, then spread by the jitter (never beyond the cap)."""
        exponent = max(failures - 1, 0)
        seconds = min(self.base.total_seconds() * self.factor**min(exponent, 64), self.cap.total_seconds())
        if self.jitter:
            spread = (rng or random).uniform(-self.jitter, self.jitter)
            seconds = min(seconds * (1 + spread), self.cap.total_seconds())
        return timedelta(seconds=seconds)
