"""`make run`: Azurite, the Loop emulator (unless a real Loop is configured) and the app, until Ctrl-C.

- Azurite keeps its data in .azurite/ on the standard ports (10000-10002), so
  `UseDevelopmentStorage=true` reaches it; one already listening there is reused.
- The Loop emulator starts when LOOP_API_BASE_URL is unset or points at this machine and nothing
  listens there; otherwise the given Loop is used with LOOP_API_KEY and LOOP_SUBSCRIPTION_KEY.
- The app runs under `func start` when Azure Functions Core Tools is installed, otherwise under
  the local host runner (local/host/), which invokes the same registered functions.
- Storage is probed once before anything else runs: a connection nothing answers, or that is
  refused, stops the run with one line naming the endpoint and what to check (exit code 1), as do
  bad settings and a trigger the local runner cannot run.
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

from local.azurite import start_azurite
from local.host.bindings import UnsupportedTriggerError
from local.host.host import LocalHost
from local.host.http_server import KEY_SETTING, PORT_SETTING, LocalHttpServer, local_key, local_port
from local.paths import AZURITE_WORKSPACE, PROJECT_ROOT
from local.settings import EMULATOR_API_KEY, EMULATOR_SUBSCRIPTION_KEY, configure_logging, local_environment
from shared.platform.settings import SettingsError, load_settings
from shared.platform.storage import StorageUnavailableError, blob_service_client, check_storage

log = logging.getLogger("local.run")
AZURITE_PORTS = (10000, 10001, 10002)
DEFAULT_EMULATOR_URL = "http://127.0.0.1:7081"


class StartupError(RuntimeError):
    """The app cannot start as configured; the message is the one line to show."""


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
    AZURITE_WORKSPACE.mkdir(exist_ok=True)
    azurite = start_azurite(in_memory=False, ports=AZURITE_PORTS, log_file=AZURITE_WORKSPACE / "azurite.log")
    stack.callback(azurite.stop)
    log.info("storage: Azurite started (data in .azurite/, log in .azurite/azurite.log)")


def start_loop(stack: ExitStack, env: dict[str, str]) -> None:
    base_url = env.setdefault("LOOP_API_BASE_URL", DEFAULT_EMULATOR_URL)
    parts = urlsplit(base_url)
    local = parts.hostname in ("127.0.0.1", "localhost")
    if not local or _listening(parts.hostname or "127.0.0.1", parts.port or 80):
        log.info("Loop: using %s", base_url)
        return
    from local.loop_emulator.process import start_emulator_process  # noqa: PLC0415 - only when emulating

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
    from shared.flows.runtime import current_pipeline  # noqa: PLC0415 - after the environment is set

    current_pipeline().ensure_resources()
    func_tool = shutil.which("func")
    if func_tool:
        log.info("app: running under Azure Functions Core Tools (func start)")
        return subprocess.call([func_tool, "start"], cwd=PROJECT_ROOT, env=env)

    try:
        import function_app  # noqa: PLC0415 - indexing reads the environment set above
    except ValueError as error:  # a binding setting the functions refuse at indexing (BLOB_TRIGGER_SOURCE)
        raise StartupError(str(error)) from None
    log.info("app: Core Tools not found, running the functions under the local host runner")
    host = LocalHost(function_app.app, blob_service_client(load_settings(env, require_loop=False)), env)
    http = start_http(host, env)
    signal.signal(signal.SIGTERM, lambda *_: host.stop_event.set())
    log.info("drop a file with: make drop FILE=tests/fixtures/123456789FEC20500930.txt DOSSIER=DEMO001 "
             "(Ctrl-C to stop)")
    try:
        host.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        http.stop()
        host.stop()
    return 0


def start_http(host: LocalHost, env: dict[str, str]) -> LocalHttpServer:
    """Serve the HTTP functions on LOCAL_HTTP_PORT; print the port and, once, the key (on the
    console, not in the log: it is this machine's own key)."""
    key, generated = local_key(env)
    try:
        server = LocalHttpServer(host.http_functions, key, local_port(env)).start()
    except (OSError, ValueError) as error:
        raise StartupError(f"HTTP functions: {error} (set {PORT_SETTING} to a free port)") from None
    print(f"HTTP functions on {server.base_url}/ (port {server.server.server_address[1]}): "
          + ", ".join(f"{f.name} {'|'.join(f.methods)} /api/{f.route}" for f in host.http_functions), flush=True)
    origin = f"generated for this run (set {KEY_SETTING} to keep one)" if generated else f"from {KEY_SETTING}"
    print(f"function key ({origin}): {key}  -> curl -H 'x-functions-key: <key>' {server.base_url}/imports",
          flush=True)
    return server


def run(env: dict[str, str]) -> int:
    with ExitStack() as stack:
        start_storage(stack, env)
        check_storage(load_settings(env, require_loop=False))
        start_loop(stack, env)
        try:
            return run_app(env)
        except KeyboardInterrupt:
            return 0
        finally:
            log.info("stopping")


def main() -> int:
    configure_logging()
    try:
        return run(local_environment())
    except (SettingsError, StorageUnavailableError, UnsupportedTriggerError, StartupError) as error:
        print(f"make run: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
