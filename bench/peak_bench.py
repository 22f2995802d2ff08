"""Year-end peak: N distinct valid files dropped at once into the running app (the local host with
its blob, queue and timer executors) against the Loop emulator answering every call after a latency
and finishing each import a fixed time after its POST.

Run: `make bench-peak` (or `python -m bench.peak_bench --files 3000 --latency-ms 100 --finish-seconds 30
--schedule "*/5 * * * * *" --uploaders 16 --first 30 --step 5`). Prints, per N: files submitted per
second, storage requests per submitted file and per status check (by service, counted in the SDK
clients' pipelines, local/request_counting.py), status calls per import, the lag between Loop
finishing an import and the ledger recording it (p50/p95/max, and in timer periods), the time until
every import is final, and the peak memory of the app process and of Azurite. `--restart-after S`
stops the host S seconds in, as Ctrl-C does, and starts a new one: the run then also shows that
every file still ends with one POST (POSTs = distinct contents = files); the redeliveries the new
host makes count in the requests per submitted file.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psutil
from azure.storage.blob import BlobServiceClient
from croniter import croniter

from bench.load_bench import distinct_file, peak_rss_mb
from local.azurite import start_azurite
from local.loop_emulator.process import start_emulator_process
from local.request_counting import RequestCounter, count_trigger_clients, counted_pipeline
from local.settings import configure_logging

CONTAINER = "api-import-ecrit"
FINAL_EVENTS = ("import.completed", "import.failed", "import.rejected", "import.submit_failed",
                "import.duplicate_content", "import.superseded")


class EventClock(logging.Handler):
    """When each import event was emitted (the ledger's one funnel), counted without reading the ledger."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.guard = threading.Lock()
        self.times: dict[str, list[float]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event_name", "")
        with self.guard:
            self.times.setdefault(event, []).append(time.monotonic())

    def count(self, *events: str) -> int:
        with self.guard:
            return sum(len(self.times.get(event, [])) for event in events)

    def moments(self, event: str) -> list[float]:
        with self.guard:
            return sorted(self.times.get(event, []))


@dataclass
class Peak:
    files: int
    uploaded_in: float = 0.0
    first_submitted: float = 0.0
    last_submitted: float = 0.0
    all_final: float = 0.0
    complete: bool = False
    posts: int = 0
    status_calls: int = 0
    lags: list[float] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    requests: dict[str, dict[str, int]] = field(default_factory=dict)
    peaks: dict[str, float] = field(default_factory=dict)
    restarted_at: float = 0.0
    distinct_contents: int = 0


def percentile(values: list[float], share: float) -> float:
    return values[min(int(len(values) * share), len(values) - 1)]


def environment(args: argparse.Namespace, azurite, emulator, files: int) -> dict[str, str]:
    return {
        "AzureWebJobsStorage": azurite.connection_string, "FEC_IMPORT_CONTAINER": CONTAINER,
        "IMPORT_LEDGER_TABLE": f"peak{files}", "STATUS_CHECK_QUEUE": f"peak-checks-{files}",
        "IMPORT_REPORT_CONTAINER": f"peak-reports-{files}",
        "LOOP_API_BASE_URL": emulator.base_url, "LOOP_API_KEY": "local-dev-key:local-dev-secret",
        "LOOP_SUBSCRIPTION_KEY": "local-dev-subscription", "STATUS_POLL_SCHEDULE": args.schedule,
        "LEDGER_PURGE_SCHEDULE": "0 30 2 * * *",
        "STATUS_POLL_FIRST_SECONDS": str(args.first), "STATUS_POLL_STEP_SECONDS": str(args.step),
        "STATUS_GAUGE_INTERVAL_SECONDS": "86400",
    }


def run_one(args: argparse.Namespace, azurite, emulator, files: int) -> Peak:
    os.environ.update(environment(args, azurite, emulator, files))
    import function_app  # noqa: PLC0415 - after the environment is set
    from local.host.host import LocalHost  # noqa: PLC0415
    from shared.flows.runtime import reset_pipeline, use_pipeline  # noqa: PLC0415
    from shared.ledger.ledger import Ledger  # noqa: PLC0415
    from shared.platform.settings import load_settings  # noqa: PLC0415

    emulator.reset()
    settings = load_settings()
    counter = RequestCounter()
    pipeline = counted_pipeline(settings, counter)
    pipeline.ensure_resources()
    use_pipeline(pipeline)
    count_trigger_clients(counter)
    events = EventClock()
    logging.getLogger("fec_import").addHandler(events)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    host = LocalHost(function_app.app, service, os.environ)
    processes = {"app": psutil.Process(), "azurite": psutil.Process(azurite.process.pid)}
    result = Peak(files, peaks=dict.fromkeys(processes, 0.0))
    counter.reset()
    host.start(args.scan_interval)
    started = time.monotonic()
    try:
        upload_all(service, files, args.uploaders)
        result.uploaded_in = time.monotonic() - started
        while time.monotonic() - started < args.timeout:
            for name, process in processes.items():
                result.peaks[name] = max(result.peaks[name], peak_rss_mb(process))
            if events.count(*FINAL_EVENTS) >= files:
                result.complete = True
                break
            if args.restart_after and not result.restarted_at and time.monotonic() - started >= args.restart_after:
                host = restarted(host, function_app.app, service, args.scan_interval)
                result.restarted_at = time.monotonic() - started
            time.sleep(1.0)
        result.all_final = time.monotonic() - started
    finally:
        host.stop()
        logging.getLogger("fec_import").removeHandler(events)
    submitted = events.moments("import.submitted")
    if submitted:
        result.first_submitted, result.last_submitted = submitted[0] - started, submitted[-1] - started
    collect(result, counter, emulator, Ledger.from_service(pipeline_tables(azurite), settings.ledger_table))
    reset_pipeline()
    return result


def restarted(host, app, service: BlobServiceClient, scan_interval: float):
    """Stop the host as Ctrl-C does (invocations in progress finish, the rest are dropped), then start
    a new one, which offers every blob again (the ledger answers for those already handled)."""
    from local.host.host import LocalHost  # noqa: PLC0415

    host.stop()
    again = LocalHost(app, service, os.environ)
    again.start(scan_interval)
    return again


def pipeline_tables(azurite):
    from azure.data.tables import TableServiceClient  # noqa: PLC0415

    return TableServiceClient.from_connection_string(azurite.connection_string)


def upload_all(service: BlobServiceClient, files: int, uploaders: int) -> None:
    def upload(number: int) -> None:
        # one folder a file, so each keeps the legal name (SIREN + FEC + closing date): a clean file
        blob = service.get_blob_client(CONTAINER, f"DEMO001/{number:05d}/542107651FEC20241231.txt")
        blob.upload_blob(distinct_file(number), overwrite=True)

    with ThreadPoolExecutor(uploaders) as pool:
        list(pool.map(upload, range(files)))


def collect(result: Peak, counter: RequestCounter, emulator, ledger) -> None:
    seen = emulator.requests()
    result.posts = sum(1 for r in seen if r["path"] == "/importFEC")
    result.status_calls = sum(1 for r in seen if r["path"] in ("/getImportStatus", "/importStatus"))
    imports = emulator.imports()
    result.distinct_contents = len({item.get("sha256") for item in imports})
    finished_at = {item["id"]: item["finished_at"] for item in imports}
    for record in ledger.all_records():
        result.states[str(record.state)] = result.states.get(str(record.state), 0) + 1
        if record.finished_at and record.request_id in finished_at:
            result.lags.append(record.finished_at.timestamp() - finished_at[record.request_id])
    result.lags.sort()
    for key, number in counter.snapshot().items():
        scope = result.requests.setdefault(key.scope, {})
        scope[key.service] = scope.get(key.service, 0) + number


def per(requests: dict[str, int], divisor: int) -> str:
    total = sum(requests.values())
    parts = ", ".join(f"{service} {number / max(divisor, 1):.1f}" for service, number in sorted(requests.items()))
    return f"{total / max(divisor, 1):.1f} ({parts})" if requests else "0"


def report(result: Peak, args: argparse.Namespace) -> None:
    period = periods_of(args.schedule)
    submitting = max(result.last_submitted - result.first_submitted, 0.001)
    lags = result.lags
    ticks = max(int(result.all_final / period), 1)  # the timer fires every period of the run
    rows = [
        ("files dropped / uploaders / upload time (s)",
         f"{result.files} / {args.uploaders} / {result.uploaded_in:.1f}"),
        ("first / last import submitted at (s)", f"{result.first_submitted:.1f} / {result.last_submitted:.1f}"),
        ("files submitted per second", f"{result.files / max(result.last_submitted, 0.001):.1f} "
                                       f"(between first and last: {result.files / submitting:.1f})"),
        ("POST /importFEC received / distinct contents", f"{result.posts} / {result.distinct_contents}"),
        ("host stopped and started again at (s)", f"{result.restarted_at:.1f}" if result.restarted_at else "-"),
        ("storage requests per submitted file", per(result.requests.get("blob-trigger", {}), result.files)),
        ("storage requests per status call", per(result.requests.get("queue-trigger", {}), result.status_calls)),
        ("storage requests per timer tick (run time / period)", per(result.requests.get("timer-trigger", {}), ticks)),
        ("status calls / per import", f"{result.status_calls} / {result.status_calls / result.files:.2f}"),
        ("imports recorded final", f"{len(lags)} of {result.files}"),
        ("lag after Loop finished, s: p50 / p95 / max",
         f"{percentile(lags, 0.5):.1f} / {percentile(lags, 0.95):.1f} / {lags[-1]:.1f}" if lags else "-"),
        ("  in timer periods: p95 / max",
         f"{percentile(lags, 0.95) / period:.2f} / {lags[-1] / period:.2f}" if lags else "-"),
        ("all final after (s)", f"{result.all_final:.0f}" + ("" if result.complete else " (timeout)")),
        ("final states", ", ".join(f"{k}={v}" for k, v in sorted(result.states.items()))),
        ("peak memory, app process (MB, USS)", f"{result.peaks['app']:.0f}"),
        ("peak memory, Azurite (MB, USS)", f"{result.peaks['azurite']:.0f}"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}")
    met = (result.complete and bool(lags) and percentile(lags, 0.95) <= 2 * period
           and result.status_calls <= 1.5 * result.files and result.posts == result.files
           and result.distinct_contents == result.files)
    print("RESULT:", "lag p95 within two timer periods, at most 1.5 status calls per import, one POST per file"
          if met else "target missed (see above)")


def periods_of(schedule: str) -> float:
    moments = croniter(schedule, second_at_beginning=True)
    first, second = moments.get_next(float), moments.get_next(float)
    return second - first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peak_bench", description=__doc__)
    parser.add_argument("--files", type=int, nargs="+", default=[3000])
    parser.add_argument("--latency-ms", type=int, default=100, help="Loop's answer time per call")
    parser.add_argument("--finish-seconds", type=float, default=30.0,
                        help="Loop finishes each import this long after its POST")
    parser.add_argument("--schedule", default="*/5 * * * * *", help="STATUS_POLL_SCHEDULE")
    parser.add_argument("--uploaders", type=int, default=16)
    parser.add_argument("--first", type=int, default=30, help="STATUS_POLL_FIRST_SECONDS")
    parser.add_argument("--step", type=int, default=5, help="STATUS_POLL_STEP_SECONDS")
    parser.add_argument("--scan-interval", type=float, default=1.0, help="the local host's blob scan interval")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--restart-after", type=float, default=0.0,
                        help="stop the host (as Ctrl-C does) this many seconds in and start a new one")
    args = parser.parse_args(argv)
    configure_logging(level=logging.ERROR)
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # more workers than pooled connections: harmless
    logging.getLogger("fec_import").setLevel(logging.INFO)
    logging.getLogger("fec_import").propagate = False
    azurite = start_azurite(in_memory=True)
    emulator = start_emulator_process(env={
        "LOOP_EMULATOR_LATENCY_MS": str(args.latency_ms),
        "LOOP_EMULATOR_WAITING_SECONDS": str(args.finish_seconds / 3),
        "LOOP_EMULATOR_PROCESSING_SECONDS": str(args.finish_seconds * 2 / 3),
    })
    ok = True
    try:
        for files in args.files:
            print(f"\n== {files} files, Loop latency {args.latency_ms} ms, finishing {args.finish_seconds:.0f} s "
                  f"after the POST, timer '{args.schedule}', first check {args.first} s, step {args.step} s ==")
            result = run_one(args, azurite, emulator, files)
            report(result, args)
            ok = ok and result.complete
    finally:
        emulator.stop()
        azurite.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
