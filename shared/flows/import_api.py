"""The read side of the imports, as the CLI prints it and the HTTP API (http_api/) answers it:
(HTTP status, JSON body) pairs, so the trigger only adapts them. An unknown import or a name that
cannot be a blob of the watched container is a 404 with a JSON error, never a traceback."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError

from shared.flows.import_views import import_details, redacted
from shared.flows.operator_actions import OperatorError, find_import
from shared.flows.pipeline import Pipeline
from shared.ledger.states import ImportState
from shared.ledger.store import LedgerMissingError

Json = dict[str, Any] | list[dict[str, Any]]
MAX_BLOB_NAME = 1024
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
_OLDEST = datetime.min.replace(tzinfo=UTC)


def show_json(pipeline: Pipeline, key: str) -> Json:
    """What `imports show <key> --json` prints: every version of the blob (one: the object alone),
    or only the import with that request id.

    Raises:
        OperatorError: no import has that name or request id.
    """
    first = find_import(pipeline, key)
    records = pipeline.ledger.versions_of(first.container, first.blob_name)
    if first.request_id and key == first.request_id:
        records = [first]
    details = [import_details(pipeline.reports, record) for record in records]
    return details if len(details) > 1 else details[0]


def list_json(pipeline: Pipeline, state: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """What `imports list --json` prints: one record per import, newest first."""
    records = sorted(pipeline.ledger.all_records(state), key=lambda r: r.received_at or _OLDEST, reverse=True)
    return [redacted(record.to_dict()) for record in records[:limit]]


def name_problem(name: str) -> str | None:
    """Why `name` cannot be looked up (None when it may be a blob name): empty, too long, control
    characters, or `.`/`..` segments and backslashes, which storage and HTTP clients rewrite."""
    if not name or len(name) > MAX_BLOB_NAME:
        return "a blob name has 1 to 1024 characters"
    if any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in name):
        return "a blob name has no control characters"
    if "\\" in name or any(segment in (".", "..") for segment in name.split("/")):
        return "a blob name has no '.' or '..' segment and no backslash"
    return None


def _error(status: int, message: str) -> tuple[int, Json]:
    return status, {"error": redacted(message), "status": status}


STORAGE_DOWN = "the import ledger could not be read; try again"


def get_import(pipeline: Pipeline, name: str) -> tuple[int, Json]:
    """GET /api/imports/{name}: every version of the blob (or the import with that request id)."""
    problem = name_problem(name)
    if problem is not None:
        return _error(404, f"no import found: {problem}")
    try:
        return 200, show_json(pipeline, name)
    except OperatorError:
        return _error(404, "no import found for that blob name or request id")
    except (AzureError, LedgerMissingError):
        return _error(503, STORAGE_DOWN)


def list_imports(pipeline: Pipeline, state: str | None, limit: str | None) -> tuple[int, Json]:
    """GET /api/imports?state=...&limit=...: the imports, newest first (at most `limit`)."""
    if state and state not in {str(known) for known in ImportState}:
        return _error(400, f"state must be one of {', '.join(ImportState)}")
    try:
        count = int(limit) if limit else DEFAULT_LIMIT
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_LIMIT:
        return _error(400, f"limit must be a whole number between 1 and {MAX_LIMIT}")
    try:
        return 200, list_json(pipeline, state or None, count)
    except (AzureError, LedgerMissingError):
        return _error(503, STORAGE_DOWN)
