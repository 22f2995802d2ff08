"""The emulator as a process of its own (make run, tests, benchmarks): started, waited for, driven
through its control endpoints, stopped."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

from local.azurite import free_port, stop_process
from local.paths import PROJECT_ROOT

log = logging.getLogger("loop_emulator")
READY_LINE = "Loop emulator listening on"


@dataclass
class EmulatorProcess:
    """A running emulator process and helpers for its control endpoints."""

    process: subprocess.Popen
    base_url: str

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, f"{self.base_url}/_emulator/{path}", json=body, timeout=10)
        if response.status_code >= 400:  # the emulator's own message says what it refused
            raise requests.HTTPError(f"HTTP {response.status_code}: {response.text[:500]}", response=response)
        return response.json()

    def requests(self) -> list[dict[str, Any]]:
        return self._control("GET", "requests")

    def imports(self) -> list[dict[str, Any]]:
        return self._control("GET", "imports")

    def deposits(self) -> list[dict[str, Any]]:
        """Every deposit URL given, with whether a file was uploaded there, its size and sha256."""
        return self._control("GET", "deposits")

    def reset(self) -> None:
        self._control("POST", "reset")

    def seed(self, count: int, finish_within: tuple[float, float], code_ibs: str = "DEMO001") -> list[str]:
        """Create `count` imports that finish between the two bounds (seconds from now); their ids."""
        order = {"count": count, "codeIbs": code_ibs, "finish_within": list(finish_within)}
        return self._control("POST", "seed", order)["ids"]

    def set_faults(self, faults: dict[str, Any]) -> None:
        """Raise requests.HTTPError (400, naming what is accepted) for a fault the emulator refuses."""
        self._control("POST", "faults", faults)

    def wait_for_download(self, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.imports():
                if record["id"] == request_id and record["done"]:
                    return record
            time.sleep(0.05)
        raise TimeoutError(f"import {request_id} was not downloaded within {timeout}s")

    def stop(self) -> None:
        stop_process(self.process, timeout=5)


def start_emulator_process(env: dict[str, str] | None = None, port: int | None = None) -> EmulatorProcess:
    """Start `python -m local.loop_emulator` on `port` (a free one by default) and wait until ready."""
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "local.loop_emulator", "--port", str(port)],
        cwd=PROJECT_ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    line = process.stdout.readline() if process.stdout else ""
    if READY_LINE not in line:
        process.kill()
        raise RuntimeError(f"the Loop emulator did not start: {line.strip()}")
    threading.Thread(target=_forward_output, args=(process,), daemon=True).start()
    return EmulatorProcess(process, f"http://127.0.0.1:{port}")


def _forward_output(process: subprocess.Popen) -> None:
    for line in process.stdout or []:
        log.debug("%s", line.rstrip())
