"""The read API for integrations: HTTP-triggered functions, thin adapters to shared.flows.import_api.

- `GET /api/imports/{name}`: every version of that blob (or the import with that Loop request id), as
  `imports show --json` prints it;
- `GET /api/imports?state=...&limit=...`: the imports, newest first, as `imports list --json`.

Authorization level `function`: a function or host key in the `x-functions-key` header or the `code`
query parameter (locally: LOCAL_HTTP_FUNCTION_KEY, see local/host/http_server.py). On Azure, Entra ID
(Easy Auth) goes in front of the keys (README, "The read API").
"""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared.flows.import_api import Json, get_import, list_imports
from shared.flows.runtime import current_pipeline

bp = func.Blueprint()
log = logging.getLogger(__name__)


def json_response(status: int, body: Json) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, ensure_ascii=False, indent=1), status_code=status, mimetype="application/json",
        charset="utf-8", headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


def _guarded(answer: callable) -> func.HttpResponse:
    """A failure (storage unreachable...) is a 503 with a JSON error, never a traceback."""
    try:
        return json_response(*answer())
    except Exception as error:
        log.warning("imports API failed: %s", type(error).__name__)
        return json_response(503, {"error": "the import ledger could not be read; try again", "status": 503})


@bp.function_name("imports_api_show")
@bp.route(route="imports/{*name}", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.FUNCTION)
def imports_api_show(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params.get("name") or ""
    return _guarded(lambda: get_import(current_pipeline(), name))


@bp.function_name("imports_api_list")
@bp.route(route="imports", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.FUNCTION)
def imports_api_list(req: func.HttpRequest) -> func.HttpResponse:
    return _guarded(lambda: list_imports(current_pipeline(), req.params.get("state"), req.params.get("limit")))
