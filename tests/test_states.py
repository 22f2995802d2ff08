"""The transition table: what it allows, what the ledger refuses, and that docs/states.md agrees."""

from __future__ import annotations

import re

import pytest

from shared.ledger import states
from shared.ledger.ledger import Ledger
from shared.ledger.record import ImportRecord
from shared.ledger.states import ALLOWED_MOVES, TRANSITIONS, IllegalTransitionError, ImportState
from tests.helpers import PROJECT_ROOT, MovableClock, unique_name

FORBIDDEN = sorted(
    (source, target) for source in ImportState for target in ImportState if (source, target) not in ALLOWED_MOVES
)


def test_stored_values_are_the_ones_existing_ledgers_hold():
    assert {str(state) for state in ImportState} == {
        "received", "retry_wait", "submitting", "pending", "unknown", "completed", "failed", "rejected",
        "submit_failed", "duplicate", "superseded", "cancelled",
    }


def test_final_states_have_no_way_out_but_an_operator_resubmit():
    for transition in TRANSITIONS:
        if transition.sources & states.FINAL_STATES:
            assert transition is states.REOPEN, transition.name
    assert (states.COMPLETED, states.PENDING) in FORBIDDEN


def test_only_mark_submitting_leads_to_submitting():
    """The one compare-and-swap that permits a POST is the only way into `submitting`."""
    assert [t.name for t in TRANSITIONS if t.target == states.SUBMITTING] == ["mark_submitting"]
    assert {source for source, target in ALLOWED_MOVES if target == states.SUBMITTING} == {states.RECEIVED}


def test_every_transition_has_its_own_name_and_an_import_event():
    names = [t.name for t in TRANSITIONS]
    assert len(names) == len(set(names))
    assert all(t.event.startswith("import.") for t in TRANSITIONS)


@pytest.fixture(scope="module")
def seeded(azurite):
    """One stored record in every state, reached only through allowed transitions."""
    from azure.data.tables import TableServiceClient  # noqa: PLC0415

    service = TableServiceClient.from_connection_string(azurite.connection_string)
    ledger = Ledger.from_service(service, unique_name("ledger"), MovableClock())
    ledger.ensure()
    return ledger, {state: _reach(ledger, state) for state in ImportState}


PATHS = {
    states.RECEIVED: [],
    states.SUBMITTING: [states.MARK_SUBMITTING],
    states.RETRY_WAIT: [states.MARK_SUBMITTING, states.WAIT_FOR_RETRY],
    states.UNKNOWN: [states.MARK_SUBMITTING, states.MARK_UNKNOWN],
    states.PENDING: [states.MARK_SUBMITTING, states.RECORD_REQUEST_ID],
    states.COMPLETED: [states.MARK_SUBMITTING, states.RECORD_REQUEST_ID, states.COMPLETE],
    states.FAILED: [states.MARK_SUBMITTING, states.RECORD_REQUEST_ID, states.FAIL],
    states.REJECTED: [states.REJECT],
    states.SUBMIT_FAILED: [states.MARK_SUBMITTING, states.FAIL_SUBMIT],
    states.DUPLICATE: [states.MARK_DUPLICATE],
    states.SUPERSEDED: [states.SUPERSEDE],
    states.CANCELLED: [states.CANCEL],
}


def _reach(ledger: Ledger, state: ImportState) -> ImportRecord:
    record, _ = ledger.claim(ImportRecord("c", f"reach/{state}.txt", f'"0x{len(state)}"', size=1))
    for transition in PATHS[state]:
        record = ledger.move(record, transition)
    assert record.state == state
    return record


@pytest.mark.parametrize(("source", "target"), FORBIDDEN, ids=[f"{s}->{t}" for s, t in FORBIDDEN])
def test_every_forbidden_move_is_refused_by_the_store_and_names_both_states(seeded, source, target):
    ledger, records = seeded
    record = ledger.get(*records[source].keys)
    record.state = target
    with pytest.raises(IllegalTransitionError) as refused:
        ledger.store.replace(record)
    assert f"{source} -> {target} is not an allowed transition" in str(refused.value)
    assert ledger.get(*record.keys).state == source


def test_a_transition_from_a_state_it_does_not_start_from_writes_nothing(seeded):
    ledger, records = seeded
    completed = ledger.get(*records[states.COMPLETED].keys)
    assert ledger.move(completed, states.RECORD_REQUEST_ID) is None
    assert ledger.mark_submitting(completed, None) is None
    assert ledger.get(*completed.keys).state == states.COMPLETED


def _readme_transitions() -> set[tuple[str, frozenset[str], str, str]]:
    section = (PROJECT_ROOT / "docs" / "states.md").read_text()  # moved from the README (issue 25)
    rows = set()
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`") and cells[0] != "`transition`":
            name, sources, target, event = (re.sub(r"[`]", "", cell) for cell in cells)
            rows.add((name, frozenset(s.strip() for s in sources.split(",")), target, event))
    return rows


def test_docs_states_lists_exactly_the_transition_table():
    table = {(t.name, frozenset(str(s) for s in t.sources), str(t.target), t.event) for t in TRANSITIONS}
    assert _readme_transitions() == table
