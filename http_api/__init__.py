"""The read API for integrations: HTTP-triggered functions, thin adapters to shared.flows.import_api.

- `GET /api/imports/{name}`: every version of that blob (else the import with that Loop request id), as
  `imports show --json` prints it;
- `GET /api/imports?state=&codeIbs=&since=&until=&limit=`: a page of imports, newest first,
  `{"value": [...], "nextLink": ...}`; `GET /api/imports?requestId=<id>`: the import with that id.

Authorization level `function`: a function or host key in the `x-functions-key` header or the `code`
query parameter (locally: LOCAL_HTTP_FUNCTION_KEY, see local/host/http_server.py). On Azure, Entra ID
(Easy Auth) goes in front of the keys (README, "The read API").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

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


def _guarded(answer: Callable[[], tuple[int, Json]]) -> func.HttpResponse:
    """The answer of shared.flows.import_api (storage down is its 503); anything unexpected is a 500
    with a JSON error, its traceback in the app's log only, never in the response."""
    try:
        return json_response(*answer())
    except Exception:
        log.exception("imports API failed")
        return json_response(500, {"error": "the request could not be answered; see the app's log", "status": 500})


@bp.function_name("imports_api_show")
@bp.route(route="imports/{*name}", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.FUNCTION)
def imports_api_show(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params.get("name") or ""
    return _guarded(lambda: get_import(current_pipeline(), name))


@bp.function_name("imports_api_list")
@bp.route(route="imports", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.FUNCTION)
def imports_api_list(req: func.HttpRequest) -> func.HttpResponse:
    base_url = req.url.split("?", 1)[0]  # the nextLink's base: the query (and any `code` key) left out
    return _guarded(lambda: list_imports(current_pipeline(), dict(req.params), base_url))
