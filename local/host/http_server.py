"""The local host's HTTP triggers: a threading HTTP server that routes `/api/<route>` to the app's
HTTP functions as their binding metadata says (route template, methods, authLevel), hands each a
`func.HttpRequest` and writes back the `func.HttpResponse` it returns, as the Functions host does.

Keys: a function whose authLevel is FUNCTION or ADMIN answers 401 unless the request carries the
local key in the `x-functions-key` header or the `code` query parameter (compared in constant
time). No key and a wrong key are both 401, with different messages ("a function key is required",
"the function key is wrong"), so a developer sees which it is. The Functions host on Azure answers
both with the same bare 401 (its FunctionAuthorizationHandler only sees whether the key carried the
function's auth level; Azure/azure-functions-host, `Security/Authorization`): the messages are
this host's, clients must not rely on them. The key is LOCAL_HTTP_FUNCTION_KEY, or one generated
at start and printed once to the console. The port is LOCAL_HTTP_PORT (7071, as Core Tools; 0
picks a free one). A function that raises answers 500 with a JSON error: the traceback goes to
the log, never to the client.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func

from local.host.bindings import HttpFunction
from shared.platform.redaction import printable, register_secret

log = logging.getLogger("local.host.http")
KEY_MISSING = "a function key is required (x-functions-key header or code parameter)"
KEY_WRONG = "the function key is wrong (x-functions-key header or code parameter)"

ROUTE_PREFIX = "api"
DEFAULT_PORT = 7071
KEY_SETTING, PORT_SETTING = "LOCAL_HTTP_FUNCTION_KEY", "LOCAL_HTTP_PORT"
KEYED_LEVELS = frozenset({"FUNCTION", "ADMIN"})
MAX_BODY = 1024 * 1024
_PARAMETER = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")


def route_pattern(route: str) -> re.Pattern[str]:
    """`imports/{*name}` → a regex on the raw (still percent-encoded) path after `/api/`:
    `{name}` takes one segment, `{*name}` the rest of the path."""
    parts, last = [], 0
    for match in _PARAMETER.finditer(route):
        parts.append(re.escape(route[last:match.start()]))
        parts.append(f"(?P<{match.group(2)}>{'.*' if match.group(1) else '[^/]+'})")
        last = match.end()
    parts.append(re.escape(route[last:]))
    return re.compile("".join(parts))


@dataclass(frozen=True)
class Route:
    function: HttpFunction
    pattern: re.Pattern[str]


def local_key(env: Mapping[str, str]) -> tuple[str, bool]:
    """The key HTTP functions ask for, and whether it was generated (not set) here."""
    given = (env.get(KEY_SETTING) or "").strip()
    return (given, False) if given else (secrets.token_urlsafe(32), True)


def local_port(env: Mapping[str, str]) -> int:
    raw = (env.get(PORT_SETTING) or "").strip()
    if not raw:
        return DEFAULT_PORT
    if not raw.isdigit() or int(raw) > 65_535:
        raise ValueError(f"{PORT_SETTING} must be a port number (0 picks a free one), got {raw!r}")
    return int(raw)


class LocalHttpServer:
    """Serves the HTTP functions on 127.0.0.1 in a thread of its own until stop()."""

    def __init__(self, functions: list[HttpFunction], key: str, port: int = DEFAULT_PORT,
                 host: str = "127.0.0.1") -> None:
        self.routes = [Route(function, route_pattern(function.route)) for function in functions]
        self.key = key
        register_secret(key)  # a URL with ?code=... in a log is cleaned like every other secret
        self.server = ThreadingHTTPServer((host, port), _handler_for(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="local-http", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/{ROUTE_PREFIX}"

    def start(self) -> LocalHttpServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def match(self, path: str, method: str) -> tuple[Route, dict[str, str]] | bool | None:
        """The route and its decoded parameters; False if a route matches but not the method."""
        prefix = f"/{ROUTE_PREFIX}/"
        if not path.startswith(prefix):
            return None
        rest = path[len(prefix):]
        method_refused = False
        for route in self.routes:
            found = route.pattern.fullmatch(rest)
            if found is None:
                continue
            if method not in route.function.methods:
                method_refused = True
                continue
            return route, {name: unquote(value) for name, value in found.groupdict().items()}
        return False if method_refused else None

    def refusal(self, function: HttpFunction, headers: Mapping[str, str], params: Mapping[str, str]) -> str | None:
        """Why the request may not call `function` (None: it may)."""
        if function.auth_level not in KEYED_LEVELS:
            return None
        given = headers.get("x-functions-key") or params.get("code") or ""
        if not given:
            return KEY_MISSING
        return None if hmac.compare_digest(given.encode("utf-8"), self.key.encode("utf-8")) else KEY_WRONG


def _json_error(status: int, message: str) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"error": message, "status": status}), status_code=status,
                             mimetype="application/json", charset="utf-8")


def _handler_for(server: LocalHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_PUT(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
            headers = {name.lower(): value for name, value in self.headers.items()}
            found = server.match(parts.path, self.command)
            body = self._read_body(headers)
            if body is None:
                self.close_connection = True  # the rest of the stream cannot be framed
                response = _json_error(400, f"Content-Length must be a whole number of bytes up to {MAX_BODY}")
            elif found is None:
                response = _json_error(404, "no function serves this route")
            elif found is False:
                response = _json_error(405, "method not allowed")
            else:
                route, route_params = found
                response = self._invoke(route.function, headers, params, route_params, parts.path, body=body)
            self._write(response)

        def _read_body(self, headers: dict[str, str]) -> bytes | None:
            """The request body, read whatever the answer (so keep-alive stays framed); None when its
            Content-Length is not a whole number up to MAX_BODY."""
            declared = headers.get("content-length", "0").strip() or "0"
            if not declared.isdigit() or int(declared) > MAX_BODY:
                return None
            length = int(declared)
            return self.rfile.read(length) if length else b""

        def _invoke(self, function: HttpFunction, headers: dict[str, str], params: dict[str, str],
                    route_params: dict[str, str], path: str, *, body: bytes) -> func.HttpResponse:
            refusal = server.refusal(function, headers, params)
            if refusal is not None:
                return _json_error(401, refusal)
            request = func.HttpRequest(
                method=self.command, url=f"http://{headers.get('host', 'localhost')}{path}", headers=headers,
                params=params, route_params=route_params, body=body,
            )
            try:
                return function.call(**{function.arg_name: request})
            except Exception:
                log.exception("%s failed", function.name)
                return _json_error(500, "the function failed; see the host's log")

        def _write(self, response: func.HttpResponse) -> None:
            body = response.get_body() or b""
            self.send_response(response.status_code)
            content_type = response.mimetype or "text/plain"
            if response.charset:
                content_type += f"; charset={response.charset}"
            self.send_header("Content-Type", content_type)
            for name, value in response.headers.items():
                if name.lower() not in ("content-type", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """One debug line per request, without the query string (where `code=` travels)."""
            log.debug("%s %s", self.command, printable(urlsplit(self.path).path))

    return Handler
