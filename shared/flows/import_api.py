"""The read side of the imports, as the CLI prints it and the HTTP API (http_api/) answers it:
(HTTP status, JSON body) pairs, so the trigger only adapts them. An unknown import or a name that
cannot be a blob of the watched container is a 404 with a JSON error, never a traceback."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from azure.core.exceptions import AzureError

from shared.flows.import_listing import ListQuery, ListQueryError, list_page, list_records, parse_limit
from shared.flows.import_views import import_details, names_of, redacted
from shared.flows.operator_actions import OperatorError, versions_named
from shared.flows.pipeline import Pipeline
from shared.ledger.store import LedgerMissingError
from shared.loop.client import REQUEST_ID_PATTERN

Json = dict[str, Any] | list[dict[str, Any]]
MAX_BLOB_NAME = 1024


def show_json(pipeline: Pipeline, key: str) -> Json:
    """What `imports show <key> --json` prints: every version of the blob with that name (one: the
    object alone), else the import with that Loop request id (a name wins: `request_json` reads an id
    unambiguously).

    Raises:
        OperatorError: no blob has that name and no import that request id.
    """
    records = versions_named(pipeline, key)
    if not records:
        found = pipeline.ledger.by_request_id(key) if REQUEST_ID_PATTERN.fullmatch(key) else None
        if found is None:
            raise OperatorError(f"no import found for {key!r} (give a blob name or a Loop request id)")
        records = [found]
    details = [import_details(pipeline.reports, record) for record in records]
    return details if len(details) > 1 else details[0]


def request_json(pipeline: Pipeline, request_id: str) -> dict[str, Any] | None:
    """The import Loop gave this request id (any case), as `imports show --json` prints it; None if none."""
    if not REQUEST_ID_PATTERN.fullmatch(request_id):
        raise ListQueryError("requestId is a Loop request id (a GUID)")
    record = pipeline.ledger.by_request_id(request_id)
    return import_details(pipeline.reports, record) if record is not None else None


def list_json(pipeline: Pipeline, state: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """What `imports list --json` prints: one record per import, newest first (all: limit None)."""
    records, _ = list_records(pipeline, ListQuery.parse(state), limit)
    return [redacted(record.to_dict(), names=names_of(record)) for record in records]


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
    """GET /api/imports/{name}: every version of the blob, else the import with that request id."""
    problem = name_problem(name)
    if problem is not None:
        return _error(404, f"no import found: {problem}")
    try:
        return 200, show_json(pipeline, name)
    except OperatorError:
        return _error(404, "no import found for that blob name or request id")
    except (AzureError, LedgerMissingError):
        return _error(503, STORAGE_DOWN)


LIST_PARAMETERS = ("state", "codeIbs", "since", "until", "limit")
PAGE_PARAMETER = "$skipToken"


def list_imports(pipeline: Pipeline, params: Mapping[str, str], base_url: str) -> tuple[int, Json]:
    """GET /api/imports?state=&codeIbs=&since=&until=&limit=: a page of imports, newest first, as
    `{"value": [...], "nextLink": "<url>"}` (Azure's paging convention; no nextLink on the last page).
    GET /api/imports?requestId=<id>: `{"value": [the import with that Loop request id]}` (or none).
    A bad filter, limit or page token is a 400 with a JSON error."""
    try:
        if params.get("requestId") is not None:
            return 200, {"value": _by_request_id(pipeline, params)}
        query = ListQuery.parse(params.get("state"), params.get("codeIbs"), params.get("since"), params.get("until"))
        limit = parse_limit(params.get("limit"))
        page = list_page(pipeline, query, limit, params.get(PAGE_PARAMETER) or None)
    except ListQueryError as error:
        return _error(400, str(error))
    except (AzureError, LedgerMissingError):
        return _error(503, STORAGE_DOWN)
    body: dict[str, Any] = {"value": [redacted(record.to_dict(), names=names_of(record)) for record in page.records]}
    if page.next_token is not None:
        kept = {name: params[name] for name in LIST_PARAMETERS if params.get(name)}
        body["nextLink"] = f"{base_url}?{urlencode({**kept, PAGE_PARAMETER: page.next_token})}"
    return 200, body


def _by_request_id(pipeline: Pipeline, params: Mapping[str, str]) -> list[dict[str, Any]]:
    others = [name for name in (*LIST_PARAMETERS, PAGE_PARAMETER) if params.get(name) and name != "limit"]
    if others:
        raise ListQueryError(f"requestId is a lookup of one import: it takes no {', '.join(others)}")
    found = request_json(pipeline, params["requestId"])
    return [found] if found is not None else []
