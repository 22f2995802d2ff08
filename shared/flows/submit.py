"""The submit flow: one blob version in, at most one importFEC call out.

Order of steps (README, "How it works"): ignore what is not an import; open the download (its first
GET gives the version's ETag, size and metadata); claim the version in the ledger; resolve the
dossier; snapshot the exact version; validate it while streaming the rest (a file without a dossier
too, so its report lists every problem at once, then it is refused); check for the
same bytes sent recently; sign a read-only SAS URL on the snapshot; mark `submitting` (the single
compare-and-swap that allows a POST); POST; store the request id as `pending`.

The SAS URL points at a snapshot taken with an ETag condition, so Loop downloads exactly the bytes
that were validated, even if the uploader overwrites the blob while Loop is still downloading.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobProperties, StorageStreamDownloader

from shared.flows import check_spacing
from shared.flows.deposit import DepositRefusedError, prepare_transfer
from shared.flows.dossier import DossierError, resolve_dossier
from shared.flows.outcome_tags import write_outcome_tags
from shared.flows.pipeline import Pipeline
from shared.flows.snapshot_validation import download_client, open_version, validation_of
from shared.ledger import states
from shared.ledger.ledger import carry_findings
from shared.ledger.record import DUPLICATE_REASON, ImportRecord
from shared.ledger.states import ImportState, Transition
from shared.loop.client import LoopAuthError, LoopOutcomeUnknownError, LoopRejectedError, LoopUnavailableError
from shared.platform import metrics, telemetry, tracing
from shared.platform.redaction import printable, redacted_cut

log = logging.getLogger(__name__)

FORCE_METADATA_KEY = "force"


class SubmitRetryableError(RuntimeError):
    """Loop could not be reached; the invocation fails so that the host delivers the blob again."""


def is_ignored(blob_name: str, metadata: dict[str, str] | None = None) -> bool:
    """Folders (ADLS directory markers, names ending in /) are not imports."""
    if blob_name.endswith("/"):
        return True
    return (metadata or {}).get("hdi_isfolder", "").lower() == "true"


def submit_blob(pipeline: Pipeline, blob: BlobClient) -> ImportRecord | None:
    """`deliver` in the span `import.submit`: the root of the import's trace (under the host's
    invocation span on Azure), with the outcome as attributes."""
    with tracing.span("import.submit", blob=f"{blob.container_name}/{blob.blob_name}"):
        record = deliver(pipeline, blob)
        if record is not None:
            tracing.annotate(etag=record.etag, size=record.size, codeIbs=record.code_ibs, state=str(record.state),
                             requestId=record.request_id)
        return record


def deliver(pipeline: Pipeline, blob: BlobClient) -> ImportRecord | None:
    """Handle one delivery of a blob; return its record, or None when there was nothing to do.

    Raises:
        SubmitRetryableError: Loop could not be reached; the record waits in `retry_wait` and the
            invocation should fail so the host delivers the blob again.
        LedgerMissingError: the ledger table does not exist (the app's start-up creates it).
        azure.core.exceptions.AzureError: storage could not be reached; nothing was sent to Loop.
    """
    container, name = blob.container_name, blob.blob_name
    if is_ignored(name):
        telemetry.emit(telemetry.IGNORED, {"blob": f"{container}/{name}", "reason": "folder"})
        return None
    try:
        opened = open_version(pipeline, blob)
    except ResourceNotFoundError:
        telemetry.emit(telemetry.BLOB_MISSING, {"blob": f"{container}/{name}", "reason": "deleted"})
        return None
    props = opened.properties
    if is_ignored(name, props.metadata):
        telemetry.emit(telemetry.IGNORED, {"blob": f"{container}/{name}", "reason": "folder"})
        return None
    now = pipeline.clock()
    if props.last_modified and now - props.last_modified > timedelta(days=pipeline.settings.ledger_retention_days):
        # Delivered again (a host that lost its receipts offers every blob): its import may have been
        # purged (shared/flows/retention.py), and a new claim would send the file to Loop a second time.
        telemetry.emit(telemetry.IGNORED, {"blob": f"{container}/{name}", "etag": props.etag,
                                           "reason": "older than LEDGER_RETENTION_DAYS: not imported again"})
        return None
    redrive_at = now + pipeline.claim_lease  # when the timer takes over if this delivery stops
    claimed = ImportRecord(container, name, props.etag, size=props.size, modified_at=props.last_modified,
                           trace_parent=tracing.current_traceparent(), next_poll_at=redrive_at)
    with tracing.span("import.claim"):
        record, created = pipeline.ledger.claim(claimed, check_spacing.claim_row_at(pipeline.settings, now, redrive_at))
    if created:
        telemetry.emit(telemetry.RECEIVED, record.dimensions(), size=props.size)
    else:
        record = take_over(pipeline, record)
        if record is None:
            return None
    return process_recording_failures(pipeline, blob, record, props, opened)


def process_recording_failures(
    pipeline: Pipeline, blob: BlobClient, record: ImportRecord, props: BlobProperties,
    opened: StorageStreamDownloader | None = None,
) -> ImportRecord:
    """`process`, with an unexpected failure before the POST written on the record (its reason, and
    when the timer may try again by the backoff) before it is raised to the host."""
    try:
        return process(pipeline, blob, record, props, opened)
    except SubmitRetryableError:
        raise
    except Exception as error:
        _record_attempt_failure(pipeline, record, redacted_cut(f"{type(error).__name__}: {error}", 500))
        raise


def _record_attempt_failure(pipeline: Pipeline, record: ImportRecord, reason: str) -> None:
    """Decide from the stored record, never from this delivery's copy: a write whose answer was lost
    may have moved it to `submitting`, and then its claim on the bytes must stay. If storage cannot
    even be read, nothing is released or written (the timer re-drives or times the import out)."""
    try:
        stored = pipeline.ledger.get(*record.keys)
    except AzureError:
        log.warning("attempt failure of %s not recorded: storage unreadable", printable(record.blob))
        return
    if stored is None or stored.state not in states.NOT_SENT_STATES:
        return
    carry_findings(record, stored)  # the hash, snapshot and verdict this delivery found are kept
    pipeline.ledger.contents.release(stored)  # no POST: its claim on the bytes goes

    def change(current: ImportRecord) -> None:
        current.error = reason
        current.next_poll_at = pipeline.clock() + pipeline.backoff.delay(current.attempts)

    pipeline.ledger.move(stored, states.RECORD_ATTEMPT_FAILURE, change, reason)


def take_over(pipeline: Pipeline, record: ImportRecord) -> ImportRecord | None:
    """Decide what a further delivery of an already claimed version may do.

    It may carry on only when no POST can have happened (received or retry_wait) and the previous
    holder is gone: its lease ran out, or it gave up waiting for Loop. The retake is a
    compare-and-swap on the record as read, so of several concurrent deliveries only one carries on.
    After SUBMIT_MAX_ATTEMPTS deliveries the import is closed as `submit_failed` with the last reason.
    """
    now = pipeline.clock()
    idle = now - (record.updated_at or now)
    if record.state == ImportState.SUBMITTING and idle > pipeline.submit_timeout:
        pipeline.ledger.mark_unknown(record, "the process stopped after marking submitting")
        return None
    due = (record.next_poll_at or (record.updated_at or now) + pipeline.claim_lease) <= now
    lease_over = record.state == ImportState.RETRY_WAIT or due
    if record.state not in states.NOT_SENT_STATES or not lease_over:
        telemetry.emit(telemetry.DUPLICATE_DELIVERY, record.dimensions())
        pipeline.verdict_reports.catch_up(record)  # after a verdict: the delivery before may have died before it
        return None
    if record.attempts >= pipeline.settings.submit_max_attempts:
        reason = f"gave up after {record.attempts} attempts; last: {record.error or 'no reason recorded'}"
        finish(pipeline, record, states.GIVE_UP, reason, attempts=record.attempts)
        return None
    taken = pipeline.ledger.retake(record, max(pipeline.claim_lease, pipeline.backoff.delay(record.attempts + 1)))
    if taken is None:
        telemetry.emit(telemetry.DUPLICATE_DELIVERY, record.dimensions())
    return taken


def process(pipeline: Pipeline, blob: BlobClient, record: ImportRecord, props: BlobProperties,
            opened: StorageStreamDownloader | None = None) -> ImportRecord:
    """From a claimed record to pending, or to the recorded reason why not. `opened` is this
    delivery's download of the version, read on for the validation (else the snapshot is read).

    The snapshot comes before the content's verdicts, an empty file's included: taken under the
    version's ETag, it proves the version was still the blob's current one, and its storage-given
    time orders the reports of versions written within one second, such as a 0-byte create and its
    content (shared.flows.verdict_reports.order_key). A version overwritten first ends `superseded`
    and never reports over a newer one. A version without a dossier is rejected after it (no bytes
    of it is sent; it is validated all the same, so its report lists every problem at once)."""
    try:
        with tracing.span("import.resolve_dossier"):
            dossier = resolve_dossier(record.blob_name, props.metadata or {}, pipeline.dossiers.lookup)
    except DossierError as error:
        dossier, no_dossier = None, str(error)
    if dossier is not None:
        record.code_ibs = dossier.code_ibs
    with tracing.span("import.snapshot"):
        snapshot = _snapshot(pipeline, blob, record)
    if snapshot is None:
        return stored_state_of(pipeline, record)
    if not props.size:
        empty = "empty file (0 bytes)"
        return finish(pipeline, record, states.REJECT, empty if dossier is not None else f"{no_dossier}; {empty}")
    report = _validate(pipeline, snapshot, record, opened)
    if dossier is None:  # validated anyway: its report lists every problem at once, the dossier first
        reason = no_dossier if report["valid"] else f"{no_dossier}; {report['reason']}"
        rules = {} if report["valid"] else {"rules": report["rules"]}
        return finish(pipeline, record, states.REJECT, reason, **rules)
    if not report["valid"]:
        return finish(pipeline, record, states.REJECT, report["reason"], rules=report["rules"])
    telemetry.emit(telemetry.VALIDATED, record.dimensions(), warnings=report["warnings"], rules=report["rules"])
    force = (props.metadata or {}).get(FORCE_METADATA_KEY, "").lower() == "true"
    if force:
        pipeline.ledger.contents.take(record)
    else:
        earlier = pipeline.ledger.contents.claim(record, lambda keys: _holder(pipeline, keys))
        if earlier is not None:
            record.duplicate_of = "|".join(earlier.keys)
            reason = DUPLICATE_REASON.format(blob=earlier.blob, request=earlier.request_id or "none")
            return finish(pipeline, record, states.MARK_DUPLICATE, reason)
    return send(pipeline, record)


def _snapshot(pipeline: Pipeline, blob: BlobClient, record: ImportRecord) -> BlobClient | None:
    """A snapshot of exactly the claimed version; None (and a final record) if it is gone."""
    if not record.snapshot:
        try:
            taken = blob.create_snapshot(etag=record.etag, match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError:
            finish(pipeline, record, states.SUPERSEDE, "overwritten before it was read")
            return None
        except ResourceNotFoundError:
            finish(pipeline, record, states.MARK_BLOB_MISSING, "deleted before it was read")
            return None
        record.snapshot = taken["snapshot"]
    return download_client(pipeline, record)


def _validate(pipeline: Pipeline, snapshot: BlobClient, record: ImportRecord,
              opened: StorageStreamDownloader | None) -> dict:
    """`validation_of` in its span, timed into `fec.validation.duration` and `.throughput`."""
    started = time.perf_counter()
    with tracing.span("import.validate", size=record.size) as current:
        report = validation_of(pipeline, snapshot, record, opened)
        current.set_attribute("valid", bool(report["valid"]))
    metrics.record_validation(time.perf_counter() - started, record.size, bool(report["valid"]))
    return report


def _holder(pipeline: Pipeline, keys: tuple[str, str]) -> ImportRecord | None:
    """The import a content row points at, if it still holds those bytes: on its way to Loop (not
    sent yet), or sent (active or completed) within DUPLICATE_WINDOW_HOURS."""
    earlier = pipeline.ledger.get(*keys)
    if earlier is None:
        return None
    if earlier.state in states.NOT_SENT_STATES:
        return earlier
    window = timedelta(hours=pipeline.settings.duplicate_window_hours)
    sent = earlier.submitted_at or earlier.received_at or pipeline.clock()
    if earlier.state in states.CONTENT_HOLDING_STATES and pipeline.clock() - sent <= window:
        return earlier
    return None


def send(pipeline: Pipeline, record: ImportRecord) -> ImportRecord:
    """Sign a SAS URL or deposit the file (LOOP_TRANSFER_MODE), mark submitting (the one guarded
    step that permits a POST), POST, store the id. A deposit is made before the mark: uploading
    again is harmless, a second POST is not.

    Raises:
        DepositError: the deposit failed before any POST; the caller records it and it is retried.
    """
    try:
        with tracing.span("import.sign"):
            signed = prepare_transfer(pipeline, record)
    except DepositRefusedError as error:
        pipeline.ledger.contents.release(record)
        return finish(pipeline, record, error.transition, error.message)
    record.transfer_mode, record.deposit_uri = signed.mode, signed.shown_uri
    marked = pipeline.ledger.mark_submitting(record, signed.expires_at, pipeline.clock() + pipeline.submit_timeout)
    if marked is None:
        telemetry.emit(telemetry.DUPLICATE_DELIVERY, record.dimensions())
        return stored_state_of(pipeline, record)
    try:
        request_id = pipeline.loop.import_fec(marked.code_ibs or "", signed.url, uri=signed.uri)
    except LoopUnavailableError as error:
        pipeline.ledger.contents.release(marked)
        retry_at = lambda current: pipeline.clock() + pipeline.backoff.delay(current.attempts)  # noqa: E731
        pipeline.ledger.wait_for_retry(marked, error.message, retry_at)
        raise SubmitRetryableError(f"{marked.blob}: {error.message}") from None
    except LoopOutcomeUnknownError as error:
        return pipeline.ledger.mark_unknown(marked, error.message) or stored_state_of(pipeline, marked)
    except LoopAuthError as error:
        pipeline.ledger.contents.release(marked)
        return finish(pipeline, marked, states.REFUSE_KEYS, error.message)
    except LoopRejectedError as error:
        pipeline.ledger.contents.release(marked)
        return finish(pipeline, marked, states.FAIL_SUBMIT, error.message)
    telemetry.emit(telemetry.ACCEPTED, {**marked.dimensions(), "requestId": request_id})
    return _store_request_id(pipeline, marked, request_id)


def _store_request_id(pipeline: Pipeline, record: ImportRecord, request_id: str) -> ImportRecord:
    """Write the request id even if the timer marked the record unknown meanwhile: we know now.

    The ledger tries a failed write again (and recognises one that landed with its answer lost); if
    storage still fails, the id is in the `import.accepted` event and in this error line, for
    `imports resolve` once the timer calls the import unknown."""
    first_check_in = check_spacing.first_check_in(pipeline.settings)
    try:
        saved = pipeline.ledger.record_request_id(record, request_id, first_check_in=first_check_in)
    except AzureError as error:
        log.error("request id %s for %s could not be stored (%s): resolve the import with it",
                  request_id, printable(record.blob), type(error).__name__)
        raise
    if saved is None:
        log.error("request id %s for %s could not be stored: record changed state", request_id, printable(record.blob))
        return stored_state_of(pipeline, record)
    return saved


def finish(pipeline: Pipeline, record: ImportRecord, transition: Transition, reason: str | None,
           **extra: object) -> ImportRecord:
    """Close a record with its outcome (one event) and write the outcome on the blob.

    If the record moved on meanwhile (another delivery, the timer, an operator), nothing is
    written and the stored record is returned, so callers report what is really stored.
    """
    saved = pipeline.ledger.finish(record, transition, reason, **extra)
    if saved is None:
        return stored_state_of(pipeline, record)
    write_outcome_tags(pipeline.blob_service, saved)
    return saved


def stored_state_of(pipeline: Pipeline, record: ImportRecord) -> ImportRecord:
    """The record as the ledger holds it now (the caller's copy may be out of date)."""
    return pipeline.ledger.get(*record.keys) or record


def redrive(pipeline: Pipeline, record: ImportRecord) -> ImportRecord | None:
    """Carry on an import whose delivery stopped before any POST (the timer calls this).

    Every change goes through the ledger's guarded transitions: if a delivery marked the record
    `submitting` meanwhile, superseding or retaking it is refused and that delivery keeps it.
    """
    blob = pipeline.blob_service.get_blob_client(record.container, record.blob_name)
    source = pipeline.blob_service.get_blob_client(record.container, record.blob_name, snapshot=record.snapshot)
    try:
        props = source.get_blob_properties()
    except ResourceNotFoundError:
        return finish(pipeline, record, states.MARK_BLOB_MISSING, "deleted before it was read")
    if not record.snapshot and props.etag != record.etag:
        return finish(pipeline, record, states.SUPERSEDE, "overwritten before it was read")
    taken = take_over(pipeline, record)
    if taken is None:
        return None
    return process_recording_failures(pipeline, blob, taken, props)
