"""`make demo`: a throw-away stack (Azurite in memory, the Loop emulator, the app under the local
runner), the project's FEC files (tests/fixtures/, each reproducing a real export's quirks)
dropped into it, and how each one ended."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from local.azurite import start_azurite
from local.drop import drop_file
from local.loop_emulator.process import start_emulator_process
from local.paths import PROJECT_ROOT
from local.settings import EMULATOR_API_KEY, EMULATOR_SUBSCRIPTION_KEY, configure_logging

CONTAINER = "api-import-ecrit"
FILES = PROJECT_ROOT / "tests" / "fixtures"
ODOO_LIKE = FILES / "542107651FEC20210502.txt"


def demo_files(workdir: Path) -> list[tuple[Path, str, str | None]]:
    """(file, blob name, dossier): every project file for DEMO001, plus three that must not go through."""
    files = [(path, path.name, "DEMO001") for path in sorted(FILES.iterdir()) if path.suffix.lower() == ".txt"]
    broken = workdir / "123456789FEC20231231.txt"
    broken.write_bytes(ODOO_LIKE.read_bytes().replace(b"|20210502|701100", b"|20210231|701100", 1))
    files.append((broken, "DEMO001/broken-date-123456789FEC20231231.txt", None))
    files.append((ODOO_LIKE, "no-dossier-542107651FEC20210502.txt", None))
    files.append((ODOO_LIKE, "DEMO002/unknown-to-loop.txt", "NOSUCH1"))
    return files


def main() -> int:
    configure_logging(logging.WARNING)
    azurite = start_azurite(in_memory=True)
    emulator = start_emulator_process(
        env={"LOOP_EMULATOR_WAITING_SECONDS": "1", "LOOP_EMULATOR_PROCESSING_SECONDS": "1"}
    )
    try:
        os.environ.update({
            "AzureWebJobsStorage": azurite.connection_string, "FEC_IMPORT_CONTAINER": CONTAINER,
            "LOOP_API_BASE_URL": emulator.base_url, "LOOP_API_KEY": EMULATOR_API_KEY,
            "LOOP_SUBSCRIPTION_KEY": EMULATOR_SUBSCRIPTION_KEY, "STATUS_POLL_SCHEDULE": "*/1 * * * * *",
            "LEDGER_PURGE_SCHEDULE": "0 30 2 * * *", "STATUS_CHECK_QUEUE": "fec-status-checks",
            "STATUS_POLL_FIRST_SECONDS": "0",
        })
        return run_demo(BlobServiceClient.from_connection_string(azurite.connection_string))
    finally:
        emulator.stop()
        azurite.stop()


def run_demo(service: BlobServiceClient) -> int:
    import function_app  # noqa: PLC0415 - after the environment is set
    from local.host.host import LocalHost  # noqa: PLC0415
    from shared.cli.imports import cut, print_table  # noqa: PLC0415
    from shared.flows.runtime import current_pipeline  # noqa: PLC0415
    from shared.ledger import states  # noqa: PLC0415

    pipeline = current_pipeline()
    pipeline.ensure_resources()
    host = LocalHost(function_app.app, service, os.environ, retry_delay=0.5)
    with tempfile.TemporaryDirectory() as workdir:
        files = demo_files(Path(workdir))
        for path, name, dossier in files:
            drop_file(service, CONTAINER, path, name=name, dossier=dossier)
        print(f"dropped {len(files)} files into {CONTAINER}; waiting for each to end...")
        deadline = time.monotonic() + 60
        records = []
        while time.monotonic() < deadline:
            host.scan_blobs()
            host.wait_idle(timeout=120)
            host.fire_timer()
            host.drain_queues()
            records = list(pipeline.ledger.all_records())
            if len(records) == len(files) and all(r.state in states.FINAL_STATES for r in records):
                break
            time.sleep(0.5)
    host.stop()
    rows = [(cut(r.blob_name, 60), r.code_ibs or "", r.state, str(r.loop_status or ""), cut(r.error or "", 90))
            for r in sorted(records, key=lambda r: r.blob_name)]
    print_table(("BLOB", "CODEIBS", "STATE", "LOOP", "REASON"), rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
