"""One process as `make run` runs the app, for tests/test_telemetry_export.py: its environment set
by the test (APPLICATIONINSIGHTS_CONNECTION_STRING or not), `function_app` imported (which
configures telemetry exactly as under `make run`), files dropped and driven through the local host
runner until every import is final, then telemetry flushed. Prints one JSON line last.

Every connection or name lookup to anything but this machine is refused and reported, so a test
can prove nothing tried to reach the internet (statsbeat, live metrics, the SDK's control plane,
Entra ID).

Usage: python -m tests.export_scenario '<json: {"drops": [[path, name, dossier|null], ...],
"flush": bool, "timeout": seconds}>'
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", ""}
blocked: list[str] = []


def _is_local(host: Any) -> bool:
    text = str(host or "")
    if text in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def _guard_network() -> None:
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            blocked.append(f"connect {address[0]}:{address[1]}")
            raise OSError(f"export_scenario: refused connection to {address[0]}")
        return real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_local(host):
            blocked.append(f"resolve {host}")
            raise socket.gaierror(f"export_scenario: refused lookup of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


def main(config: dict[str, Any]) -> dict[str, Any]:
    from local.settings import configure_logging  # noqa: PLC0415 - after the guard

    configure_logging()
    from shared.flows.runtime import current_pipeline  # noqa: PLC0415

    pipeline = current_pipeline()  # the app's start-up, as local/run.py does before importing the app
    import function_app  # noqa: PLC0415 - configures telemetry from the environment
    from local.drop import drop_file  # noqa: PLC0415
    from local.host.host import LocalHost  # noqa: PLC0415
    from shared.ledger import states  # noqa: PLC0415
    from shared.platform import observability  # noqa: PLC0415

    started = time.monotonic()
    for path, name, dossier in config["drops"]:
        drop_file(pipeline.blob_service, pipeline.settings.container, Path(path), name=name, dossier=dossier)
    host = LocalHost(function_app.app, pipeline.blob_service, dict(os.environ), retry_delay=0.1)
    deadline = started + config.get("timeout", 60)
    records: dict[str, Any] = {}
    while time.monotonic() < deadline:
        host.scan_blobs()
        host.wait_idle()
        host.fire_timer()
        host.drain_queues()
        records = {r.blob_name: r for r in pipeline.ledger.all_records()}
        if len(records) == len(config["drops"]) and all(r.state in states.FINAL_STATES for r in records.values()):
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    if config.get("flush"):
        observability.flush()
    return {
        "mode": observability.configure_telemetry(),
        "elapsed": elapsed,
        "records": {name: {"state": str(r.state), "trace_parent": r.trace_parent, "etag": r.etag,
                           "request_id": r.request_id} for name, r in records.items()},
        "blocked": blocked,
    }


if __name__ == "__main__":
    _guard_network()
    result = main(json.loads(sys.argv[1]))
    print(json.dumps(result), flush=True)
    os._exit(0)  # no exit-time flush: an unreachable ingestion endpoint must not hold the process
