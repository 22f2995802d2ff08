"""The verdict on one snapshot: streamed once through the validator and sha256, stored as a report.

A re-driven delivery or an operator's resubmit of the same snapshot reuses the stored verdict
instead of downloading the file again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath
from typing import Any

from azure.storage.blob import BlobClient

from shared.fec.validation import ValidationReport, validate_stream
from shared.flows.pipeline import Pipeline
from shared.ledger.record import MAX_TEXT_UNITS, ImportRecord, utf16_units


def download_client(pipeline: Pipeline, record: ImportRecord) -> BlobClient:
    """A client on the record's snapshot that downloads in bounded chunks (BLOB_DOWNLOAD_CHUNK_BYTES):
    the SDK's default first read is 32 MiB, too much for several files at once on a small instance."""
    service = pipeline.blob_service
    chunk = pipeline.settings.download_chunk_bytes
    return BlobClient(
        service.url, record.container, record.blob_name, snapshot=record.snapshot, credential=service.credential,
        max_single_get_size=chunk, max_chunk_get_size=chunk, **pipeline.blob_client_options,
    )


def _hashing(chunks: Iterable[bytes], digest: Any) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


def validation_of(pipeline: Pipeline, snapshot: BlobClient, record: ImportRecord) -> dict[str, Any]:
    """The verdict on the snapshot: reused when this snapshot was validated before (a re-driven
    delivery does not download the file again), else streamed through validator and hash once."""
    if record.validation and record.content_sha256:
        stored = json.loads(record.validation)
        if stored.get("valid") and stored.get("snapshot") == record.snapshot:
            return {"valid": True, "warnings": stored.get("warnings", 0)}
    report = _validate(pipeline, snapshot, record)
    if report.valid:
        return {"valid": True, "warnings": report.warning_count}
    return {"valid": False, "reason": _rejection_reason(report), "rules": dict(report.counts)}


def _validate(pipeline: Pipeline, snapshot: BlobClient, record: ImportRecord) -> ValidationReport:
    """Stream the snapshot through the validator and the hash in one pass; store the report."""
    digest = hashlib.sha256()
    chunks = snapshot.download_blob(max_concurrency=1).chunks()
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
