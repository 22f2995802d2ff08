"""Load run: 5,000 files dropped at once into Azurite, the Loop emulator failing 10% of calls.

Run: `make bench-load` (or `python -m bench.load_bench --files 5000 --transient-rate 0.1`).
Reports files, distinct blob versions, POSTs received by the emulator (all, and those that
created an import), imports created, time until every import is final, and peak memory.
The invariant checked: imports created by Loop == distinct blob versions, and every import final.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
from azure.storage.blob import BlobServiceClient

from local.azurite import start_azurite
from local.loop_emulator.process import start_emulator_process
from local.settings import configure_logging

CONTAINER = "api-import-ecrit"


def distinct_file(number: int) -> bytes:
    """A valid FEC of its own (a label carries the number), so no two files have the same bytes."""
    from tests.fec_factory import FecSpec  # noqa: PLC0415 - the tests' generator of valid files

    entries = [[("401000", 0, 12000 + n), ("607000", 10000 + n, 0), ("445660", 2000, 0)] for n in range(20)]
    return FecSpec(separator="|", entries=entries, label=f"Facture {number:05d}").render()


def peak_rss_mb(process: psutil.Process) -> float:
    try:
        info = process.memory_full_info()
    except psutil.Error:
        return 0.0
    return getattr(info, "uss", info.rss) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load_bench", description=__doc__)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--transient-rate", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    configure_logging(level=40)  # errors only: the run prints its own summary
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    azurite = start_azurite(in_memory=True)
    faults = {"transient_rate": args.transient_rate, "transient_status": 503, "seed": 7}
    emulator = start_emulator_process(env={
        "LOOP_EMULATOR_FAULTS": json.dumps(faults),
        "LOOP_EMULATOR_WAITING_SECONDS": "0.5", "LOOP_EMULATOR_PROCESSING_SECONDS": "0.5",
    })
    os.environ.update({
        "AzureWebJobsStorage": azurite.connection_string, "FEC_IMPORT_CONTAINER": CONTAINER,
        "LOOP_API_BASE_URL": emulator.base_url, "LOOP_API_KEY": "local-dev-key:local-dev-secret",
        "LOOP_SUBSCRIPTION_KEY": "local-dev-subscription", "STATUS_POLL_SCHEDULE": "*/1 * * * * *",
        "LEDGER_PURGE_SCHEDULE": "0 30 2 * * *", "STATUS_POLL_CONCURRENCY": "16",
        "STATUS_CHECK_QUEUE": "fec-status-checks",
        "STATUS_POLL_FIRST_SECONDS": "1", "STATUS_POLL_MAX_INTERVAL_SECONDS": "5",
    })
    try:
        return run(args, azurite, emulator)
    finally:
        emulator.stop()
        azurite.stop()


def run(args: argparse.Namespace, azurite, emulator) -> int:
    import function_app  # noqa: PLC0415 - after the environment is set
    from local.host.host import LocalHost  # noqa: PLC0415
    from shared.flows.runtime import current_pipeline  # noqa: PLC0415
    from shared.ledger import states  # noqa: PLC0415

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    pipeline = current_pipeline()
    pipeline.ensure_resources()
    host = LocalHost(function_app.app, service, os.environ, retry_delay=0.5, workers=8)
    processes = {
        "app": psutil.Process(), "azurite": psutil.Process(azurite.process.pid),
        "emulator": psutil.Process(emulator.process.pid),
    }
    peaks = dict.fromkeys(processes, 0.0)

    def upload(number: int) -> None:
        blob = service.get_blob_client(CONTAINER, f"DEMO001/{number:05d}-542107651FEC20241231.txt")
        blob.upload_blob(distinct_file(number), overwrite=True)

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(upload, range(args.files)))
    uploaded = time.monotonic() - started
    records = []
    while time.monotonic() - started < args.timeout:
        host.scan_blobs()
        host.fire_timer()
        host.drain_queues()
        for name, process in processes.items():
            peaks[name] = max(peaks[name], peak_rss_mb(process))
        records = list(pipeline.ledger.all_records())
        if len(records) >= args.files and all(r.state in states.FINAL_STATES for r in records):
            break
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    host.wait_idle(timeout=120)
    host.stop()
    requests_seen = emulator.requests()
    posts = [r for r in requests_seen if r["path"] == "/importFEC"]
    created = emulator.imports()
    by_state: dict[str, int] = {}
    for record in records:
        by_state[record.state] = by_state.get(record.state, 0) + 1
    versions = len({(r.blob_name, r.etag) for r in records})
    rows = [
        ("files dropped", args.files),
        ("distinct blob versions in the ledger", versions),
        ("POST /importFEC received (all)", len(posts)),
        ("  answered 503 by fault injection", sum(1 for p in posts if p["status"] == 503)),
        ("  answered 200 with a request id", sum(1 for p in posts if p["status"] == 200)),
        ("imports created by Loop", len(created)),
        ("status calls received", sum(1 for r in requests_seen if r["path"] != "/importFEC")),
        ("final states", ", ".join(f"{k}={v}" for k, v in sorted(by_state.items()))),
        ("upload time (s)", f"{uploaded:.1f}"),
        ("time until all final (s)", f"{elapsed:.1f}"),
        ("peak memory, app process (MB, USS)", f"{peaks['app']:.0f}"),
        ("peak memory, Azurite (MB, USS)", f"{peaks['azurite']:.0f}"),
        ("peak memory, emulator (MB, USS)", f"{peaks['emulator']:.0f}"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}")
    ok = len(created) == versions == args.files and by_state.get(states.COMPLETED, 0) == args.files
    print("RESULT:", "OK, one import per blob version, all completed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
