"""What an operator can do to an import: resubmit it, attach a request id found in Loop, cancel it.

Each action is an ETag-guarded ledger update with its own event, and keeps the record's history.
"""

from __future__ import annotations

import contextlib
import json

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from shared.flows.deposit import DepositError
from shared.flows.dossier import CODE_IBS_PATTERN
from shared.flows.pipeline import Pipeline
from shared.flows.snapshot_validation import download_client, validation_of
from shared.flows.submit import finish, send
from shared.ledger import states
from shared.ledger.record import ImportRecord
from shared.loop.client import REQUEST_ID_PATTERN
from shared.platform.redaction import redacted_cut


class OperatorError(ValueError):
    """The action does not apply to this import; the message says why and what to do."""


def versions_named(pipeline: Pipeline, key: str) -> list[ImportRecord]:
    """The versions of the watched container's blob with this name (with or without the container's
    prefix), oldest first: one query of one partition."""
    versions = pipeline.ledger.versions_of(pipeline.settings.container, key)
    name = key.removeprefix(pipeline.settings.container + "/")
    if not versions and name != key:
        versions = pipeline.ledger.versions_of(pipeline.settings.container, name)
    return versions


def find_import(pipeline: Pipeline, key: str) -> ImportRecord:
    """The latest version of the blob with this name, else the import with this request id (any case).

    A name wins: a blob at the container's root may be named like another import's request id, and
    the file is what its dropper asks about (`imports show --request-id`, `GET /api/imports?requestId=`
    read an id unambiguously)."""
    versions = versions_named(pipeline, key)
    if versions:
        return versions[-1]
    record = pipeline.ledger.by_request_id(key) if REQUEST_ID_PATTERN.fullmatch(key) else None
    if record is None:
        raise OperatorError(f"no import found for {key!r} (give a blob name or a Loop request id)")
    return record


def _check_resubmittable(record: ImportRecord, code_ibs: str | None) -> None:
    if record.state in states.IN_FLIGHT_STATES:
        raise OperatorError(f"{record.blob} is {record.state}: cancel it first if Loop really lost it")
    if code_ibs is not None and not CODE_IBS_PATTERN.fullmatch(code_ibs):
        raise OperatorError(f"{code_ibs!r} is not a plausible dossier code")
    if record.validation and not json.loads(record.validation).get("valid", True):
        raise OperatorError(
            f"{record.blob} has validation errors (imports show lists them): fix the file and drop it again"
        )
    if not (code_ibs or record.code_ibs):
        raise OperatorError(f"{record.blob} has no dossier: give one with --dossier")


def _snapshot_of_version(pipeline: Pipeline, record: ImportRecord) -> str:
    """A new snapshot of the recorded version while the blob is still that version (the same ETag:
    the same bytes), so the new SAS URL never outlives it: infra's lifecycle rule deletes snapshots
    `snapshotRetentionDays` after each was taken. If the blob was overwritten or deleted since, the
    import's own snapshot, if it still exists."""
    blob = pipeline.blob_service.get_blob_client(record.container, record.blob_name)
    try:
        return blob.create_snapshot(etag=record.etag, match_condition=MatchConditions.IfNotModified)["snapshot"]
    except ResourceModifiedError:
        gone = "was overwritten since; the new version has its own import"
    except ResourceNotFoundError:
        gone = "was deleted; there is nothing to send"
    if record.snapshot and _snapshot_exists(pipeline, record):
        return record.snapshot
    raise OperatorError(f"{record.blob} {gone}")


def _snapshot_exists(pipeline: Pipeline, record: ImportRecord) -> bool:
    snapshot = pipeline.blob_service.get_blob_client(record.container, record.blob_name, snapshot=record.snapshot)
    return bool(snapshot.exists())


def _drop_snapshot(pipeline: Pipeline, record: ImportRecord, snapshot: str) -> None:
    """A resubmit that lost its race (another action, or the retention's purge) leaves no copy of
    the file behind: the snapshot it took for it goes."""
    taken = pipeline.blob_service.get_blob_client(record.container, record.blob_name, snapshot=snapshot)
    with contextlib.suppress(ResourceNotFoundError):
        taken.delete_blob()


def resubmit(pipeline: Pipeline, record: ImportRecord, code_ibs: str | None = None) -> ImportRecord:
    """A new SAS (or, with LOOP_TRANSFER_MODE=deposit, a new deposit of the bytes) and a new POST for
    the same version; the history keeps the earlier try.

    What is sent is exactly the snapshot of the recorded version, validated (again, if it never
    was): a file rejected before validation (no dossier, say) is validated before any POST.

    Raises:
        OperatorError: the import is in flight, invalid, without a dossier, overwritten or deleted,
            or changed meanwhile.
        SubmitRetryableError: Loop could not be reached (the import waits in retry_wait).
        DepositError: the deposit failed before any POST; recorded on the import, which the timer
            tries again by the backoff.
    """
    _check_resubmittable(record, code_ibs)
    own_snapshot, snapshot = record.snapshot, _snapshot_of_version(pipeline, record)
    redrive_at = pipeline.clock() + pipeline.claim_lease
    reopened = pipeline.ledger.reopen(record, code_ibs, snapshot, record.request_id, redrive_at)
    if reopened is None:
        if snapshot != own_snapshot:
            _drop_snapshot(pipeline, record, snapshot)
        raise OperatorError(f"{record.blob} changed state meanwhile; look again")
    verdict = validation_of(pipeline, download_client(pipeline, reopened), reopened)
    if not verdict["valid"]:
        finish(pipeline, reopened, states.REJECT, verdict["reason"], rules=verdict["rules"])
        raise OperatorError(f"{record.blob} is not a valid FEC file: {verdict['reason']}")
    pipeline.ledger.contents.take(reopened)
    try:
        return send(pipeline, reopened)
    except DepositError as error:
        _record_deposit_failure(pipeline, reopened, error)
        raise


def _record_deposit_failure(pipeline: Pipeline, record: ImportRecord, error: DepositError) -> None:
    """The reason on the record, and when the timer may try again (as for a delivery's failure)."""
    reason = redacted_cut(f"{type(error).__name__}: {error}", 500)

    def change(current: ImportRecord) -> None:
        current.error = reason
        current.next_poll_at = pipeline.clock() + pipeline.backoff.delay(current.attempts)

    pipeline.ledger.move(record, states.RECORD_ATTEMPT_FAILURE, change, reason)


def resolve(pipeline: Pipeline, record: ImportRecord, request_id: str) -> ImportRecord:
    """Attach the request id an operator found in Loop to an import whose outcome was unknown.

    Raises:
        OperatorError: the id is implausible, or the import is not unknown (or stopped being so).
    """
    if not REQUEST_ID_PATTERN.fullmatch(request_id):
        raise OperatorError(f"{request_id!r} does not look like a Loop request id")
    if record.state not in states.RESOLVE.sources:
        raise OperatorError(f"{record.blob} is {record.state}; only unknown imports can be resolved")
    saved = pipeline.ledger.record_request_id(
        record, request_id, states.RESOLVE, f"resolved by an operator: {request_id}"
    )
    if saved is None:
        raise OperatorError(f"{record.blob} changed state meanwhile; look again")
    return saved


def cancel(pipeline: Pipeline, record: ImportRecord) -> ImportRecord:
    """Stop following an import. Loop may still finish an import it received.

    Refused while the import is `submitting`: its POST is in flight, and cancelling would lose the
    request id Loop answers (and release the bytes while Loop may hold them). The transition table
    refuses it too, so an operator's copy read before the mark cannot cancel it either.

    Raises:
        OperatorError: the import is submitting, already final, or became either meanwhile.
    """
    _check_cancellable(pipeline, record)
    saved = pipeline.ledger.finish(record, states.CANCEL, "cancelled by an operator")
    if saved is None:
        _check_cancellable(pipeline, pipeline.ledger.get(*record.keys) or record)
        raise OperatorError(f"{record.blob} changed state meanwhile; look again")
    pipeline.ledger.contents.release(saved)
    return saved


def _check_cancellable(pipeline: Pipeline, record: ImportRecord) -> None:
    if record.state in states.FINAL_STATES:
        raise OperatorError(f"{record.blob} is already {record.state}")
    if record.state == states.SUBMITTING:
        raise OperatorError(
            f"{record.blob} is submitting: its importFEC call to Loop is in flight, and cancelling now would "
            "lose the request id Loop answers. Nothing was changed. Wait until it is pending (or unknown, "
            f"at most {pipeline.settings.submit_timeout_minutes} minutes), then cancel it."
        )
