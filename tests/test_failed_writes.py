"""Table writes that fail, or whose answer is lost, around the POST: the ledger still tells the truth.

Faults are injected once at the storage client (tests/storage_faults.py), outside the SDK's own
retries; real Azurite, the emulator over HTTP, 20 rounds each.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from shared.flows.operator_actions import OperatorError, find_import
from shared.flows.poll import poll_imports
from shared.flows.submit import submit_blob
from shared.ledger import states
from shared.ledger.record import RECORD_PARTITION_PREFIX
from tests.helpers import upload
from tests.storage_faults import FailOnce, entity_write, ledger_with

ROUNDS = 20


def posts(emulator) -> list[dict]:
    return [r for r in emulator.requests() if r["path"] == "/importFEC"]


def unique_bytes(fec_bytes: bytes, tag: str) -> bytes:
    return fec_bytes.replace(b"Facture", f"Facture {tag}".encode())


def delivered(pipeline, blob):
    """The trigger's delivery, and the host's redelivery if it failed (as the Functions host does)."""
    try:
        return submit_blob(pipeline, blob)
    except Exception:
        return submit_blob(pipeline, blob)


def new_loop_id(emulator, before: set[str]) -> str | None:
    ids = [item["id"] for item in emulator.imports() if item["id"] not in before]
    return ids[0] if len(ids) == 1 else None


def test_the_submitting_write_whose_answer_is_lost_still_posts_once_and_keeps_the_hold(
    pipeline, azurite, loop_emulator, fec_bytes
):
    fault = FailOnce(entity_write(RECORD_PARTITION_PREFIX, state="submitting"), answer_lost=True)
    ledger_with(pipeline, azurite.connection_string, fault)
    wrong = []
    for round_number in range(ROUNDS):
        data = unique_bytes(fec_bytes, f"m{round_number}")
        before, posted = {item["id"] for item in loop_emulator.imports()}, len(posts(loop_emulator))
        fault.arm()
        blob = upload(pipeline, f"DEMO001/m{round_number}.txt", data)
        delivered(pipeline, blob)
        copy = delivered(pipeline, upload(pipeline, f"DEMO001/m{round_number} copy.txt", data))
        (stored,) = pipeline.ledger.versions_of(blob.container_name, blob.blob_name)
        seen = (stored.state, stored.request_id == new_loop_id(loop_emulator, before), copy.state,
                len(posts(loop_emulator)) - posted)
        if seen != (states.PENDING, True, states.DUPLICATE, 1):
            wrong.append((round_number, *seen))
    assert fault.fired == ROUNDS
    assert not wrong, f"{len(wrong)}/{ROUNDS} rounds: (state, id stored, copy, POSTs) {wrong[:3]}"


def test_a_failed_write_of_the_request_id_is_retried_and_the_id_logged_first(
    pipeline, azurite, loop_emulator, fec_bytes, caplog
):
    caplog.set_level(logging.INFO, logger="fec_import")
    fault = FailOnce(entity_write(RECORD_PARTITION_PREFIX, state="pending"))
    ledger_with(pipeline, azurite.connection_string, fault)
    wrong = []
    for round_number in range(ROUNDS):
        before = {item["id"] for item in loop_emulator.imports()}
        caplog.clear()
        fault.arm()
        blob = upload(pipeline, f"DEMO001/r{round_number}.txt", unique_bytes(fec_bytes, f"r{round_number}"))
        delivered(pipeline, blob)
        in_loop = new_loop_id(loop_emulator, before)
        logged = [r for r in caplog.records if in_loop and in_loop in r.getMessage()]
        pipeline.clock.advance(pipeline.submit_timeout + timedelta(minutes=1))  # the timer's turn
        poll_imports(pipeline)
        (stored,) = pipeline.ledger.versions_of(blob.container_name, blob.blob_name)
        seen = (stored.state in (states.PENDING, states.COMPLETED), stored.request_id == in_loop, bool(logged))
        if seen != (True, True, True):
            wrong.append((round_number, stored.state, stored.request_id, in_loop, len(logged)))
    assert fault.fired == ROUNDS
    assert not wrong, f"{len(wrong)}/{ROUNDS} rounds lost the request id: {wrong[:3]}"


def test_a_stored_request_id_finds_its_import_even_when_the_answer_to_its_write_was_lost(
    pipeline, azurite, loop_emulator, fec_bytes, caplog
):
    """The id is a field of the record (no index row to lose): a write that landed with its answer
    lost is recognised on retry, and `imports show <id>` finds the import."""
    caplog.set_level(logging.INFO, logger="fec_import")
    fault = FailOnce(entity_write(RECORD_PARTITION_PREFIX, state="pending"), answer_lost=True)
    ledger_with(pipeline, azurite.connection_string, fault)
    wrong = []
    for round_number in range(ROUNDS):
        before = {item["id"] for item in loop_emulator.imports()}
        caplog.clear()
        fault.arm()
        blob = upload(pipeline, f"DEMO001/i{round_number}.txt", unique_bytes(fec_bytes, f"i{round_number}"))
        delivered(pipeline, blob)
        in_loop = new_loop_id(loop_emulator, before)
        (stored,) = pipeline.ledger.versions_of(blob.container_name, blob.blob_name)
        try:
            found = find_import(pipeline, in_loop).keys == stored.keys
        except OperatorError:
            found = False
        submitted = [r for r in caplog.records if getattr(r, "event_name", "") == "import.submitted"]
        if (found, stored.request_id == in_loop, len(submitted)) != (True, True, 1):
            wrong.append((round_number, found, stored.state, stored.request_id == in_loop, len(submitted)))
    assert fault.fired == ROUNDS
    assert not wrong, f"{len(wrong)}/{ROUNDS} rounds: (found by id, state, id stored, submitted events) {wrong[:3]}"
