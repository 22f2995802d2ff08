"""The POST's answer keeps the claim's due row (shared/ledger/ledger.py, `_due_row_time`) only if no
tick can have leased it: a `pending` write that lands late, after a tick leased the row and its
check moved it to the give-up time, must still leave the import checked at its first check's time,
not a quarter of an hour later. Real Azurite and Loop emulator; the late write is forced by a hook
that runs a tick and its checks just before the write is sent."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.flows.pipeline import Pipeline
from shared.flows.poll import check_import, row_of_message, schedule_due_checks
from shared.flows.submit import submit_blob
from shared.ledger import states
from shared.ledger.indexes import due_key, keys_of_due_row
from shared.platform.settings import load_settings
from tests.helpers import MovableClock, upload

ROUNDS = 20


@pytest.fixture
def first_check_pipeline(pipeline_env, pipeline) -> Pipeline:
    """The test pipeline's Loop client, with the default first check (30 s): the claim's row is put
    at the first check's time and kept by the POST's answer."""
    settings = load_settings({**pipeline_env, "STATUS_POLL_FIRST_SECONDS": "30"})
    built = Pipeline.from_settings(settings, loop=pipeline.loop, clock=MovableClock())
    built.ensure_resources()
    return built


def test_a_pending_write_landing_after_a_tick_leased_the_kept_row_leaves_the_first_check_on_time(
    first_check_pipeline, loop_emulator, fec_bytes, monkeypatch
):
    pipeline = first_check_pipeline
    first_check = timedelta(seconds=pipeline.settings.status_first_check_seconds)
    original_replace = pipeline.ledger.store.replace
    moved_to_give_up: list[str] = []

    def lands_late(record):
        if record.state == states.PENDING and record.stored_state == states.SUBMITTING:
            # Storage is slow: the claim's row comes due meanwhile, a tick leases it, and its check,
            # reading the record still `submitting`, moves it to the give-up time.
            pipeline.clock.advance(first_check + timedelta(seconds=1))
            sent: list[str] = []
            schedule_due_checks(pipeline, sent.append)
            rows = [row_of_message(message) for message in sent]  # earlier rounds' imports come due too
            moved_to_give_up.extend(check_import(pipeline, row) for row in rows if keys_of_due_row(row) == record.keys)
        original_replace(record)

    monkeypatch.setattr(pipeline.ledger.store, "replace", lands_late)
    for round_number in range(ROUNDS):
        moved_to_give_up.clear()
        name = f"DEMO001/late-{round_number}/123456789FEC20241231.txt"
        record = submit_blob(pipeline, upload(pipeline, name, fec_bytes.replace(b"Facture", f"F{round_number}".encode())))
        assert record.state == states.PENDING
        assert moved_to_give_up == ["not_due"]  # the window was really hit
        due_times = sorted(entry.row.split("|")[0] for entry in pipeline.ledger.watched_entries()
                           if entry.keys == record.keys)
        assert due_times[0] <= due_key(record.next_poll_at), (round_number, due_times, record.next_poll_at)
