"""The import state machine as data: the states, and the one table of allowed transitions.

Every write of a record goes through a named transition of this table (see `shared.ledger.ledger`), and
the store refuses a write whose from → to pair is not in it. The README's "States and
transitions" table is checked against this one by a test.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from shared.platform import telemetry


class ImportState(StrEnum):
    """Stored as its value: ledgers written before this enum existed read the same."""

    RECEIVED = "received"
    RETRY_WAIT = "retry_wait"
    SUBMITTING = "submitting"
    PENDING = "pending"
    UNKNOWN = "unknown"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    SUBMIT_FAILED = "submit_failed"
    DUPLICATE = "duplicate"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"


S = ImportState
# Module-level names, so callers write `states.PENDING` as they read it.
RECEIVED, RETRY_WAIT, SUBMITTING, PENDING = S.RECEIVED, S.RETRY_WAIT, S.SUBMITTING, S.PENDING
UNKNOWN, COMPLETED, FAILED, REJECTED = S.UNKNOWN, S.COMPLETED, S.FAILED, S.REJECTED
SUBMIT_FAILED, DUPLICATE, SUPERSEDED, CANCELLED = S.SUBMIT_FAILED, S.DUPLICATE, S.SUPERSEDED, S.CANCELLED
INITIAL_STATE = S.RECEIVED
# No POST can have been sent yet: a later delivery, or the timer, may take the work over.
NOT_SENT_STATES = frozenset({S.RECEIVED, S.RETRY_WAIT})
# The timer looks after these (they have a row in the watch index).
WATCHED_STATES = frozenset({S.RECEIVED, S.RETRY_WAIT, S.SUBMITTING, S.PENDING})
FINAL_STATES = frozenset({S.COMPLETED, S.FAILED, S.REJECTED, S.SUBMIT_FAILED, S.DUPLICATE, S.SUPERSEDED, S.CANCELLED})
IN_FLIGHT_STATES = frozenset({S.SUBMITTING, S.PENDING})
# An import in one of these blocks a second sending of the same bytes to the same dossier.
CONTENT_HOLDING_STATES = frozenset({S.SUBMITTING, S.PENDING, S.UNKNOWN, S.COMPLETED})
ALL_STATES = frozenset(S)


@dataclass(frozen=True)
class Transition:
    """A named move between states, with the one event it emits."""

    name: str
    sources: frozenset[ImportState]
    target: ImportState
    event: str
    level: int = logging.INFO

    def allows(self, state: str) -> bool:
        return state in self.sources


def _t(name: str, sources: frozenset[ImportState] | set[ImportState], target: ImportState, event: str,
       level: int = logging.INFO) -> Transition:
    return Transition(name, frozenset(sources), target, event, level)


RETAKE = _t("retake", NOT_SENT_STATES, S.RECEIVED, telemetry.RECEIVED)
REOPEN = _t("reopen", ALL_STATES - IN_FLIGHT_STATES, S.RECEIVED, telemetry.RESUBMIT_REQUESTED)
REJECT = _t("reject", NOT_SENT_STATES, S.REJECTED, telemetry.REJECTED, logging.WARNING)
MARK_BLOB_MISSING = _t("mark_blob_missing", NOT_SENT_STATES, S.REJECTED, telemetry.BLOB_MISSING, logging.WARNING)
SUPERSEDE = _t("supersede", NOT_SENT_STATES, S.SUPERSEDED, telemetry.SUPERSEDED)
MARK_DUPLICATE = _t("mark_duplicate", {S.RECEIVED}, S.DUPLICATE, telemetry.DUPLICATE_CONTENT)
RECORD_ATTEMPT_FAILURE = _t(
    "record_attempt_failure", {S.RECEIVED}, S.RECEIVED, telemetry.ATTEMPT_FAILED, logging.WARNING
)
GIVE_UP = _t("give_up", NOT_SENT_STATES, S.SUBMIT_FAILED, telemetry.SUBMIT_FAILED, logging.WARNING)
MARK_SUBMITTING = _t("mark_submitting", {S.RECEIVED}, S.SUBMITTING, telemetry.SUBMITTING)
RECORD_REQUEST_ID = _t("record_request_id", {S.SUBMITTING, S.UNKNOWN}, S.PENDING, telemetry.SUBMITTED)
WAIT_FOR_RETRY = _t("wait_for_retry", {S.SUBMITTING}, S.RETRY_WAIT, telemetry.SUBMIT_RETRY, logging.WARNING)
MARK_UNKNOWN = _t("mark_unknown", {S.SUBMITTING}, S.UNKNOWN, telemetry.OUTCOME_UNKNOWN, logging.WARNING)
FAIL_SUBMIT = _t("fail_submit", {S.SUBMITTING}, S.SUBMIT_FAILED, telemetry.SUBMIT_FAILED, logging.WARNING)
REFUSE_KEYS = _t("refuse_keys", {S.SUBMITTING}, S.SUBMIT_FAILED, telemetry.AUTH_FAILED, logging.ERROR)
# Loop refused to give a deposit URL (LOOP_TRANSFER_MODE=deposit): before `submitting`, no POST was sent.
FAIL_DEPOSIT = _t("fail_deposit", {S.RECEIVED}, S.SUBMIT_FAILED, telemetry.SUBMIT_FAILED, logging.WARNING)
REFUSE_DEPOSIT_KEYS = _t("refuse_deposit_keys", {S.RECEIVED}, S.SUBMIT_FAILED, telemetry.AUTH_FAILED, logging.ERROR)
RESOLVE = _t("resolve", {S.UNKNOWN}, S.PENDING, telemetry.RESOLVED)
RECORD_STATUS = _t("record_status", {S.PENDING}, S.PENDING, telemetry.STATUS_CHANGED)
# A status check that changed nothing but when the next one is due: DEBUG, not an ops event.
NOTE_CHECK = _t("note_check", {S.PENDING}, S.PENDING, telemetry.STATUS_CHECKED, logging.DEBUG)
RECOVER_POLLING = _t("recover_polling", {S.PENDING}, S.PENDING, telemetry.STATUS_RECOVERED)
FLAG_SAS_EXPIRING = _t("flag_sas_expiring", {S.PENDING}, S.PENDING, telemetry.SAS_EXPIRING, logging.WARNING)
FLAG_STALE = _t("flag_stale", {S.PENDING}, S.PENDING, telemetry.STALE, logging.WARNING)
RECORD_POLL_FAILURE = _t(
    "record_poll_failure", {S.PENDING}, S.PENDING, telemetry.STATUS_CHECK_FAILED, logging.WARNING
)
RECORD_POLL_AUTH_FAILURE = _t("record_poll_auth_failure", {S.PENDING}, S.PENDING, telemetry.AUTH_FAILED, logging.ERROR)
COMPLETE = _t("complete", {S.PENDING}, S.COMPLETED, telemetry.COMPLETED)
FAIL = _t("fail", {S.PENDING}, S.FAILED, telemetry.FAILED, logging.WARNING)
# Not from `submitting`: the POST is in flight and its answer (the request id) must land on the record.
CANCEL = _t("cancel", ALL_STATES - FINAL_STATES - {S.SUBMITTING}, S.CANCELLED, telemetry.CANCELLED, logging.WARNING)

TRANSITIONS: tuple[Transition, ...] = (
    RETAKE, REOPEN, REJECT, MARK_BLOB_MISSING, SUPERSEDE, MARK_DUPLICATE, RECORD_ATTEMPT_FAILURE, GIVE_UP,
    MARK_SUBMITTING,
    RECORD_REQUEST_ID, WAIT_FOR_RETRY, MARK_UNKNOWN, FAIL_SUBMIT, REFUSE_KEYS, FAIL_DEPOSIT, REFUSE_DEPOSIT_KEYS,
    RESOLVE, RECORD_STATUS, NOTE_CHECK,
    RECOVER_POLLING, FLAG_SAS_EXPIRING, FLAG_STALE, RECORD_POLL_FAILURE, RECORD_POLL_AUTH_FAILURE, COMPLETE,
    FAIL, CANCEL,
)
ALLOWED_MOVES = frozenset((source, t.target) for t in TRANSITIONS for source in t.sources)


class IllegalTransitionError(RuntimeError):
    """A write would move a record along a pair the transition table does not allow (a bug)."""

    def __init__(self, blob: str, source: str | None, target: str) -> None:
        super().__init__(f"import {blob}: {source or 'nothing'} -> {target} is not an allowed transition")
        self.source, self.target = source, target


def check_move(blob: str, source: str | None, target: str) -> None:
    """Raise IllegalTransitionError unless source -> target is in the table (None: a new record)."""
    allowed = target == INITIAL_STATE if source is None else (source, target) in ALLOWED_MOVES
    if not allowed:
        raise IllegalTransitionError(blob, source, target)
