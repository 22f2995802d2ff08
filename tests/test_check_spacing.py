"""The spacing of status checks (shared.flows.check_spacing), on a movable clock: when each check
is due, how many status calls an import costs and how late its end is seen."""

from __future__ import annotations

import dataclasses
import math
from datetime import timedelta

import pytest

from shared.flows import check_spacing
from shared.platform.settings import SettingsError, load_settings
from tests.helpers import MovableClock

BASE_ENV = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "LOOP_API_KEY": "k:s", "LOOP_SUBSCRIPTION_KEY": "s"}


def settings(**values: str):
    return load_settings({**BASE_ENV, **values})


def follow(spacing, finishes_after: float, period: float) -> tuple[int, float]:
    """Check an import as the timer would (due checks run at the next tick of `period` seconds)
    until Loop has finished it; return the status calls made and how late the end was seen."""
    clock = MovableClock()
    submitted = clock()
    due = submitted + check_spacing.first_check_in(spacing)
    calls = 0
    while True:
        ticks = math.ceil((due - submitted).total_seconds() / period)
        now = submitted + timedelta(seconds=ticks * period)
        clock.advance(now - submitted - clock.offset)
        calls += 1
        age = (now - submitted).total_seconds()
        if age >= finishes_after:
            return calls, age - finishes_after
        due = now + check_spacing.next_check_in(spacing, submitted, now)


def test_a_first_check_at_zero_still_leaves_a_step_of_one_second():
    """STATUS_POLL_FIRST_SECONDS=0 (check at the next tick) must not make the default step 0: young
    imports would be checked at every tick, below the step's own minimum."""
    assert settings(STATUS_POLL_FIRST_SECONDS="0").status_step_seconds == 1

def test_by_default_the_step_is_the_first_check_as_before():
    spacing = settings(STATUS_POLL_FIRST_SECONDS="30", STATUS_POLL_MAX_INTERVAL_SECONDS="120")
    assert spacing.status_step_seconds == 30
    clock = MovableClock()
    submitted = clock()
    for age, expected in ((timedelta(0), 30), (timedelta(minutes=10), 60), (timedelta(hours=5), 120)):
        assert check_spacing.next_check_in(spacing, submitted, submitted + age) == timedelta(seconds=expected)


def test_short_steps_while_young_then_a_tenth_of_the_age_up_to_the_ceiling():
    spacing = settings(STATUS_POLL_FIRST_SECONDS="30", STATUS_POLL_STEP_SECONDS="5",
                       STATUS_POLL_MAX_INTERVAL_SECONDS="120")
    assert check_spacing.first_check_in(spacing) == timedelta(seconds=30)
    clock = MovableClock()
    submitted = clock()
    gaps = {}
    for age in (30, 45, 100, 300, 5000):
        clock.advance(submitted + timedelta(seconds=age) - clock())
        gaps[age] = check_spacing.next_check_in(spacing, submitted, clock()).total_seconds()
    assert gaps == {30: 5, 45: 5, 100: 10, 300: 30, 5000: 120}


def test_an_import_finished_by_its_first_check_costs_one_call_and_is_seen_within_a_period():
    spacing = settings(STATUS_POLL_FIRST_SECONDS="30", STATUS_POLL_STEP_SECONDS="5")
    calls, late = follow(spacing, finishes_after=30, period=5)
    assert (calls, late) == (1, 0)
    calls, late = follow(spacing, finishes_after=27, period=5)
    assert calls == 1
    assert late <= 5


@pytest.mark.parametrize("finishes_after", [31, 38, 47])
def test_a_young_late_import_is_seen_within_a_step_and_a_period(finishes_after):
    spacing = settings(STATUS_POLL_FIRST_SECONDS="30", STATUS_POLL_STEP_SECONDS="5")
    calls, late = follow(spacing, finishes_after=finishes_after, period=5)
    assert late <= 5 + 5
    assert calls <= 1 + math.ceil((finishes_after - 30) / 5)


def test_the_step_trades_calls_against_lag():
    quick = settings(STATUS_POLL_FIRST_SECONDS="30", STATUS_POLL_STEP_SECONDS="5")
    sparing = dataclasses.replace(quick, status_step_seconds=30)
    quick_calls, quick_late = follow(quick, finishes_after=70, period=5)
    sparing_calls, sparing_late = follow(sparing, finishes_after=70, period=5)
    assert quick_calls > sparing_calls
    assert quick_late < sparing_late


def test_a_bad_step_is_refused_by_name():
    with pytest.raises(SettingsError, match="STATUS_POLL_STEP_SECONDS"):
        settings(STATUS_POLL_STEP_SECONDS="0")


@pytest.mark.parametrize(("first", "lease", "expected"), [
    ("30", "300", 30),   # the first check's time from the claim: the POST's answer keeps that row
    ("30", "20", 20),    # never after the re-drive time
    ("5", "300", 300),   # too short a first check: ticks would lease the row before the answer
    ("0", "300", 300),
])
def test_a_claims_row_is_due_at_the_first_check_when_the_answer_can_keep_it(first, lease, expected):
    spacing = settings(STATUS_POLL_FIRST_SECONDS=first, CLAIM_LEASE_SECONDS=lease)
    now = MovableClock()()
    redrive_at = now + timedelta(seconds=spacing.claim_lease_seconds)
    assert check_spacing.claim_row_at(spacing, now, redrive_at) == now + timedelta(seconds=expected)
