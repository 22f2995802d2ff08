"""The emulator's HTTP plumbing shared by every endpoint: answering, reading a body, checking the
two keys, and recording each API request (with `sig` values and keys never recorded)."""

from __future__ import annotations

import json
import logging
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from local.loop_emulator.server import EmulatorServer
    from local.loop_emulator.state import EmulatorState

log = logging.getLogger("loop_emulator")


class BaseHandler(BaseHTTPRequestHandler):
    server: EmulatorServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    @property
    def state(self) -> EmulatorState:
        return self.server.state

    def _send(self, status: int, body: Any = None, *, text: str | None = None, headers: dict | None = None) -> None:
        payload = (text if text is not None else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if text is None else "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        path = urlsplit(self.path).path
        log.info("%s %s -> %d", self.command, path, status)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _auth(self) -> str:
        api_key = self.headers.get("x-apikey")
        subscription = self.headers.get("Ocp-Apim-Subscription-Key")
        if not api_key or not subscription:
            return "missing"
        if api_key != self.state.api_key or subscription != self.state.subscription_key:
            return "invalid"
        return "ok"

    def _record(self, path: str, query: dict[str, Any], body: Any, auth: str) -> dict[str, Any]:
        entry = {"method": self.command, "path": path, "query": query, "body": body, "auth": auth,
                 "status": None, "at": time.time()}
        with self.state.lock:
            self.state.requests.append(entry)
        return entry
