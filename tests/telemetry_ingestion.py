"""A local stand-in for Application Insights' ingestion service, and a black hole.

`Ingestion` answers `POST /v2.1/track` as the service does (itemsReceived / itemsAccepted) and
keeps every envelope the exporter sent, so tests assert on what actually left the process.
`BlackHole` accepts connections and never answers: the worst an unreachable endpoint can do.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INSTRUMENTATION_KEY = "00000000-0000-0000-0000-0000000000fe"


def connection_string(port: int) -> str:
    """Pointed at this machine for ingestion and live metrics alike."""
    endpoint = f"http://127.0.0.1:{port}/"
    return f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint={endpoint};LiveEndpoint={endpoint}"


class Ingestion:
    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.raw: list[bytes] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding", "").lower() == "gzip":
                    body = gzip.decompress(body)
                items = json.loads(body) if body.strip().startswith(b"[") else []
                with owner._lock:
                    owner.paths.append(self.path)
                    owner.raw.append(body)
                    owner.envelopes.extend(items)
                answer = json.dumps({"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(answer.encode())

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def of_type(self, base_type: str) -> Iterator[dict[str, Any]]:
        """Envelopes whose data is `base_type` (MessageData, RemoteDependencyData, RequestData,
        MetricData, ExceptionData)."""
        with self._lock:
            items = list(self.envelopes)
        return (e for e in items if e.get("data", {}).get("baseType") == base_type)


class BlackHole:
    """Accepts connections and never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(connection)

    def stop(self) -> None:
        self.listener.close()
        for connection in self.held:
            connection.close()
