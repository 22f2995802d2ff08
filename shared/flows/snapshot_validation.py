"""The verdict on one snapshot: streamed once through the validator and sha256, stored as a report.

A delivery opens the download of the blob first (`open_version`): that one GET gives the version's
ETag, size and metadata with its first chunk, so no separate properties request is made, and the
rest is read under that ETag (or from the snapshot of it, if the blob is overwritten meanwhile).
A re-driven delivery or an operator's resubmit of the same snapshot reuses the stored verdict
instead of downloading the file again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath
from typing import Any

from azure.core.exceptions import ResourceModifiedError
from azure.storage.blob import BlobClient, StorageStreamDownloader

from shared.fec.rules import counts_by_level
from shared.fec.validation import ValidationReport, validate_stream
from shared.flows.pipeline import Pipeline
from shared.ledger.record import MAX_TEXT_UNITS, ImportRecord, utf16_units


def download_client(pipeline: Pipeline, record: ImportRecord) -> BlobClient:
    """A client on the record's snapshot that downloads in bounded chunks (BLOB_DOWNLOAD_CHUNK_BYTES):
    the SDK's default first read is 32 MiB, too much for several files at once on a small instance."""
    return _bounded_client(pipeline, record.container, record.blob_name, record.snapshot)


def _bounded_client(pipeline: Pipeline, container: str, blob_name: str, snapshot: str | None) -> BlobClient:
    service = pipeline.blob_service
    chunk = pipeline.settings.download_chunk_bytes
    return BlobClient(
        service.url, container, blob_name, snapshot=snapshot, credential=service.credential,
        max_single_get_size=chunk, max_chunk_get_size=chunk, transport=pipeline.blob_client_transport,
        **pipeline.blob_client_options,
    )


def open_version(pipeline: Pipeline, blob: BlobClient) -> StorageStreamDownloader:
    """The download of the blob's current version, its first chunk read: `.properties` holds the
    version's ETag, size and metadata, and the SDK asks every later chunk If-Match that ETag.

    Raises:
        azure.core.exceptions.ResourceNotFoundError: the blob is gone.
    """
    client = _bounded_client(pipeline, blob.container_name, blob.blob_name, None)
    return client.download_blob(max_concurrency=1)


def version_chunks(opened: StorageStreamDownloader, snapshot: BlobClient) -> Iterator[bytes]:
    """The opened version's bytes: from its download, and if the blob is overwritten before the last
    chunk is read (the SDK's If-Match fails), the rest from the snapshot of that same version."""
    offset = 0
    try:
        for chunk in opened.chunks():
            offset += len(chunk)
            yield chunk
        return
    except ResourceModifiedError:
        pass
    yield from snapshot.download_blob(offset=offset, max_concurrency=1).chunks()


def _hashing(chunks: Iterable[bytes], digest: Any) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


def validation_of(pipeline: Pipeline, snapshot: BlobClient, record: ImportRecord,
                  opened: StorageStreamDownloader | None = None) -> dict[str, Any]:
    """The verdict on the snapshot: reused when this snapshot was validated before (a re-driven
    delivery does not download the file again), else streamed through validator and hash once:
    from `opened` (this delivery's download of the same version) when given, else from the snapshot."""
    if record.validation and record.content_sha256:
        stored = json.loads(record.validation)
        if stored.get("valid") and stored.get("snapshot") == record.snapshot:
            return {"valid": True, "warnings": stored.get("warnings", 0),
                    "rules": counts_by_level(stored.get("counts") or {})}
    if opened is not None and opened.properties.etag != record.etag:
        opened = None
    chunks = version_chunks(opened, snapshot) if opened else snapshot.download_blob(max_concurrency=1).chunks()
    report = _validate(pipeline, chunks, record)
    if report.valid:
        return {"valid": True, "warnings": report.warning_count, "rules": counts_by_level(report.counts)}
    return {"valid": False, "reason": _rejection_reason(report), "rules": counts_by_level(report.counts)}


def _validate(pipeline: Pipeline, chunks: Iterable[bytes], record: ImportRecord) -> ValidationReport:
    """Stream the bytes through the validator and the hash in one pass; store the report."""
    digest = hashlib.sha256()
    report = validate_stream(_hashing(chunks, digest), file_name=PurePosixPath(record.blob_name).name)
    record.content_sha256 = digest.hexdigest()
    full = report.to_dict()
    record.validation = json.dumps(
        {"valid": full["valid"], "counts": full["counts"], "summary": full["summary"],
         "warnings": report.warning_count, "snapshot": record.snapshot},
        default=str,
    )
    record.report_blob = _saved_report(pipeline, record, full)
    return report


def _saved_report(pipeline: Pipeline, record: ImportRecord, full: dict[str, Any]) -> str | None:
    """The report's blob name, stored only when it says more than `record.validation`: findings to
    list, or a summary too large for the record. A clean file's report is its counts and summary,
    already on the record (shared.flows.import_views rebuilds it), so it costs no upload."""
    if not full["errors"] and not full["warnings"] and utf16_units(record.validation or "") <= MAX_TEXT_UNITS:
        return None
    partition, row = record.keys
    return pipeline.reports.save(f"{partition}/{row}.json", full)


def _rejection_reason(report: ValidationReport) -> str:
    """One line for the ledger and the event: error counts per rule, then the first error."""
    error_rules = {finding.rule for finding in report.errors}
    rules = ", ".join(f"{rule} x{count}" for rule, count in sorted(report.counts.items()) if rule in error_rules)
    first = report.errors[0]
    where = f"line {first.line}: " if first.line else ""
    return f"invalid FEC file ({rules}); first: {where}{first.message}"
