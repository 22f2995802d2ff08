"""The submit flow: one blob version in, at most one importFEC call out.

Order of steps (architecture.md, "Submit"): ignore what is not an import; claim the version in the
ledger; resolve the dossier; snapshot the exact version; validate it while streaming; check for the
same bytes sent recently; sign a read-only SAS URL on the snapshot; mark `submitting` (the single
compare-and-swap that allows a POST); POST; store the request id as `pending`.

The SAS URL points at a snapshot taken with an ETag condition, so Loop downloads exactly the bytes
that were validated, even if the uploader overwrites the blob while Loop is still downloading.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import PurePosixPath

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobProperties

from shared import ledger as states
from shared import telemetry
from shared.dossier import DossierError, resolve_dossier
from shared.fec_validation import ValidationReport, validate_stream
from shared.ledger import ImportRecord, LedgerConflictError, utcnow
from shared.loop_client import (
    LoopAuthError,
    LoopOutcomeUnknownError,
    LoopRejectedError,
    LoopUnavailableError,
)
from shared.pipeline import Pipeline

log = logging.getLogger(__name__)

FORCE_METADATA_KEY = "force"
RETRY_BACKOFF = timedelta(minutes=1)
# Imports whose bytes block a second sending of the same bytes to the same dossier.
ACTIVE_STATES = frozenset({states.SUBMITTING, states.PENDING, states.UNKNOWN, states.COMPLETED})


class SubmitRetryableError(RuntimeError):
    """Loop could not be reached; the invocation fails so that the host delivers the blob again."""


def is_ignored(blob_name: str, metadata: dict[str, str] | None = None) -> bool:
    """Folders (ADLS directory markers, names ending in /) are not imports."""
    if blob_name.endswith("/"):
        return True
    return (metadata or {}).get("hdi_isfolder", "").lower() == "true"


def submit_blob(pipeline: Pipeline, blob: BlobClient) -> ImportRecord | None:
    """Handle one delivery of a blob; return its record, or None when there was nothing to do."""
    container, name = blob.container_name, blob.blob_name
    if is_ignored(name):
        telemetry.emit(telemetry.IGNORED, {"blob": f"{container}/{name}", "reason": "folder"})
        return None
    try:
        props = blob.get_blob_properties()
    except ResourceNotFoundError:
        telemetry.emit(telemetry.BLOB_MISSING, {"blob": f"{container}/{name}", "reason": "deleted"})
        return None
    if is_ignored(name, props.metadata):
        telemetry.emit(telemetry.IGNORED, {"blob": f"{container}/{name}", "reason": "folder"})
        return None
    record, created = pipeline.ledger.claim(ImportRecord(container, name, props.etag, size=props.size))
    if created:
        telemetry.emit(telemetry.RECEIVED, record.dimensions(), size=props.size)
    else:
        record = take_over(pipeline, record)
        if record is None:
            return None
    return process(pipeline, blob, record, props)


def take_over(pipeline: Pipeline, record: ImportRecord, now: datetime | None = None) -> ImportRecord | None:
    """Decide what a further delivery of an already claimed version may do.

    It may carry on only when no POST can have happened (received or retry_wait) and the previous
    holder is gone: its lease ran out, or it gave up waiting for Loop. The lease write is
    ETag-guarded, so of several concurrent deliveries only one carries on.
    """
    now = now or utcnow()
    idle = now - (record.updated_at or now)
    if record.state == states.SUBMITTING and idle > pipeline.submit_timeout:
        mark_outcome_unknown(pipeline, record, "the process stopped after marking submitting")
        return None
    lease_over = record.state == states.RETRY_WAIT or idle > pipeline.claim_lease
    if record.state not in states.NOT_SENT_STATES or not lease_over:
        telemetry.emit(telemetry.DUPLICATE_DELIVERY, record.dimensions())
        return None
    record.attempts += 1
    record.state = states.RECEIVED
    try:
        pipeline.ledger.save(record, f"delivery attempt {record.attempts}")
    except LedgerConflictError:
        telemetry.emit(telemetry.DUPLICATE_DELIVERY, record.dimensions())
        return None
    telemetry.emit(telemetry.RECEIVED, record.dimensions(), attempt=record.attempts)
    return record


def mark_outcome_unknown(pipeline: Pipeline, record: ImportRecord, reason: str) -> ImportRecord | None:
    def change(current: ImportRecord) -> bool:
        if current.state != states.SUBMITTING:
            return False
        current.state, current.error = states.UNKNOWN, reason
        return True

    saved = pipeline.ledger.update(record, change, reason)
    if saved is not None:
        telemetry.emit(telemetry.OUTCOME_UNKNOWN, saved.dimensions(), level=logging.WARNING)
    return saved


def process(pipeline: Pipeline, blob: BlobClient, record: ImportRecord, props: BlobProperties) -> ImportRecord:
    """From a claimed record to pending, or to the recorded reason why not."""
    if not props.size:
        return finish(pipeline, record, states.REJECTED, "empty file (0 bytes)", telemetry.REJECTED)
    try:
        dossier = resolve_dossier(record.blob_name, props.metadata or {}, pipeline.dossiers.lookup)
    except DossierError as error:
        return finish(pipeline, record, states.REJECTED, str(error), telemetry.REJECTED)
    record.code_ibs = dossier.code_ibs
    snapshot = _snapshot(pipeline, blob, record)
    if snapshot is None:
        return record
    report = _validate(pipeline, snapshot, record)
    if not report.valid:
        return finish(
            pipeline, record, states.REJECTED, _rejection_reason(report), telemetry.REJECTED,
            rules=dict(report.counts),
        )
    telemetry.emit(telemetry.VALIDATED, record.dimensions(), warnings=len(report.warnings))
    force = (props.metadata or {}).get(FORCE_METADATA_KEY, "").lower() == "true"
    earlier = None if force else _claim_content(pipeline, record)
    if earlier is not None:
        reason = (
            f"same content as {earlier.blob} (request id {earlier.request_id or 'none'}); "
            "set metadata force=true to send it again"
        )
        return finish(pipeline, record, states.DUPLICATE, reason, telemetry.DUPLICATE_CONTENT)
    if force:
        pipeline.ledger.store_content(record)
    return send(pipeline, record)


def _snapshot(pipeline: Pipeline, blob: BlobClient, record: ImportRecord) -> BlobClient | None:
    """A snapshot of exactly the claimed version; None (and a final record) if it is gone."""
    if not record.snapshot:
        try:
            taken = blob.create_snapshot(etag=record.etag, match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError:
            finish(pipeline, record, states.SUPERSEDED, "overwritten before it was read", telemetry.SUPERSEDED)
            return None
        except ResourceNotFoundError:
            finish(pipeline, record, states.REJECTED, "deleted before it was read", telemetry.BLOB_MISSING)
            return None
        record.snapshot = taken["snapshot"]
    return pipeline.blob_service.get_blob_client(record.container, record.blob_name, snapshot=record.snapshot)


def _hashing(chunks: Iterable[bytes], digest: hashlib._Hash) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


def _validate(pipeline: Pipeline, snapshot: BlobClient, record: ImportRecord) -> ValidationReport:
    """Stream the snapshot through the validator and the hash in one pass; store the report."""
    digest = hashlib.sha256()
    chunks = snapshot.download_blob(max_concurrency=1).chunks()
    report = validate_stream(_hashing(chunks, digest), file_name=PurePosixPath(record.blob_name).name)
    record.content_sha256 = digest.hexdigest()
    partition, row = record.keys
    full = report.to_dict()
    record.report_blob = pipeline.reports.save(f"{partition}/{row}.json", full)
    record.validation = json.dumps(
        {"valid": full["valid"], "counts": full["counts"], "summary": full["summary"]}, default=str
    )
    return report


def _rejection_reason(report: ValidationReport) -> str:
    """One line for the ledger and the event: error counts per rule, then the first error."""
    error_rules = {finding.rule for finding in report.errors}
    rules = ", ".join(f"{rule} x{count}" for rule, count in sorted(report.counts.items()) if rule in error_rules)
    first = report.errors[0]
    where = f"line {first.line}: " if first.line else ""
    return f"invalid FEC file ({rules}); first: {where}{first.message}"


def _claim_content(pipeline: Pipeline, record: ImportRecord) -> ImportRecord | None:
    """Return an active earlier import of the same bytes for the same dossier within the window."""
    earlier = pipeline.ledger.earlier_import_of_content(record)
    window = timedelta(hours=pipeline.settings.duplicate_window_hours)
    if earlier is not None and earlier.keys != record.keys and earlier.state in ACTIVE_STATES:
        sent = earlier.submitted_at or earlier.received_at or utcnow()
        if utcnow() - sent <= window:
            return earlier
    pipeline.ledger.store_content(record)
    return None


def send(pipeline: Pipeline, record: ImportRecord) -> ImportRecord:
    """Sign, mark submitting (the one guarded step that permits a POST), POST, store the id."""
    signed = pipeline.signer.sign(record.container, record.blob_name, snapshot=record.snapshot)
    record.state, record.error = states.SUBMITTING, None
    record.sas_expires_at = signed.expires_at
    try:
        pipeline.ledger.save(record, "posting importFEC")
    except LedgerConflictError:
        telemetry.emit(telemetry.DUPLICATE_DELIVERY, record.dimensions())
        return record
    telemetry.emit(telemetry.SUBMITTING, record.dimensions())
    try:
        request_id = pipeline.loop.import_fec(record.code_ibs or "", signed.url)
    except LoopUnavailableError as error:
        _wait_for_retry(pipeline, record, error.message)
        raise SubmitRetryableError(f"{record.blob}: {error.message}") from None
    except LoopOutcomeUnknownError as error:
        mark_outcome_unknown(pipeline, record, error.message)
        return record
    except LoopAuthError as error:
        pipeline.ledger.forget_content(record)
        return finish(pipeline, record, states.SUBMIT_FAILED, error.message, telemetry.AUTH_FAILED)
    except LoopRejectedError as error:
        pipeline.ledger.forget_content(record)
        return finish(pipeline, record, states.SUBMIT_FAILED, error.message, telemetry.SUBMIT_FAILED)
    return _store_request_id(pipeline, record, request_id)


def _store_request_id(pipeline: Pipeline, record: ImportRecord, request_id: str) -> ImportRecord:
    """Write the request id even if the timer marked the record unknown meanwhile: we know now."""
    now = utcnow()

    def change(current: ImportRecord) -> bool:
        if current.state not in (states.SUBMITTING, states.UNKNOWN):
            return False
        current.state, current.request_id, current.error = states.PENDING, request_id, None
        current.submitted_at, current.next_poll_at, current.poll_failures = now, now, 0
        return True

    saved = pipeline.ledger.update(record, change, f"request id {request_id}")
    if saved is None:
        log.error("request id %s for %s could not be stored: record changed state", request_id, record.blob)
        return record
    telemetry.emit(telemetry.SUBMITTED, saved.dimensions())
    return saved


def _wait_for_retry(pipeline: Pipeline, record: ImportRecord, reason: str) -> None:
    def change(current: ImportRecord) -> bool:
        if current.state != states.SUBMITTING:
            return False
        current.state, current.error = states.RETRY_WAIT, reason
        current.next_poll_at = utcnow() + RETRY_BACKOFF * min(2 ** max(current.attempts - 1, 0), 60)
        return True

    pipeline.ledger.forget_content(record)
    saved = pipeline.ledger.update(record, change, reason)
    telemetry.emit(telemetry.SUBMIT_RETRY, (saved or record).dimensions(), level=logging.WARNING)


def finish(
    pipeline: Pipeline, record: ImportRecord, state: str, reason: str | None, event: str, **extra: object
) -> ImportRecord:
    """Close a record with its outcome, emit the event, and write the outcome on the blob."""
    record.state, record.error, record.finished_at = state, reason, utcnow()

    def change(current: ImportRecord) -> bool:
        if current is not record and current.state in states.FINAL_STATES:
            return False
        current.state, current.error, current.finished_at = state, reason, record.finished_at
        current.code_ibs = current.code_ibs or record.code_ibs
        return True

    saved = pipeline.ledger.update(record, change, reason) or record
    level = logging.WARNING if state in (states.REJECTED, states.SUBMIT_FAILED, states.FAILED) else logging.INFO
    if event == telemetry.AUTH_FAILED:
        level = logging.ERROR
    telemetry.emit(event, saved.dimensions(), level=level, **extra)
    write_outcome_tags(pipeline, saved)
    return saved


def write_outcome_tags(pipeline: Pipeline, record: ImportRecord) -> None:
    """Blob index tags with the outcome. Tags, not metadata: they do not change the blob's ETag,
    so writing them cannot look like a new version to the trigger."""
    blob = pipeline.blob_service.get_blob_client(record.container, record.blob_name)
    tags = {"fecimport": record.state}
    if record.request_id:
        tags["looprequestid"] = record.request_id
    if record.loop_status:
        tags["loopstatus"] = str(record.loop_status)
    try:
        if blob.get_blob_properties().etag != record.etag:
            return
        blob.set_blob_tags(tags)
    except (ResourceNotFoundError, HttpResponseError) as error:
        log.warning("could not tag %s with its outcome: %s", record.blob, type(error).__name__)


def redrive(pipeline: Pipeline, record: ImportRecord, now: datetime | None = None) -> ImportRecord | None:
    """Carry on an import whose delivery stopped before any POST (the timer calls this)."""
    blob = pipeline.blob_service.get_blob_client(record.container, record.blob_name)
    source = blob
    if record.snapshot:
        source = pipeline.blob_service.get_blob_client(record.container, record.blob_name, snapshot=record.snapshot)
    try:
        props = source.get_blob_properties()
    except ResourceNotFoundError:
        return finish(pipeline, record, states.REJECTED, "deleted before it was read", telemetry.BLOB_MISSING)
    if not record.snapshot and props.etag != record.etag:
        return finish(pipeline, record, states.SUPERSEDED, "overwritten before it was read", telemetry.SUPERSEDED)
    taken = take_over(pipeline, record, now)
    if taken is None:
        return None
    return process(pipeline, blob, taken, props)
