"""What an operator can do to an import: resubmit it, attach a request id found in Loop, cancel it.

Each action is an ETag-guarded ledger update with its own event, and keeps the record's history.
"""

from __future__ import annotations

import json
import logging

from shared import ledger as states
from shared import telemetry
from shared.dossier import CODE_IBS_PATTERN
from shared.ledger import ImportRecord, utcnow
from shared.loop_client import REQUEST_ID_PATTERN
from shared.pipeline import Pipeline
from shared.submit import send

IN_FLIGHT = frozenset({states.SUBMITTING, states.PENDING})


class OperatorError(ValueError):
    """The action does not apply to this import; the message says why and what to do."""


def find_import(pipeline: Pipeline, key: str) -> ImportRecord:
    """The import with this request id, else the latest version of the blob with this name."""
    record = pipeline.ledger.by_request_id(key) if REQUEST_ID_PATTERN.fullmatch(key) else None
    if record is not None:
        return record
    name = key.removeprefix(pipeline.settings.container + "/")
    versions = pipeline.ledger.versions_of(pipeline.settings.container, name)
    if not versions:
        raise OperatorError(f"no import found for {key!r} (give a blob name or a Loop request id)")
    return versions[-1]


def resubmit(pipeline: Pipeline, record: ImportRecord, code_ibs: str | None = None) -> ImportRecord:
    """A new SAS and a new POST for the same validated bytes; the history keeps the earlier try."""
    if record.state in IN_FLIGHT:
        raise OperatorError(f"{record.blob} is {record.state}: cancel it first if Loop really lost it")
    if code_ibs is not None and not CODE_IBS_PATTERN.fullmatch(code_ibs):
        raise OperatorError(f"{code_ibs!r} is not a plausible dossier code")
    if record.validation and not json.loads(record.validation).get("valid", True):
        raise OperatorError(
            f"{record.blob} has validation errors (imports show lists them): fix the file and drop it again"
        )
    if not (code_ibs or record.code_ibs):
        raise OperatorError(f"{record.blob} has no dossier: give one with --dossier")
    if not record.snapshot:
        blob = pipeline.blob_service.get_blob_client(record.container, record.blob_name)
        if blob.get_blob_properties().etag != record.etag:
            raise OperatorError(f"{record.blob} was overwritten since; the new version has its own import")
        record.snapshot = blob.create_snapshot()["snapshot"]
    previous = record.request_id
    record.code_ibs = code_ibs or record.code_ibs
    record.request_id, record.loop_status, record.finished_at, record.flags = None, None, None, ""
    record.attempts += 1
    telemetry.emit(telemetry.RESUBMIT_REQUESTED, record.dimensions(), previousRequestId=previous)
    pipeline.ledger.store_content(record)
    return send(pipeline, record)


def resolve(pipeline: Pipeline, record: ImportRecord, request_id: str) -> ImportRecord:
    """Attach the request id an operator found in Loop to an import whose outcome was unknown."""
    if not REQUEST_ID_PATTERN.fullmatch(request_id):
        raise OperatorError(f"{request_id!r} does not look like a Loop request id")
    if record.state not in (states.UNKNOWN, states.SUBMITTING):
        raise OperatorError(f"{record.blob} is {record.state}; only unknown imports can be resolved")
    now = utcnow()

    def change(current: ImportRecord) -> bool:
        if current.state not in (states.UNKNOWN, states.SUBMITTING):
            return False
        current.state, current.request_id, current.error = states.PENDING, request_id, None
        current.submitted_at = current.submitted_at or now
        current.next_poll_at, current.poll_failures = now, 0
        return True

    saved = pipeline.ledger.update(record, change, f"resolved by an operator: {request_id}")
    if saved is None:
        raise OperatorError(f"{record.blob} changed state meanwhile; look again")
    telemetry.emit(telemetry.RESOLVED, saved.dimensions())
    return saved


def cancel(pipeline: Pipeline, record: ImportRecord) -> ImportRecord:
    """Stop following an import. Loop may still finish an import it received."""
    if record.state in states.FINAL_STATES:
        raise OperatorError(f"{record.blob} is already {record.state}")

    def change(current: ImportRecord) -> bool:
        if current.state in states.FINAL_STATES:
            return False
        current.state, current.finished_at = states.CANCELLED, utcnow()
        current.error = "cancelled by an operator"
        return True

    saved = pipeline.ledger.update(record, change, "cancelled by an operator")
    if saved is None:
        raise OperatorError(f"{record.blob} reached a final state meanwhile")
    pipeline.ledger.forget_content(saved)
    telemetry.emit(telemetry.CANCELLED, saved.dimensions(), level=logging.WARNING)
    return saved
