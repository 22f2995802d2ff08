"""When to ask Loop again about an import: the spacing of status checks (README, "Spacing of status checks").

- The first check comes STATUS_POLL_FIRST_SECONDS after the POST: set to Loop's typical time to
  finish an import, most imports are final at their first check (one status call each).
- Then every tenth of the import's age, never less than STATUS_POLL_STEP_SECONDS and never more
  than STATUS_POLL_MAX_INTERVAL_SECONDS: short steps while an import is young (younger than ten
  steps), longer ones as it ages, so a long import costs few calls and a late one is still seen soon.

The trade-off is the step: an import Loop finishes after its first check is seen at most one step
(plus one timer period) late, and costs one more status call per step it runs past the first check.
A step shorter than the timer's period buys nothing: checks are only enqueued when the timer ticks.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.platform.settings import Settings

AGE_FRACTION = 0.1  # the gap between two checks of an older import: this share of its age


def first_check_in(settings: Settings) -> timedelta:
    """How long after the POST the first status check is due."""
    return timedelta(seconds=settings.status_first_check_seconds)


# A claim's row is put at the first check's time only when that leaves the POST's answer this long
# to arrive before the row is due: a shorter first check would have ticks lease the row meanwhile.
CLAIM_ROW_MIN_FIRST_SECONDS = 10


def claim_row_at(settings: Settings, now: datetime, redrive_at: datetime) -> datetime:
    """When a new claim's due row is due: at the first check's time (from the claim) when that is
    before the re-drive time, so that the POST's answer, a little later, finds the row where it
    needs it and writes the record alone (one table request less per file). The check is then at
    most the claim-to-answer time early; a check that finds the import not due yet moves the row."""
    first = first_check_in(settings)
    if first < timedelta(seconds=CLAIM_ROW_MIN_FIRST_SECONDS):
        return redrive_at
    return min(now + first, redrive_at)


def next_check_in(settings: Settings, since: datetime, now: datetime) -> timedelta:
    """How long after a check at `now` the next one is due, for an import submitted at `since`."""
    age = max(now - since, timedelta(0))
    step = timedelta(seconds=settings.status_step_seconds)
    ceiling = timedelta(seconds=settings.status_max_interval_seconds)
    return min(max(step, age * AGE_FRACTION), ceiling)
