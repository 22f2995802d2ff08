"""Polling by due time, fanned out through a Storage queue: real Azurite (tables and queues), the
Loop emulator over HTTP, the local host's queue trigger."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.data.tables import TableClient

from local.host.host import LocalHost
from shared.flows.poll import check_import, check_message, poll_imports, row_of_message, schedule_due_checks
from shared.flows.submit import submit_blob
from shared.ledger import states
from shared.ledger.ledger import Ledger
from shared.ledger.record import ImportRecord
from tests.helpers import (
    MovableClock,
    run_together,
    submit_dying_at_the_post,
    unique_name,
    upload,
    wait_until_final_at_loop,
)


def status_calls(emulator) -> int:
    return len([r for r in emulator.requests() if r["path"] in ("/getImportStatus", "/importStatus")])


def rows_of(messages: list[str]) -> list[str]:
    return [row_of_message(message) for message in messages]


def test_an_import_submitted_now_is_checked_before_one_due_in_an_hour(pipeline, loop_emulator, fec_bytes):
    checked_a_minute_ago = submit_blob(pipeline, upload(pipeline, "DEMO001/old.txt", fec_bytes))
    pipeline.ledger.move(checked_a_minute_ago, states.NOTE_CHECK,
                         lambda r: setattr(r, "next_poll_at", pipeline.clock() + timedelta(hours=1)))
    fresh = submit_blob(pipeline, upload(pipeline, "DEMO001/new.txt", fec_bytes.replace(b"Facture", b"Avoir")))
    sent: list[str] = []
    summary = schedule_due_checks(pipeline, sent.append)
    assert summary.outcomes == {"enqueued": 1}
    assert [pipeline.ledger.get(*keys).blob_name for keys in
            [tuple(row.split("|", 2)[1:]) for row in rows_of(sent)]] == [fresh.blob_name]
    pipeline.clock.advance(timedelta(hours=1, seconds=1))
    later: list[str] = []
    schedule_due_checks(pipeline, later.append)
    assert len(later) == 2  # both due now; the leased row of `fresh` came due again too (its lease ended)


def test_the_due_index_lists_rows_in_due_order(table_service):
    ledger = Ledger.from_service(table_service, unique_name("ledger"), MovableClock())
    ledger.ensure()
    now = ledger.clock()
    for name, minutes in (("late", 30), ("soon", 1), ("middle", 10)):
        ledger.claim(ImportRecord("c", name, f'"0x{name}"', size=1, next_poll_at=now + timedelta(minutes=minutes)))
    order = [ledger.get(*entry.keys).blob_name for entry in ledger.watched_entries()]
    assert order == ["soon", "middle", "late"]
    assert [ledger.get(*e.keys).blob_name for e in ledger.watched_entries(due_by=now + timedelta(minutes=5))] == [
        "soon"
    ]


def test_a_message_for_a_finished_import_does_nothing(pipeline, loop_emulator, fec_bytes):
    record = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    sent: list[str] = []
    schedule_due_checks(pipeline, sent.append)
    wait_until_final_at_loop(loop_emulator)
    assert poll_imports(pipeline).outcomes == {}  # leased: not due until the lease ends
    assert check_import(pipeline, row_of_message(sent[0])) == "completed"
    calls = status_calls(loop_emulator)
    assert check_import(pipeline, row_of_message(sent[0])) == "unwatched"  # the same message again
    assert status_calls(loop_emulator) == calls
    assert pipeline.ledger.get(*record.keys).state == states.COMPLETED
    assert pipeline.ledger.watched_entries() == []


def test_duplicate_messages_for_one_import_give_one_status_write(pipeline, loop_emulator, fec_bytes, caplog):
    import dataclasses  # noqa: PLC0415

    pipeline.settings = dataclasses.replace(pipeline.settings, status_first_check_seconds=30)
    caplog.set_level("DEBUG", logger="fec_import")
    for round_number in range(20):
        record = submit_blob(pipeline, upload(pipeline, f"DEMO001/{round_number}.txt",
                                              fec_bytes.replace(b"Facture", f"Facture {round_number}".encode())))
        pipeline.clock.advance(timedelta(seconds=31))  # its first check is due
        sent: list[str] = []
        schedule_due_checks(pipeline, sent.append)
        ours = [m for m in sent if row_of_message(m).endswith("|".join(record.keys))]
        for other in set(sent) - set(ours):  # rows left by earlier rounds' lost writes: their import is closed
            assert check_import(pipeline, row_of_message(other)) == "unwatched"
        (message,) = ours
        caplog.clear()
        history_before = len(pipeline.ledger.get(*record.keys).history_entries())
        outcomes = run_together(3, lambda _n, message=message: check_import(pipeline, row_of_message(message)))
        assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
        rows = [entry.row for entry in pipeline.ledger.watched_entries()]
        assert pipeline.ledger.watch_index.row_of(pipeline.ledger.get(*record.keys)) in rows  # still watched
        assert {tuple(row.split("|", 2)[1:]) for row in rows} == {record.keys}
        writes = len(pipeline.ledger.get(*record.keys).history_entries()) - history_before
        assert writes == 1, f"round {round_number}: {outcomes}"
        assert len([r for r in caplog.records if getattr(r, "event_name", "").startswith("import.")]) == 1
        pipeline.ledger.finish(pipeline.ledger.get(*record.keys), states.CANCEL, "end of round")


def test_a_crash_between_enqueue_and_check_loses_nothing(pipeline, loop_emulator, fec_bytes):
    record = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    lost: list[str] = []
    schedule_due_checks(pipeline, lost.append)  # the message is lost (the worker died with it)
    again: list[str] = []
    schedule_due_checks(pipeline, again.append)
    assert again == []  # leased: not sent twice while a message is in flight
    wait_until_final_at_loop(loop_emulator)
    pipeline.clock.advance(timedelta(seconds=pipeline.settings.status_check_lease_seconds + 1))
    schedule_due_checks(pipeline, again.append)
    assert len(again) == 1
    assert check_import(pipeline, row_of_message(again[0])) == "completed"
    assert pipeline.ledger.get(*record.keys).state == states.COMPLETED


def test_a_tick_with_nothing_due_reads_a_handful_of_entities_whatever_is_pending(azurite, pipeline_env):
    counter = _CountingPolicy()
    table = TableClient.from_connection_string(azurite.connection_string, unique_name("ledger"),
                                               per_call_policies=[counter])
    ledger = Ledger(table, MovableClock())
    ledger.ensure()
    now = ledger.clock()
    for n in range(300):
        ledger.claim(ImportRecord("c", f"f{n}", f'"0x{n}"', size=1, next_poll_at=now + timedelta(minutes=5 + n)))
    counter.reset()
    assert ledger.watched_entries(due_by=now, limit=5000) == []
    assert (counter.requests, counter.entities) == (1, 0)
    ledger.clock.advance(timedelta(minutes=7, seconds=30))
    counter.reset()
    due = ledger.watched_entries(due_by=ledger.clock(), limit=5000)
    assert len(due) == 3
    assert (counter.requests, counter.entities) == (1, 3)


class _CountingPolicy(SansIOHTTPPolicy):
    """Counts the table requests a client makes, and the entities their answers hold."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.entities = 0

    def on_response(self, request, response) -> None:
        self.requests += 1
        body = response.http_response.text() if response.http_response.status_code == 200 else ""
        if body.startswith("{"):
            self.entities += len(json.loads(body).get("value", []))


def test_a_message_that_always_fails_ends_in_the_poison_queue(pipeline_env, monkeypatch, blob_service, loop_emulator):
    import function_app  # noqa: PLC0415
    from shared.flows.runtime import current_pipeline, reset_pipeline  # noqa: PLC0415

    for name, value in pipeline_env.items():
        monkeypatch.setenv(name, value)
    reset_pipeline()
    pipeline = current_pipeline()
    host = LocalHost(function_app.app, blob_service, pipeline_env, retry_delay=0.1)
    host.queue_options = dataclasses.replace(host.queue_options, visibility_timeout=0)  # retry at once
    try:
        pipeline.status_queue.send_message("this is not a status check")
        pipeline.status_queue.send_message(check_message("not-a-due-row"))
        host.drain_queues()
        (check,) = host.queue_functions
        poisoned = [m.content for m in check.poison.receive_messages(max_messages=10)]
    finally:
        host.stop()
        reset_pipeline()
    assert sorted(poisoned) == sorted([b"this is not a status check", check_message("not-a-due-row").encode()])
    assert list(pipeline.status_queue.peek_messages()) == []


def test_the_local_host_runs_the_queue_trigger_to_a_final_status(pipeline_env, monkeypatch, blob_service,
                                                                  loop_emulator, fec_bytes):
    import function_app  # noqa: PLC0415
    from shared.flows.runtime import current_pipeline, reset_pipeline  # noqa: PLC0415

    for name, value in pipeline_env.items():
        monkeypatch.setenv(name, value)
    reset_pipeline()
    pipeline = current_pipeline()
    host = LocalHost(function_app.app, blob_service, pipeline_env, retry_delay=0.1)
    try:
        upload(pipeline, "DEMO001/a.txt", fec_bytes)
        host.scan_blobs()
        host.wait_idle()
        wait_until_final_at_loop(loop_emulator)
        host.fire_timer()
        assert host.drain_queues() == 1
        (record,) = pipeline.ledger.all_records()
    finally:
        host.stop()
        reset_pipeline()
    assert (record.state, record.loop_status) == (states.COMPLETED, 3)


@pytest.mark.parametrize(("age", "expected"), [(timedelta(0), 30), (timedelta(minutes=10), 60),
                                               (timedelta(hours=5), 120)])
def test_checks_are_spaced_by_age_up_to_a_ceiling(pipeline, age, expected):
    import dataclasses  # noqa: PLC0415

    from shared.flows.poll import next_check_in  # noqa: PLC0415

    pipeline.settings = dataclasses.replace(pipeline.settings, status_first_check_seconds=30,
                                            status_step_seconds=30, status_max_interval_seconds=120)
    now = pipeline.clock()
    record = ImportRecord("c", "n", '"0x1"', submitted_at=now - age)
    assert next_check_in(pipeline, record, now) == timedelta(seconds=expected)


def test_rows_left_by_lost_writes_are_dropped_when_they_come_due(pipeline, loop_emulator, fec_bytes):
    pipeline.settings = dataclasses.replace(pipeline.settings, status_first_check_seconds=30)
    record = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    pipeline.clock.advance(timedelta(seconds=31))
    stored = pipeline.ledger.get(*record.keys)
    own = pipeline.ledger.watch_index.entry_of(stored)  # its only row: the claim's, kept by the POST's answer
    leftover_at = stored.stored_due - timedelta(milliseconds=1)
    pipeline.ledger.watch_index.watch(stored, leftover_at)  # two rows for one import, as a lost write leaves them
    (leftover,) = [entry for entry in pipeline.ledger.watched_entries() if entry.row != own.row]
    assert check_import(pipeline, own.row) == "status_changed"
    assert check_import(pipeline, leftover.row) == "not_due"
    checked = pipeline.ledger.get(*record.keys)
    assert [entry.row for entry in pipeline.ledger.watched_entries()] == [pipeline.ledger.watch_index.row_of(checked)]


def test_a_check_that_finds_the_import_not_due_keeps_its_only_row(pipeline, loop_emulator, fec_bytes):
    """The scheduler's clock ran ahead of the worker's: the lease is the import's only row, so it is
    moved to the import's own time (never dropped)."""
    record = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    sent: list[str] = []
    schedule_due_checks(pipeline, sent.append)
    stored = pipeline.ledger.get(*record.keys)
    pipeline.ledger.store.table.update_entity(  # as if this worker's clock were behind: not due yet
        {"PartitionKey": stored.keys[0], "RowKey": stored.keys[1],
         "next_poll_at": pipeline.clock() + timedelta(minutes=1)}, mode="merge")
    assert check_import(pipeline, row_of_message(sent[0])) == "not_due"
    moved = pipeline.ledger.get(*record.keys)
    assert [entry.row for entry in pipeline.ledger.watched_entries()] == [pipeline.ledger.watch_index.row_of(moved)]


def test_a_submitting_import_is_called_unknown_when_its_check_comes_due(pipeline, loop_emulator, fec_bytes,
                                                                      monkeypatch):
    record = submit_dying_at_the_post(pipeline, monkeypatch, "DEMO001/a.txt", fec_bytes)
    pipeline.clock.advance(record.next_poll_at - pipeline.clock())  # exactly when it is due, not a moment later
    sent: list[str] = []
    schedule_due_checks(pipeline, sent.append)
    assert check_import(pipeline, row_of_message(sent[0])) == "unknown"
    assert pipeline.ledger.get(*record.keys).state == states.UNKNOWN


def test_two_ticks_at_once_lease_disjoint_rows_and_one_failure_is_written_once(pipeline, loop_emulator, fec_bytes,
                                                                             caplog):
    """The timer's singleton is not guaranteed on every plan: two ticks behind a barrier must send one
    message per due import between them, and a Loop failure must be one write, one event."""
    import logging  # noqa: PLC0415

    caplog.set_level(logging.INFO, logger="fec_import")
    imports_per_round, rounds, wrong = 4, 20, []
    for round_number in range(rounds):
        loop_emulator.reset()
        records = [submit_blob(pipeline, upload(pipeline, f"DEMO001/t{round_number}-{n}.txt",
                                                fec_bytes.replace(b"Facture", f"Facture t{round_number}-{n}".encode())))
                   for n in range(imports_per_round)]
        loop_emulator.set_faults({"status": [{"kind": "http", "status": 500, "times": 2 * imports_per_round}]})
        sent: list[list[str]] = [[], []]
        ticks = run_together(2, lambda n, sent=sent: schedule_due_checks(pipeline, sent[n].append))
        assert not [t for t in ticks if isinstance(t, Exception)], ticks
        messages = sent[0] + sent[1]
        caplog.clear()
        checks = run_together(len(messages), lambda i, messages=messages: check_import(pipeline, row_of_message(messages[i])))
        assert not [c for c in checks if isinstance(c, Exception)], checks
        stored = [pipeline.ledger.get(*r.keys) for r in records]
        failed_events = [r for r in caplog.records if getattr(r, "event_name", "") == "import.status_check_failed"]
        seen = (len(messages), len(set(messages)), status_calls(loop_emulator), [s.poll_failures for s in stored],
                len(failed_events))
        expected = (imports_per_round, imports_per_round, imports_per_round, [1] * imports_per_round, imports_per_round)
        if seen != expected:
            wrong.append((round_number, *seen))
        for record in stored:
            pipeline.ledger.finish(record, states.CANCEL, "end of round")
    assert not wrong, f"{len(wrong)}/{rounds} rounds: (messages, distinct, status calls, failures, events) {wrong[:3]}"


def slow_answers(pipeline, monkeypatch, seconds: float) -> None:
    """Loop's answer to the POST arrives `seconds` after the claim (the pipeline's clock moves on)."""
    original = pipeline.loop.import_fec

    def answer_later(*args, **kwargs):
        request_id = original(*args, **kwargs)
        pipeline.clock.advance(timedelta(seconds=seconds))
        return request_id

    monkeypatch.setattr(pipeline.loop, "import_fec", answer_later)


def test_the_posts_answer_keeps_the_claims_row_and_a_check_that_comes_early_moves_it(
    pipeline, loop_emulator, fec_bytes, monkeypatch
):
    """The claim's row is due at the first check's time from the claim; the answer, 2 s later, keeps
    it (the record written alone). The tick that leases it 2 s early asks Loop nothing and moves it
    to the import's own time; the next tick checks it once."""
    pipeline.settings = dataclasses.replace(pipeline.settings, status_first_check_seconds=30)
    slow_answers(pipeline, monkeypatch, 2)
    record = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    stored = pipeline.ledger.get(*record.keys)
    (row,) = [entry.row for entry in pipeline.ledger.watched_entries()]
    assert row != pipeline.ledger.watch_index.row_of(stored)  # the claim's row, not moved
    assert row == pipeline.ledger.watch_index.entry_of(stored).row  # and the record says where it is
    wait_until_final_at_loop(loop_emulator)
    pipeline.clock.advance(timedelta(seconds=29))  # the claim's row is due, the import is not
    sent: list[str] = []
    schedule_due_checks(pipeline, sent.append)
    assert [check_import(pipeline, row_of_message(m)) for m in sent] == ["not_due"]
    assert status_calls(loop_emulator) == 0
    assert [entry.row for entry in pipeline.ledger.watched_entries()] == [pipeline.ledger.watch_index.row_of(stored)]
    pipeline.clock.advance(timedelta(seconds=2))
    later: list[str] = []
    schedule_due_checks(pipeline, later.append)
    assert [check_import(pipeline, row_of_message(m)) for m in later] == ["completed"]
    assert status_calls(loop_emulator) == 1
    assert pipeline.ledger.watched_entries() == []


def test_an_answer_later_than_the_claims_row_moves_the_row_to_the_first_check(
    pipeline, loop_emulator, fec_bytes, monkeypatch
):
    """An answer that comes when the claim's row is (nearly) due must not rely on it: a tick may have
    leased it. The row is moved to the first check's time, as before."""
    pipeline.settings = dataclasses.replace(pipeline.settings, status_first_check_seconds=30)
    slow_answers(pipeline, monkeypatch, 27)
    record = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    stored = pipeline.ledger.get(*record.keys)
    assert stored.due_row_at is None
    assert [entry.row for entry in pipeline.ledger.watched_entries()] == [pipeline.ledger.watch_index.row_of(stored)]


@pytest.mark.parametrize(("first", "lease", "answer_after"), [(600, 300, 0), (30, 300, 8)])
def test_a_claims_row_much_earlier_than_the_first_check_is_moved_not_kept(
    pipeline, loop_emulator, fec_bytes, monkeypatch, first, lease, answer_after
):
    """Kept, the row would bring an early check that only moves it: the re-drive time (a lease shorter
    than the first check), or a slow POST (8 s). The answer moves it to the first check instead."""
    pipeline.settings = dataclasses.replace(pipeline.settings, status_first_check_seconds=first,
                                            claim_lease_seconds=lease)
    slow_answers(pipeline, monkeypatch, answer_after)
    record = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    stored = pipeline.ledger.get(*record.keys)
    assert stored.due_row_at is None
    assert [entry.row for entry in pipeline.ledger.watched_entries()] == [pipeline.ledger.watch_index.row_of(stored)]
