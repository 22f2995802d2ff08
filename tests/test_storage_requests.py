"""Storage round trips per submitted file and per status check, counted in the SDK clients' own
pipelines (local/request_counting.py) against real Azurite and the Loop emulator, and held under upper
bounds: a change that adds a round trip fails here. The bounds are today's counts; lower them when a
change removes some."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from local.request_counting import RequestCounter, counted_pipeline, counting_scope
from shared.flows.poll import check_import, row_of_message, schedule_due_checks
from shared.flows.submit import submit_blob
from shared.ledger import states
from shared.platform.settings import load_settings
from tests.helpers import MovableClock, upload, wait_until_final_at_loop

FILES = 3
# Upper bounds per submitted file (a new valid file without findings, SAS mode) and per status check
# that finds the import completed (the status written, the outcome tagged, its first reports written).
# Each remaining request, and why it stays (issue #20; before the cuts: 10 table + 4 blob per file,
# 5 table + 7 blob per check):
# - file, table 5: due row before the claim (a crash leaves it watched); the claim (create_entity:
#   one delivery wins); the content claim (create_entity: one POST per content); the `submitting`
#   mark (the ETag-guarded write that allows the POST; it keeps the claim's due row); the request
#   id on the record (a field `imports show <id>` queries: no index row; it keeps the claim's row,
#   due at the first check's time from the claim, so the due row is never moved on the way).
# - file, table 6 since issue #26: the request id's write is followed by one entity-group transaction
#   writing the import's listing row (its state and dossier, for `GET /api/imports` pages) and its
#   `rid` row (`imports show <request id>` without a scan). The claim's listing row goes in the
#   transaction of its due row, a check's in the transaction dropping its leased row: no request more.
# - file, blob 2: the download's first GET (ETag, size and metadata of the version to claim, with
#   its first chunk: no properties request; later chunks of a large file are read If-Match that
#   ETag, validation and sha256 in one pass), the snapshot (under that ETag: Loop reads the validated
#   bytes). A file with findings adds its internal report upload.
# - check, table 3: the record read (the message names a row only), the status written (ETag), the
#   leased row dropped. A report that fails adds its owed row.
# - check, blob 4: properties then tags (tags only on the version still current), the JSON and HTML
#   reports (If-None-Match: * on a first verdict; a report already there adds a read).
SUBMIT_BOUNDS = {"table": 6, "blob": 2, "queue": 0}
CHECK_BOUNDS = {"table": 3, "blob": 4, "queue": 0}


@pytest.fixture
def counted(pipeline_env, pipeline):
    """The test pipeline's Loop client and clock, with clients that count every storage request."""
    counter = RequestCounter(callers=True)
    settings = load_settings({**pipeline_env, "STATUS_POLL_FIRST_SECONDS": "30"})  # the default, not the tests' 0
    built = counted_pipeline(settings, counter, loop=pipeline.loop, clock=MovableClock())
    built.ensure_resources()
    counter.reset()
    return built, counter


def per_service(counts: Counter, scope: str) -> dict[str, int]:
    totals = dict.fromkeys(("table", "blob", "queue"), 0)
    for key, number in counts.items():
        if key.scope == scope:
            totals[key.service] += number
    return totals


def breakdown(counts: Counter, scope: str, per: int) -> str:
    lines = [f"{n / per:4.1f}  {key.service:5}  {key.operation:24}  {key.caller}"
             for key, n in sorted(counts.items(), key=lambda item: (item[0].service, item[0].caller))
             if key.scope == scope]
    return "\n".join(lines)


def test_storage_requests_per_submitted_file_and_per_status_check_stay_under_their_bounds(counted, fec_bytes,
                                                                                        loop_emulator):
    pipeline, counter = counted
    blobs = [upload(pipeline, f"DEMO001/12345678{n}FEC20241231.txt", fec_bytes.replace(b"Facture", f"Facture {n}".encode()))
             for n in range(FILES)]
    counter.reset()  # the uploads are the uploader's, not the app's
    with counting_scope("submit"):
        records = [submit_blob(pipeline, blob) for blob in blobs]
    assert [record.state for record in records] == [states.PENDING] * FILES
    pipeline.clock.advance(timedelta(seconds=pipeline.settings.status_first_check_seconds + 1))
    wait_until_final_at_loop(loop_emulator)
    sent: list[str] = []
    with counting_scope("tick"):
        schedule_due_checks(pipeline, sent.append)
    with counting_scope("check"):
        outcomes = [check_import(pipeline, row_of_message(message)) for message in sent]
    counts = counter.snapshot()
    print(f"\nper submitted file:\n{breakdown(counts, 'submit', FILES)}")
    print(f"per status check:\n{breakdown(counts, 'check', len(sent))}")
    print(f"per tick ({len(sent)} enqueued):\n{breakdown(counts, 'tick', 1)}")
    assert len(sent) == FILES
    assert outcomes == [states.COMPLETED] * FILES
    submitted, checked = per_service(counts, "submit"), per_service(counts, "check")
    for service, bound in SUBMIT_BOUNDS.items():
        assert submitted[service] <= bound * FILES, (service, submitted, breakdown(counts, "submit", FILES))
    for service, bound in CHECK_BOUNDS.items():
        assert checked[service] <= bound * len(sent), (service, checked, outcomes, breakdown(counts, "check", 1))
