"""Retention (issue #26): the purge of final imports past LEDGER_RETENTION_DAYS, on Azurite with the
Loop emulator: exactly those go, with their rows and blobs; it keeps to its budgets; it races a
resubmit and a status check of the same import without breaking either; a dry run changes nothing."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest

from shared.cli.main import main
from shared.flows import retention
from shared.flows.operator_actions import OperatorError, resubmit
from shared.flows.poll import check_import
from shared.flows.retention import purge
from shared.flows.submit import submit_blob
from shared.flows.verdict_reports import VERSION_KEY, report_blob_names
from shared.ledger import states
from shared.ledger.indexes import DUE_PARTITION, due_row
from shared.ledger.record import ImportRecord, to_entity
from shared.platform.settings import SettingsError, load_settings
from tests.helpers import poll_until_final, run_together, upload, wait_until_final_at_loop
from tests.test_verdict_reports import broken

OLD = 500  # days: past the default retention (400)
KEPT = {"not_final": 5, "recent": 1}  # the five held below, and the one received long ago, finished now
ROUNDS = 20


def unique_bytes(fec_bytes: bytes, tag: str) -> bytes:
    return fec_bytes.replace(b"Facture", f"Facture {tag}".encode())


def imported(pipeline, name: str, data: bytes, days_ago: int = 0, *, final: bool = True) -> ImportRecord:
    """A file dropped `days_ago` days ago (the pipeline's clock moved back meanwhile), followed to a
    final state (unless `final` is False); the record as stored."""
    pipeline.clock.advance(-timedelta(days=days_ago))
    try:
        record = submit_blob(pipeline, upload(pipeline, name, data))
        if final and record.state not in states.FINAL_STATES:
            record = poll_until_final(pipeline, record)
    finally:
        pipeline.clock.advance(timedelta(days=days_ago))
    return pipeline.ledger.get(*record.keys)


def held_in(pipeline, state: states.ImportState, n: int, days_ago: int = OLD) -> ImportRecord:
    """A record left in a state that is not final, written `days_ago` days ago, whose listing row
    says `completed` (an index lagging its record: the purge must judge the record itself)."""
    ledger = pipeline.ledger
    pipeline.clock.advance(-timedelta(days=days_ago))
    try:
        record, _ = ledger.claim(ImportRecord(pipeline.settings.container, f"held/{state}.txt", f"0x{n:08X}",
                                              code_ibs="DEMO001"))
        if state != states.RECEIVED:
            record = ledger.mark_submitting(record, None, pipeline.clock() + timedelta(minutes=15))
        if state == states.PENDING:
            record = ledger.record_request_id(record, str(uuid.uuid4()))
        elif state == states.UNKNOWN:
            record = ledger.mark_unknown(record, "no answer")
        elif state == states.RETRY_WAIT:
            record = ledger.wait_for_retry(record, "Loop down", lambda current: pipeline.clock())
    finally:
        pipeline.clock.advance(timedelta(days=days_ago))
    listed = ledger.listing.operations(record)[0][1]
    ledger.table.upsert_entity({**listed, "state": "completed"})
    assert record.state == state
    return ledger.get(*record.keys)


def references(pipeline, keys: tuple[str, str]) -> list[tuple[str, str]]:
    """Every entity of the ledger table that is the record or points at it (index rows of any partition)."""
    return [(e["PartitionKey"], e["RowKey"]) for e in pipeline.ledger.table.list_entities()
            if (e["PartitionKey"], e["RowKey"]) == keys or (e.get("record_partition"), e.get("record_row")) == keys]


def report_versions(pipeline, blob_name: str) -> list[str | None]:
    """The version (ETag) each report next to the file shows; None where there is no report."""
    versions = []
    for name in report_blob_names(blob_name):
        blob = pipeline.verdict_reports.container.get_blob_client(name)
        versions.append(blob.get_blob_properties().metadata.get(VERSION_KEY) if blob.exists() else None)
    return versions


def snapshots(pipeline) -> set[tuple[str, str]]:
    container = pipeline.blob_service.get_container_client(pipeline.settings.container)
    return {(b.name, b.snapshot) for b in container.list_blobs(include=["snapshots"]) if b.snapshot}


def everything(pipeline) -> tuple[set, set, set, set]:
    """What the ledger table and the containers hold (names and ETags), to compare before and after."""
    table = {(e["PartitionKey"], e["RowKey"], e.metadata["etag"]) for e in pipeline.ledger.table.list_entities()}
    reports = {(b.name, b.etag) for b in pipeline.verdict_reports.container.list_blobs()}
    validation = {(b.name, b.etag) for b in pipeline.reports.container.list_blobs()}
    return table, reports, validation, snapshots(pipeline)


@pytest.fixture
def aged(pipeline, loop_emulator, fec_bytes):
    """Imports of every kind: final ones past the retention, recent ones, and old ones not final."""
    old = {
        "done": imported(pipeline, "DEMO001/old.txt", unique_bytes(fec_bytes, "old"), OLD),
        "invalid": imported(pipeline, "DEMO001/bad.txt", broken(unique_bytes(fec_bytes, "bad")), OLD),
        "no_dossier": imported(pipeline, "nodossier.txt", unique_bytes(fec_bytes, "nodossier"), OLD),
        "first_version": imported(pipeline, "DEMO001/twice.txt", unique_bytes(fec_bytes, "v1"), OLD),
    }
    recent = {
        "done": imported(pipeline, "DEMO001/recent.txt", unique_bytes(fec_bytes, "recent")),
        "second_version": imported(pipeline, "DEMO001/twice.txt", unique_bytes(fec_bytes, "v2")),
        "received_long_ago_finished_now": imported(pipeline, "DEMO001/young.txt", unique_bytes(fec_bytes, "young"),
                                                   OLD, final=False),
    }
    wait_until_final_at_loop(loop_emulator)
    recent["received_long_ago_finished_now"] = poll_until_final(pipeline, recent["received_long_ago_finished_now"])
    held = {state: held_in(pipeline, state, n) for n, state in enumerate(
        [states.RECEIVED, states.RETRY_WAIT, states.SUBMITTING, states.PENDING, states.UNKNOWN])}
    assert all(record.state in states.FINAL_STATES for record in [*old.values(), *recent.values()])
    assert old["invalid"].report_blob
    assert old["done"].snapshot
    assert old["done"].request_id
    return old, recent, held


def test_purge_removes_exactly_the_final_imports_past_the_cutoff_with_their_rows_and_blobs(pipeline, aged):
    old, recent, held = aged
    summary = purge(pipeline)
    assert summary.removed == Counter(str(record.state) for record in old.values())
    assert summary.kept == KEPT
    assert summary.stopped_by is None
    for record in old.values():
        assert pipeline.ledger.get(*record.keys) is None
        assert references(pipeline, record.keys) == [], record.blob
    for record in [*recent.values(), *held.values()]:
        stored = pipeline.ledger.get(*record.keys)
        assert stored is not None, record.blob
        assert stored.table_etag == record.table_etag, record.blob
        assert (DUE_PARTITION, pipeline.ledger.listing.row_of(record)) in references(pipeline, record.keys)
    assert pipeline.ledger.by_request_id(old["done"].request_id) is None
    assert pipeline.ledger.by_request_id(recent["done"].request_id).keys == recent["done"].keys
    for name in ("DEMO001/old.txt", "DEMO001/bad.txt", "nodossier.txt"):
        assert report_versions(pipeline, name) == [None, None], name
    second = recent["second_version"].etag.strip('"')
    assert report_versions(pipeline, "DEMO001/twice.txt") == [second, second]  # the newer version's page stays
    assert all(report_versions(pipeline, "DEMO001/recent.txt"))
    assert not pipeline.reports.container.get_blob_client(old["invalid"].report_blob).exists()
    kept_snapshots = {r.snapshot for r in recent.values() if r.snapshot}
    assert {snapshot for _, snapshot in snapshots(pipeline)} == kept_snapshots


def test_a_dry_run_removes_nothing_and_counts_what_a_purge_removes(pipeline, aged):
    before = everything(pipeline)
    dry = purge(pipeline, dry_run=True)
    assert everything(pipeline) == before
    assert (sum(dry.removed.values()), dry.kept, dry.blobs) == (4, KEPT, 0)
    done = purge(pipeline)
    assert (done.removed, done.kept) == (dry.removed, dry.kept)
    assert everything(pipeline) != before


def test_the_command_says_what_it_removes_and_refuses_less_than_30_days(pipeline, aged, pipeline_env, monkeypatch,
                                                                        capsys):
    for name, value in pipeline_env.items():
        monkeypatch.setenv(name, value)
    before = everything(pipeline)
    assert main(["imports", "purge", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove 4" in out
    assert "rejected" in out
    assert "kept: not_final=5, recent=1" in out
    assert everything(pipeline) == before
    assert main(["imports", "purge", "--older-than", "29"]) == 1
    assert "at least 30 days" in capsys.readouterr().err
    assert everything(pipeline) == before
    assert main(["imports", "purge"]) == 0
    assert "removed 4" in capsys.readouterr().out
    assert main(["imports", "purge"]) == 0
    assert "removed 0" in capsys.readouterr().out


def seed_old_final(pipeline, count: int) -> list[ImportRecord]:
    """`count` completed imports received OLD days ago, written straight into the ledger with their rows."""
    when = pipeline.clock() - timedelta(days=OLD)
    records = []
    for n in range(count):
        record = ImportRecord(pipeline.settings.container, f"DEMO001/seeded{n}.txt", f"0x{n:08X}",
                              state=states.COMPLETED, code_ibs="DEMO001", request_id=str(uuid.uuid4()),
                              received_at=when + timedelta(seconds=n), updated_at=when + timedelta(seconds=n))
        pipeline.ledger.table.create_entity(to_entity(record))
        pipeline.ledger.listing.write(record)
        records.append(record)
    return records


def remaining(pipeline, records: list[ImportRecord]) -> int:
    return sum(1 for record in records if pipeline.ledger.get(*record.keys) is not None)


def test_a_purge_stops_at_its_count_budget_then_at_its_time_budget_and_the_next_run_goes_on(pipeline, monkeypatch):
    records = seed_old_final(pipeline, 25)
    counted = purge(pipeline, max_records=10)
    assert (counted.examined, sum(counted.removed.values()), counted.stopped_by) == (10, 10, "count_budget")
    assert remaining(pipeline, records) == 15
    monkeypatch.setattr(retention, "_CHUNK", 4)
    timed = purge(pipeline, budget_seconds=0)
    assert (timed.examined, sum(timed.removed.values()), timed.stopped_by) == (4, 4, "time_budget")
    assert remaining(pipeline, records) == 11
    last = purge(pipeline)
    assert (sum(last.removed.values()), last.stopped_by) == (11, None)
    assert remaining(pipeline, records) == 0


def test_a_purge_is_one_event_with_its_counts(pipeline, caplog):
    seed_old_final(pipeline, 3)
    with caplog.at_level("INFO", logger="fec_import"):
        purge(pipeline)
    (event,) = [r for r in caplog.records if getattr(r, "event_name", None) == "ledger.purged"]
    assert event.custom_dimensions["removed"] == {"completed": 3}
    assert (event.custom_dimensions["removedTotal"], event.custom_dimensions["stoppedBy"]) == (3, "")


@pytest.mark.parametrize("value", ["29", "0", "-5", "a year", "30.5"])
def test_a_retention_below_30_days_or_not_a_number_is_refused_at_start(pipeline_env, value):
    with pytest.raises(SettingsError, match="LEDGER_RETENTION_DAYS must be a whole number of days, at least 30"):
        load_settings({**pipeline_env, "LEDGER_RETENTION_DAYS": value})


def test_the_retention_is_400_days_unless_set(pipeline_env):
    assert load_settings(pipeline_env).ledger_retention_days == 400
    assert load_settings({**pipeline_env, "LEDGER_RETENTION_DAYS": "30"}).ledger_retention_days == 30


# --- races: the purge and another writer of the same import ---------------------------------


def outcome_of_a_resubmit_race(pipeline, record: ImportRecord, result) -> str:
    """Either the purge removed the import whole and the resubmit was refused, or the resubmit won
    and the import is whole: never a half."""
    stored = pipeline.ledger.get(*record.keys)
    if stored is None:
        assert isinstance(result, OperatorError), result
        assert references(pipeline, record.keys) == []
        assert report_versions(pipeline, record.blob_name) == [None, None]
        assert not {s for name, s in snapshots(pipeline) if name == record.blob_name}
        return "purged"
    assert not isinstance(result, Exception), result
    assert stored.state not in states.FINAL_STATES or stored.attempts > record.attempts
    listed = pipeline.ledger.table.get_entity(DUE_PARTITION, pipeline.ledger.listing.row_of(stored))
    assert listed["state"] == stored.state
    assert pipeline.ledger.by_request_id(record.request_id).keys == record.keys  # the replaced id still found
    assert all(report_versions(pipeline, record.blob_name))  # the purge deleted none of its reports
    return "resubmitted"


def test_a_purge_racing_a_resubmit_of_the_same_import_leaves_it_whole_or_gone(pipeline, loop_emulator, fec_bytes):
    outcomes = []
    for round_number in range(ROUNDS):
        record = imported(pipeline, f"DEMO001/race{round_number}.txt", unique_bytes(fec_bytes, f"r{round_number}"),
                          OLD)
        pause = random.uniform(0, 0.05)

        def act(n: int, record=record, pause=pause):
            if n == 0:
                time.sleep(pause)
                return purge(pipeline)
            return resubmit(pipeline, record)

        _, result = run_together(2, act)
        outcomes.append(outcome_of_a_resubmit_race(pipeline, record, result))
    print("resubmit races:", {outcome: outcomes.count(outcome) for outcome in set(outcomes)})


def test_a_resubmit_landing_between_the_purges_read_and_its_delete_keeps_the_import(
        pipeline, loop_emulator, fec_bytes, monkeypatch):
    record = imported(pipeline, "DEMO001/between.txt", fec_bytes, OLD)
    results: list = []
    real_get = pipeline.ledger.get

    def read_then_resubmit(*keys):
        read = real_get(*keys)
        if not results:
            results.append(None)
            results[0] = resubmit(pipeline, real_get(*keys))  # a copy of its own
        return read

    monkeypatch.setattr(pipeline.ledger, "get", read_then_resubmit)
    summary = purge(pipeline)
    monkeypatch.undo()
    assert (summary.kept, summary.removed) == ({"changed": 1}, {})
    assert outcome_of_a_resubmit_race(pipeline, record, results[0]) == "resubmitted"


def test_a_purge_landing_between_a_resubmits_read_and_its_write_refuses_the_resubmit(
        pipeline, loop_emulator, fec_bytes, monkeypatch):
    record = imported(pipeline, "DEMO001/before.txt", fec_bytes, OLD)
    real_reopen = pipeline.ledger.reopen

    def purge_then_reopen(*args, **kwargs):
        assert sum(purge(pipeline).removed.values()) == 1
        return real_reopen(*args, **kwargs)

    monkeypatch.setattr(pipeline.ledger, "reopen", purge_then_reopen)
    with pytest.raises(OperatorError) as refused:
        resubmit(pipeline, record)
    assert outcome_of_a_resubmit_race(pipeline, record, refused.value) == "purged"


def left_row(pipeline, record: ImportRecord) -> str:
    """A due row a crash left behind for a final import (its status check comes for it)."""
    at = pipeline.clock() - timedelta(seconds=1)
    pipeline.ledger.watch_index.watch(record, at=at)
    return due_row(at, record.keys)


def test_a_purge_racing_a_status_check_of_the_same_import_leaves_nothing_after_the_next_run(
        pipeline, loop_emulator, fec_bytes):
    for round_number in range(ROUNDS):
        record = imported(pipeline, f"DEMO001/check{round_number}.txt", unique_bytes(fec_bytes, f"c{round_number}"),
                          OLD)
        row = left_row(pipeline, record)
        pause = random.uniform(0, 0.02)

        def act(n: int, row=row, pause=pause):
            if n == 0:
                time.sleep(pause)
                return purge(pipeline)
            return check_import(pipeline, row)

        purged, checked = run_together(2, act)
        assert (checked, sum(purged.removed.values())) == ("unwatched", 1), (purged, checked)
        assert pipeline.ledger.get(*record.keys) is None  # a check never writes a final import
        purge(pipeline)  # the next run takes what the check wrote back from its copy, if anything
        assert references(pipeline, record.keys) == [], round_number
        assert report_versions(pipeline, record.blob_name) == [None, None]


def test_rows_and_reports_a_status_check_writes_back_after_a_purge_go_with_the_next_run(
        pipeline, loop_emulator, fec_bytes, monkeypatch):
    record = imported(pipeline, "DEMO001/late.txt", fec_bytes, OLD)
    row = left_row(pipeline, record)
    real_catch_up = pipeline.verdict_reports.catch_up

    def purge_then_catch_up(read):
        assert sum(purge(pipeline).removed.values()) == 1
        assert report_versions(pipeline, read.blob_name) == [None, None]
        real_catch_up(read)  # writes the reports back from the copy it read

    monkeypatch.setattr(pipeline.verdict_reports, "catch_up", purge_then_catch_up)
    assert check_import(pipeline, row) == "unwatched"
    monkeypatch.undo()
    etag = record.etag.strip('"')
    assert report_versions(pipeline, record.blob_name) == [etag, etag]
    assert (DUE_PARTITION, pipeline.ledger.listing.row_of(record)) in references(pipeline, record.keys)
    assert purge(pipeline).orphans == 1
    assert references(pipeline, record.keys) == []
    assert report_versions(pipeline, record.blob_name) == [None, None]


def test_a_failure_on_one_import_is_counted_and_the_run_goes_on(pipeline, monkeypatch):
    records = seed_old_final(pipeline, 5)
    real_remove = pipeline.ledger.remove

    def fails_once(record):
        if record.keys == records[2].keys:
            raise ConnectionError("storage went away")
        return real_remove(record)

    monkeypatch.setattr(pipeline.ledger, "remove", fails_once)
    summary = purge(pipeline)
    assert (sum(summary.removed.values()), summary.kept) == (4, {"error": 1})
    assert remaining(pipeline, records) == 1
    monkeypatch.undo()
    assert sum(purge(pipeline).removed.values()) == 1
    assert remaining(pipeline, records) == 0


def test_a_file_delivered_again_after_its_import_was_purged_is_not_sent_again(pipeline, loop_emulator, fec_bytes):
    """A host that lost its blob receipts offers every blob again: a version older than the retention
    is ignored, never claimed anew (its import may be gone: a new claim would POST it a second time)."""
    blob = upload(pipeline, "DEMO001/kept-file.txt", fec_bytes)
    record = poll_until_final(pipeline, submit_blob(pipeline, blob))
    posts = len([r for r in loop_emulator.requests() if r["path"] == "/importFEC"])
    pipeline.clock.advance(timedelta(days=OLD))
    assert sum(purge(pipeline).removed.values()) == 1
    assert pipeline.ledger.get(*record.keys) is None
    assert submit_blob(pipeline, blob) is None
    assert pipeline.ledger.versions_of(blob.container_name, blob.blob_name) == []
    assert len([r for r in loop_emulator.requests() if r["path"] == "/importFEC"]) == posts
