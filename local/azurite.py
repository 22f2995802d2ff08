"""Start and stop Azurite, the Azure Storage emulator, from the project's own npm install."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from local.paths import AZURITE_WORKSPACE, PROJECT_ROOT

AZURITE_BIN = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"

# The well-known development account of Azurite: public, documented, not a secret.
DEV_ACCOUNT_NAME = "devstoreaccount1"
DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connection_string(blob_port: int, queue_port: int, table_port: int) -> str:
    base = "http://127.0.0.1"
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={DEV_ACCOUNT_NAME};AccountKey={DEV_ACCOUNT_KEY};"
        f"BlobEndpoint={base}:{blob_port}/{DEV_ACCOUNT_NAME};"
        f"QueueEndpoint={base}:{queue_port}/{DEV_ACCOUNT_NAME};"
        f"TableEndpoint={base}:{table_port}/{DEV_ACCOUNT_NAME};"
    )


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited with code {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"Azurite did not listen on port {port} within {timeout:.0f}s")


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate a child process we started, and kill it if it does not stop in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Azurite:
    """A running Azurite process and the connection string that reaches it."""

    process: subprocess.Popen
    connection_string: str
    blob_port: int
    table_port: int

    def stop(self) -> None:
        stop_process(self.process)


def start_azurite(
    *,
    in_memory: bool = True,
    location: Path | None = None,
    ports: tuple[int, int, int] | None = None,
    log_file: Path | None = None,
    timeout: float = 30.0,
) -> Azurite:
    """Start Azurite with telemetry off; in memory on free ports unless told otherwise."""
    if not AZURITE_BIN.exists():
        raise RuntimeError(f"{AZURITE_BIN} is missing: run `npm ci` (the Makefile does it)")
    blob_port, queue_port, table_port = ports or (free_port(), free_port(), free_port())
    args = [
        str(AZURITE_BIN),
        "--silent",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--blobHost", "127.0.0.1", "--blobPort", str(blob_port),
        "--queueHost", "127.0.0.1", "--queuePort", str(queue_port),
        "--tableHost", "127.0.0.1", "--tablePort", str(table_port),
    ]
    if in_memory:
        args.append("--inMemoryPersistence")
    else:
        workspace = location or AZURITE_WORKSPACE
        workspace.mkdir(parents=True, exist_ok=True)
        args += ["--location", str(workspace)]
    output = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        args, stdout=output, stderr=subprocess.STDOUT, env=os.environ.copy(), start_new_session=True
    )
    try:
        for port in (blob_port, queue_port, table_port):
            _wait_for_port(port, process, timeout)
    except Exception:
        process.kill()
        raise
    return Azurite(process, connection_string(blob_port, queue_port, table_port), blob_port, table_port)
