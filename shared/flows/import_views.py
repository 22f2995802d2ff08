"""What one import looks like to people and programs: the JSON of `imports show --json`, shared by
the operator CLI, the reports next to the files (shared.flows.verdict_reports) and the read API
(shared.flows.import_api). Every text in it is redacted, as everywhere the app shows a record, but
the names the dropper gave (`NAME_FIELDS`: a name is not a secret, it is how they recognise their
file) and the path of a URL (its query is redacted)."""

from __future__ import annotations

import json
from typing import Any

from shared.flows.reports import ReportStore
from shared.ledger.ledger import Ledger
from shared.ledger.record import ImportRecord
from shared.platform.redaction import NAME_FIELDS, redact_text_keeping, redact_url

REPORT_KEYS = ("valid", "errors", "warnings", "counts", "summary")
URL_FIELDS = frozenset({"deposit_uri"})


def redacted(value: Any, field: str | None = None, names: tuple[str, ...] = ()) -> Any:
    """The value with every string in it (keys kept) passed through redact_text, but names: the
    name fields, and `names` where a text quotes them; URLs get their query redacted. `field` is
    the key the value is under."""
    if isinstance(value, str):
        if field in NAME_FIELDS:
            return value
        return redact_url(value) if field in URL_FIELDS else redact_text_keeping(value, names)
    if isinstance(value, dict):
        return {key: redacted(item, key, names) for key, item in value.items()}
    if isinstance(value, list):
        return [redacted(item, None, names) for item in value]
    return value


def names_of(record: ImportRecord) -> tuple[str, ...]:
    """How texts about the record may quote its file (`container/name`, the name, its last segment)
    and a duplicate's the earlier import's (ImportRecord.quoted_names)."""
    return record.quoted_names(record.error)


def clean_report(record: ImportRecord) -> dict[str, Any] | None:
    """The validation report of a file validated without a finding, from the record alone: such a
    report is not stored as a blob (shared.flows.snapshot_validation), its counts and summary are
    `record.validation`. None when the record holds no such summary (never validated, or cut)."""
    stored = json.loads(record.validation) if record.validation else None
    if not stored or stored.get("truncated") or "summary" not in stored:
        return None
    return {"valid": stored.get("valid"), "errors": [], "warnings": [], "counts": stored.get("counts") or {},
            "summary": stored["summary"]}


def import_details(reports: ReportStore, record: ImportRecord) -> dict[str, Any]:
    """One version's record, with its validation report (errors, warnings, counts, summary): the
    stored blob when there is one, else rebuilt from the record (no download)."""
    detail = record.to_dict()
    report = reports.load(record.report_blob) if record.report_blob else clean_report(record)
    if report:
        detail["report"] = {key: report.get(key) for key in REPORT_KEYS}
    return redacted(detail, names=names_of(record))


def earlier_record(ledger: Ledger, record: ImportRecord) -> ImportRecord | None:
    """The import a duplicate's bytes were already sent by (`record.duplicate_of`). One read; None
    when unknown or gone."""
    if not record.duplicate_of or "|" not in record.duplicate_of:
        return None
    return ledger.get(*record.duplicate_of.split("|", 1))


def earlier_view(earlier: ImportRecord) -> dict[str, Any]:
    """The earlier import as a duplicate's report shows it: its file, state, request id and times."""
    return redacted({"blob": earlier.blob, "blob_name": earlier.blob_name, "etag": earlier.etag,
                     "state": str(earlier.state), "request_id": earlier.request_id,
                     "received_at": _iso(earlier.received_at), "submitted_at": _iso(earlier.submitted_at),
                     "finished_at": _iso(earlier.finished_at)})


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
