"""`make run`: Azurite, the Loop emulator (unless a real Loop is configured) and the app, until Ctrl-C.

- Azurite keeps its data in .azurite/ on the standard ports (10000-10002), so
  `UseDevelopmentStorage=true` reaches it; one already listening there is reused.
- The Loop emulator starts when LOOP_API_BASE_URL is unset or points at this machine and nothing
  listens there; otherwise the given Loop is used with LOOP_API_KEY and LOOP_SUBSCRIPTION_KEY.
- The app runs under `func start` when Azure Functions Core Tools is installed, otherwise under
  the local host runner (local/runner.py), which invokes the same registered functions.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from contextlib import ExitStack
from urllib.parse import urlsplit

from local.azurite import PROJECT_ROOT, start_azurite
from local.settings import EMULATOR_API_KEY, EMULATOR_SUBSCRIPTION_KEY, configure_logging, local_environment

log = logging.getLogger("local.run")
AZURITE_PORTS = (10000, 10001, 10002)
DEFAULT_EMULATOR_URL = "http://127.0.0.1:7081"


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_storage(stack: ExitStack, env: dict[str, str]) -> None:
    if env["AzureWebJobsStorage"] != "UseDevelopmentStorage=true":
        log.info("storage: using the configured AzureWebJobsStorage")
        return
    if _listening("127.0.0.1", AZURITE_PORTS[0]):
        log.info("storage: Azurite already listening on 127.0.0.1:%d, reusing it", AZURITE_PORTS[0])
        return
    (PROJECT_ROOT / ".azurite").mkdir(exist_ok=True)
    azurite = start_azurite(in_memory=False, ports=AZURITE_PORTS, log_file=PROJECT_ROOT / ".azurite" / "azurite.log")
    stack.callback(azurite.stop)
    log.info("storage: Azurite started (data in .azurite/, log in .azurite/azurite.log)")


def start_loop(stack: ExitStack, env: dict[str, str]) -> None:
    base_url = env.setdefault("LOOP_API_BASE_URL", DEFAULT_EMULATOR_URL)
    parts = urlsplit(base_url)
    local = parts.hostname in ("127.0.0.1", "localhost")
    if not local or _listening(parts.hostname or "127.0.0.1", parts.port or 80):
        log.info("Loop: using %s", base_url)
        return
    from local.loop_emulator import start_emulator_process  # noqa: PLC0415 - only when emulating

    env.setdefault("LOOP_API_KEY", EMULATOR_API_KEY)
    env.setdefault("LOOP_SUBSCRIPTION_KEY", EMULATOR_SUBSCRIPTION_KEY)
    emulator = start_emulator_process(
        env={
            "LOOP_EMULATOR_API_KEY": env["LOOP_API_KEY"],
            "LOOP_EMULATOR_SUBSCRIPTION_KEY": env["LOOP_SUBSCRIPTION_KEY"],
        },
        port=parts.port,
    )
    stack.callback(emulator.stop)
    log.info("Loop: emulator started on %s (dossiers DEMO001, DEMO002)", emulator.base_url)


def run_app(env: dict[str, str]) -> int:
    os.environ.update(env)
    from shared.runtime import current_pipeline  # noqa: PLC0415 - after the environment is set

    current_pipeline().ensure_import_container()
    func_tool = shutil.which("func")
    if func_tool:
        log.info("app: running under Azure Functions Core Tools (func start)")
        return subprocess.call([func_tool, "start"], cwd=PROJECT_ROOT, env=env)
    from azure.storage.blob import BlobServiceClient  # noqa: PLC0415

    import function_app  # noqa: PLC0415
    from local.runner import LocalHost  # noqa: PLC0415

    log.info("app: Core Tools not found, running the functions under the local host runner")
    host = LocalHost(function_app.app, BlobServiceClient.from_connection_string(env["AzureWebJobsStorage"]), env)
    signal.signal(signal.SIGTERM, lambda *_: host.stop_event.set())
    log.info("drop a file with: make drop FILE=../shared/fec-samples/<file> DOSSIER=DEMO001  (Ctrl-C to stop)")
    try:
        host.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        host.stop()
    return 0


def main() -> int:
    configure_logging()
    env = local_environment()
    with ExitStack() as stack:
        start_storage(stack, env)
        start_loop(stack, env)
        try:
            return run_app(env)
        except KeyboardInterrupt:
            return 0
        finally:
            log.info("stopping")


if __name__ == "__main__":
    sys.exit(main())
