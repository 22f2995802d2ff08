"""Which report stays beside a file when two versions of it, or two states of one version, are
reported by different instances: ordered by what storage and the ledger give (Last-Modified, the
snapshot's time, the record's revision), never by a process's clock. Two pipelines on the same
Azurite stand for two instances; nothing mocked but the clocks' offsets and one pause."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import shared.flows.submit as submit_module
from shared.flows.operator_actions import resolve
from shared.flows.pipeline import Pipeline
from shared.flows.submit import submit_blob
from shared.flows.verdict_reports import VERSION_KEY, report_blob_names
from shared.ledger import states
from shared.ledger.record import ImportRecord
from shared.loop.errors import LoopOutcomeUnknownError
from tests.helpers import MovableClock, upload

ROUNDS = 20
MAX_ATTEMPTS = 80  # rounds whose two uploads straddle a second do not test the tie: more are tried


def instance(pipeline: Pipeline, clock_offset: timedelta) -> Pipeline:
    """Another instance of the app on the same storage and Loop, its clock `clock_offset` off."""
    clock = MovableClock()
    clock.advance(clock_offset)
    return Pipeline.from_settings(pipeline.settings, loop=pipeline.loop, clock=clock)


def invalid(fec_bytes: bytes) -> bytes:
    """The valid test file with an impossible date: rejected at once, with a report."""
    return fec_bytes.replace(b"|20240202|401000", b"|20240231|401000", 1)


def stored_report(pipeline: Pipeline, name: str) -> tuple[str, dict]:
    """The version (ETag) the stored report blobs describe (both agree) and the JSON report."""
    container = pipeline.verdict_reports.container
    json_name, html_name = report_blob_names(name)
    versions = {container.get_blob_client(n).get_blob_properties().metadata[VERSION_KEY] for n in (json_name, html_name)}
    assert len(versions) == 1, versions
    return versions.pop(), json.loads(container.get_blob_client(json_name).download_blob().readall())


def same_second(older: ImportRecord, newer: ImportRecord) -> bool:
    return older.modified_at == newer.modified_at


def tied_rounds(play: Callable[[int], tuple[ImportRecord, ImportRecord] | None]) -> int:
    """Play rounds until ROUNDS of them had two versions with one Last-Modified; return how many did."""
    tied = 0
    for attempt in range(MAX_ATTEMPTS):
        versions = play(attempt)
        if versions is not None and same_second(*versions):
            tied += 1
            if tied == ROUNDS:
                break
    return tied


def test_two_versions_in_one_second_on_instances_with_clocks_half_a_second_apart_leave_the_newer_report(
    pipeline, loop_emulator, fec_bytes
):
    """The 0-byte create handled by an instance whose clock is 0.5 s ahead, the content a moment
    later by one on time: the content's report must replace "empty file", every round."""
    ahead = instance(pipeline, timedelta(seconds=0.5))

    def play(attempt: int) -> tuple[ImportRecord, ImportRecord]:
        name = f"DEMO001/skew-{attempt}/123456789FEC20231231.txt"
        older = submit_blob(ahead, upload(ahead, name, b""))
        newer = submit_blob(pipeline, upload(pipeline, name, invalid(fec_bytes)))
        assert (older.state, newer.state) == (states.REJECTED, states.REJECTED)
        version, report = stored_report(pipeline, name)
        assert version == newer.etag.strip('"'), (attempt, older.error, report["error"])
        assert "empty file" not in report["error"]
        return older, newer

    assert tied_rounds(play) == ROUNDS


def test_a_delivery_paused_between_its_first_read_and_its_claim_never_reports_over_the_newer_version(
    pipeline, loop_emulator, fec_bytes, monkeypatch
):
    """One instance reads the 0-byte create, then pauses (a hook after its first GET) while the
    content is uploaded and fully handled by another; it then claims the older version last."""
    paused = instance(pipeline, timedelta(0))
    original_open = submit_module.open_version
    meanwhile: dict[str, ImportRecord] = {}

    def play(attempt: int) -> tuple[ImportRecord, ImportRecord]:
        name = f"DEMO001/paused-{attempt}/123456789FEC20231231.txt"

        def read_then_pause(instance_pipeline, blob):
            opened = original_open(instance_pipeline, blob)
            if instance_pipeline is paused:  # the other instance uploads and handles the content now
                meanwhile["newer"] = submit_blob(pipeline, upload(pipeline, name, invalid(fec_bytes)))
            return opened

        monkeypatch.setattr(submit_module, "open_version", read_then_pause)
        late = submit_blob(paused, upload(paused, name, b""))
        monkeypatch.setattr(submit_module, "open_version", original_open)
        newer = meanwhile.pop("newer")
        (older,) = [r for r in pipeline.ledger.versions_of(pipeline.settings.container, name) if r.etag != newer.etag]
        assert newer.state == states.REJECTED
        assert late.state in (states.SUPERSEDED, states.REJECTED)
        version, report = stored_report(pipeline, name)
        assert version == newer.etag.strip('"'), (attempt, late.state, late.error, report["error"])
        assert "empty file" not in report["error"]
        return older, newer

    assert tied_rounds(play) == ROUNDS


def test_two_writers_of_one_version_with_skewed_clocks_leave_its_latest_state(pipeline, loop_emulator, fec_bytes,
                                                                              monkeypatch):
    """An instance 0.5 s ahead calls an import unknown (its report written), an operator on time
    resolves it a moment later: the report must show the later state, pending, every round."""
    ahead = instance(pipeline, timedelta(seconds=0.5))

    def no_answer(*_args, **_kwargs):
        raise LoopOutcomeUnknownError("the connection was reset after the request was sent")

    monkeypatch.setattr(pipeline.loop, "import_fec", no_answer)
    for round_number in range(ROUNDS):
        name = f"DEMO001/states-{round_number}/123456789FEC20221231.txt"
        unknown = submit_blob(ahead, upload(ahead, name, fec_bytes.replace(b"Facture", f"F{round_number}".encode())))
        assert unknown.state == states.UNKNOWN
        assert stored_report(pipeline, name)[1]["state"] == "unknown"
        resolved = resolve(pipeline, pipeline.ledger.get(*unknown.keys), f"11111111-2222-3333-4444-{round_number:012d}")
        assert resolved.state == states.PENDING
        assert stored_report(pipeline, name)[1]["state"] == "pending", round_number
