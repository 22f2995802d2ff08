"""The emulator's HTTP server: routing to the API (api.py) and the control endpoints.

Control (no auth): GET /_emulator/health, GET /_emulator/requests (every API request, with `sig`
values and keys never recorded), GET /_emulator/imports, GET /_emulator/deposits (each deposit
URL given: its uri, whether a file was uploaded, its size and sha256), POST /_emulator/reset,
POST /_emulator/seed {"count": N, "codeIbs": "DEMO001", "finish_within": [min, max]} (N imports
that need no download and finish, each at its own time between min and max seconds from now,
answering their ids: for polling benchmarks), POST /_emulator/faults (faults.py).
"""

from __future__ import annotations

import json
import time
import uuid
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from local.loop_emulator.api import LoopApiHandler
from local.loop_emulator.imports import Import
from local.loop_emulator.state import EmulatorState


class Handler(LoopApiHandler):
    """Routes each request to an API endpoint (after the latency) or a control endpoint."""

    def do_GET(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler names it
        parts = urlsplit(self.path)
        if parts.path.startswith("/_emulator/"):
            self._control_get(parts.path)
            return
        time.sleep(self.state.latency)
        if parts.path in ("/getImportStatus", "/importStatus"):
            self._status(parts.path, parse_qs(parts.query))
        elif parts.path == "/getFileUrlDeposit":
            self._deposit(parse_qs(parts.query))
        else:
            self._send(404, {"error": {"message": f"no route {parts.path}"}})

    def do_POST(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler names it
        parts = urlsplit(self.path)
        raw = self._body()
        if parts.path == "/_emulator/reset":
            self.state.reset()
            self._send(200, {"reset": True})
        elif parts.path == "/_emulator/faults":
            self._set_faults(raw)
        elif parts.path == "/_emulator/seed":
            self._seed(raw)
        elif parts.path == "/importFEC":
            time.sleep(self.state.latency)
            self._import_fec(raw)
        else:
            self._send(404, {"error": {"message": f"no route {parts.path}"}})

    def _set_faults(self, raw: bytes) -> None:
        try:
            self.state.set_faults(json.loads(raw or b"{}"))
        except ValueError as error:  # FaultError, or a body that is not JSON
            self._send(400, {"error": {"message": f"faults refused: {error}"}})
            return
        self._send(200, {"ok": True})

    def _seed(self, raw: bytes) -> None:
        """Imports that need no download, each finishing at its own time: for polling benchmarks."""
        try:
            order = json.loads(raw or b"{}")
            count, code = int(order["count"]), str(order.get("codeIbs", "DEMO001"))
            low, high = (float(value) for value in order.get("finish_within", [1, 2]))
        except (ValueError, KeyError, TypeError) as error:
            self._send(400, {"error": {"message": f"seed needs count and finish_within [min, max]: {error}"}})
            return
        now, ids = time.time(), []
        with self.state.lock:
            for _ in range(count):
                record = Import(str(uuid.uuid4()), code, "seeded", now, done=True, by="seed",
                                finish_at=now + self.state.random.uniform(low, high))
                self.state.imports[record.id] = record
                ids.append(record.id)
        self._send(200, {"ids": ids})

    def _control_get(self, path: str) -> None:
        now = time.time()
        if path == "/_emulator/deposits":  # reads Azurite: outside the lock
            with self.state.lock:
                deposits = list(self.state.deposits.values())
            self._send(200, [self.state.deposit_store.describe(deposit) for deposit in deposits])
            return
        with self.state.lock:
            if path == "/_emulator/requests":
                self._send(200, list(self.state.requests))
            elif path == "/_emulator/imports":
                views = [i.view(now, self.state.waiting, self.state.processing) for i in self.state.imports.values()]
                self._send(200, views)
            elif path == "/_emulator/health":
                self._send(200, {"ok": True})
            else:
                self._send(404, {"error": {"message": "unknown control path"}})


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: EmulatorState) -> None:
        super().__init__(address, Handler)
        self.state = state
