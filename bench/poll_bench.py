"""Polling at year-end scale: N imports pending in Azurite, Loop (the emulator) answering each call
after a realistic latency and finishing each import at its own time.

Run: `make bench-poll` (or `python -m bench.poll_bench --pending 1000 10000 --latency-ms 200`).
For each N: seeds N pending imports (ledger records and due rows, and the matching imports in the
emulator), then runs the timer's scheduler every `--period` seconds and `--workers` queue workers
(one instance's worth: host.json batchSize + newBatchThreshold) until every import Loop finished is
recorded final. Reports, per tick: due-index entities read, messages enqueued, tick duration; and
overall: table requests and entities read, Loop status calls, and how long after Loop finished each
import the ledger recorded it (in schedule periods). A first tick with nothing due shows what an idle
tick costs whatever the pending count.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.data.tables import TableClient

from local.azurite import start_azurite
from local.loop_emulator.process import start_emulator_process
from local.settings import configure_logging


class CountingPolicy(SansIOHTTPPolicy):
    """Counts requests and the entities their answers hold (the SDK's own pipeline, no guessing)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.entities = 0

    def on_response(self, request, response) -> None:
        entities = 0
        if request.http_request.method == "GET" and response.http_response.status_code == 200:
            body = response.http_response.text()
            if body.startswith("{"):
                payload = json.loads(body)
                entities = len(payload["value"]) if "value" in payload else 1
        with self.lock:
            self.requests += 1
            self.entities += entities

    def snapshot(self) -> tuple[int, int]:
        with self.lock:
            return self.requests, self.entities


@dataclass
class Tick:
    entities: int
    enqueued: int
    seconds: float


@dataclass
class Run:
    pending: int
    idle_tick_entities: int = 0
    idle_tick_requests: int = 0
    ticks: list[Tick] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    status_calls: int = 0
    table_requests: int = 0
    table_entities: int = 0
    seconds: float = 0.0
    complete: bool = False


def seed(pipeline, emulator, count: int, finish_within: tuple[float, float]) -> None:
    """`count` pending records with their due rows, pointing at as many emulator imports. Written
    directly (as the ledger would after `record_request_id`): submitting 10,000 real files would
    measure the submit flow, not polling."""
    from shared.ledger import states  # noqa: PLC0415
    from shared.ledger.record import ImportRecord, to_entity  # noqa: PLC0415

    ids = emulator.seed(count, finish_within)
    now = pipeline.clock()
    first = timedelta(seconds=pipeline.settings.status_first_check_seconds)

    def write(number: int) -> None:
        record = ImportRecord("api-import-ecrit", f"DEMO001/{number:06d}.txt", f'"0x{number:08X}"', size=1,
                              state=states.PENDING, code_ibs="DEMO001", request_id=ids[number],
                              received_at=now, submitted_at=now, updated_at=now,
                              next_poll_at=now + first * (number / count))
        pipeline.ledger.table.create_entity(to_entity(record))
        pipeline.ledger.watch_index.watch(record)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(write, range(count)))


def idle_tick_cost(pipeline, counter: CountingPolicy) -> tuple[int, int]:
    """Requests and entities of a tick's read when nothing is due (an hour ago, nothing was)."""
    requests_before, entities_before = counter.snapshot()
    pipeline.ledger.watched_entries(due_by=datetime.now(UTC) - timedelta(hours=1), limit=5000)
    requests_after, entities_after = counter.snapshot()
    return requests_after - requests_before, entities_after - entities_before


def start_workers(pipeline, count: int, stop: threading.Event) -> list[threading.Thread]:
    """Queue workers, as the queue trigger runs them: receive, check one import, delete."""
    from shared.flows.poll import check_import, row_of_message  # noqa: PLC0415

    queue = pipeline.status_queue

    def worker() -> None:
        while not stop.is_set():
            messages = list(queue.receive_messages(max_messages=32, visibility_timeout=60))
            if not messages:
                stop.wait(0.2)
                continue
            for message in messages:
                check_import(pipeline, row_of_message(message.content.decode()))
                queue.delete_message(message.id, message.pop_receipt)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def run_one(args: argparse.Namespace, azurite, emulator, count: int) -> Run:
    from shared.flows.pipeline import Pipeline  # noqa: PLC0415
    from shared.flows.poll import schedule_due_checks  # noqa: PLC0415
    from shared.ledger.ledger import Ledger  # noqa: PLC0415
    from shared.platform.settings import load_settings  # noqa: PLC0415

    env = {
        **os.environ, "IMPORT_LEDGER_TABLE": f"pollbench{count}", "STATUS_CHECK_QUEUE": f"pollbench{count}",
        "STATUS_POLL_FIRST_SECONDS": str(args.first), "STATUS_POLL_MAX_INTERVAL_SECONDS": str(args.ceiling),
        "STATUS_POLL_CONCURRENCY": str(args.workers), "STATUS_GAUGE_INTERVAL_SECONDS": "86400",
    }
    settings = load_settings(env)
    counter = CountingPolicy()
    pipeline = Pipeline.from_settings(settings)
    pipeline.ledger = Ledger(
        TableClient.from_connection_string(azurite.connection_string, settings.ledger_table,
                                           per_call_policies=[counter]),
        pipeline.clock,
    )
    pipeline.ensure_resources()
    observer = Ledger(TableClient.from_connection_string(azurite.connection_string, settings.ledger_table))
    result = Run(count)
    emulator.reset()
    emulator.set_faults({"latency_ms": args.latency_ms})
    seed(pipeline, emulator, count, (args.first * 2, args.first * 2 + args.spread))
    calls_before = len([r for r in emulator.requests() if r["path"] == "/getImportStatus"])

    result.idle_tick_requests, result.idle_tick_entities = idle_tick_cost(pipeline, counter)
    stop = threading.Event()
    queue = pipeline.status_queue
    threads = start_workers(pipeline, args.workers, stop)
    started = time.monotonic()
    table_before = counter.snapshot()
    try:
        while time.monotonic() - started < args.timeout:
            tick_started = time.monotonic()
            summary = schedule_due_checks(pipeline, queue.send_message)
            enqueued = summary.outcomes.get("enqueued", 0)
            result.ticks.append(Tick(enqueued, enqueued, time.monotonic() - tick_started))
            if observer.watched_entries(limit=1) == []:
                result.complete = True
                break
            time.sleep(max(args.period - (time.monotonic() - tick_started), 0))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    result.seconds = time.monotonic() - started
    table_after = counter.snapshot()
    result.table_requests = table_after[0] - table_before[0]
    result.table_entities = table_after[1] - table_before[1]
    result.status_calls = len([r for r in emulator.requests() if r["path"] == "/getImportStatus"]) - calls_before
    finished_at = {item["id"]: item["finished_at"] for item in emulator.imports()}
    for record in observer.all_records():
        if record.finished_at and record.request_id in finished_at:
            result.lags.append(record.finished_at.timestamp() - finished_at[record.request_id])
    return result


def report(run: Run, args: argparse.Namespace) -> None:
    busy = [tick for tick in run.ticks if tick.enqueued]
    lags = sorted(run.lags)
    rows = [
        ("pending imports", run.pending),
        ("idle tick: table requests / entities read", f"{run.idle_tick_requests} / {run.idle_tick_entities}"),
        ("ticks (every period)", len(run.ticks)),
        ("messages enqueued per busy tick: median / max",
         f"{statistics.median(t.enqueued for t in busy):.0f} / {max(t.enqueued for t in busy)}" if busy else "-"),
        ("due rows read per tick (those enqueued; at most one page of 1,000 more): median / max",
         f"{statistics.median(t.entities for t in run.ticks):.0f} / {max(t.entities for t in run.ticks)}"),
        ("tick duration, s: median / max",
         f"{statistics.median(t.seconds for t in run.ticks):.2f} / {max(t.seconds for t in run.ticks):.2f}"),
        ("Loop status calls (all) / per import", f"{run.status_calls} / {run.status_calls / run.pending:.1f}"),
        ("table requests / entities read (whole run, per status call)",
         f"{run.table_requests} / {run.table_entities} ({run.table_requests / max(run.status_calls, 1):.1f} / "
         f"{run.table_entities / max(run.status_calls, 1):.1f})"),
        ("imports recorded final", f"{len(lags)} of {run.pending}"),
        ("lag after Loop finished, s: median / p95 / max",
         f"{lags[len(lags) // 2]:.1f} / {lags[int(len(lags) * 0.95)]:.1f} / {lags[-1]:.1f}" if lags else "-"),
        ("  in schedule periods: p95 / max",
         f"{lags[int(len(lags) * 0.95)] / args.period:.2f} / {lags[-1] / args.period:.2f}" if lags else "-"),
        ("time until all final, s", f"{run.seconds:.0f}"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}")
    within = bool(lags) and lags[-1] <= 2 * args.period
    print("RESULT:", "every finished import recorded within two schedule periods" if within and run.complete
          else "target missed (see lag)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.poll_bench", description=__doc__)
    parser.add_argument("--pending", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--latency-ms", type=int, default=200, help="Loop's answer time per call")
    parser.add_argument("--period", type=float, default=60.0, help="the timer's schedule period, seconds (Azure: 60)")
    parser.add_argument("--first", type=int, default=30, help="STATUS_POLL_FIRST_SECONDS")
    parser.add_argument("--ceiling", type=int, default=60, help="STATUS_POLL_MAX_INTERVAL_SECONDS")
    parser.add_argument("--spread", type=float, default=120.0, help="Loop finishes imports over this many seconds")
    parser.add_argument("--workers", type=int, default=48,
                        help="queue workers: host.json batchSize + newBatchThreshold (24) per instance, 2 instances")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)
    configure_logging(level=logging.ERROR)
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # more workers than pooled connections: harmless
    azurite = start_azurite(in_memory=True)
    emulator = start_emulator_process()
    os.environ.update({
        "AzureWebJobsStorage": azurite.connection_string, "LOOP_API_BASE_URL": emulator.base_url,
        "LOOP_API_KEY": "local-dev-key:local-dev-secret", "LOOP_SUBSCRIPTION_KEY": "local-dev-subscription",
    })
    try:
        for count in args.pending:
            print(f"\n== {count} pending, Loop latency {args.latency_ms} ms, period {args.period:.0f} s, "
                  f"{args.workers} workers ==")
            report(run_one(args, azurite, emulator, count), args)
    finally:
        emulator.stop()
        azurite.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
