"""The read side over a ledger of years: what a page, a lookup and a purge cost at 10,000 and 200,000
imports (issue #26).

Run: `make bench-ledger` (or `python -m bench.ledger_bench --sizes 10000 200000 --page 100`).
Seeds the ledger in a fresh in-memory Azurite, fast: records in entity-group transactions of one
partition each (the versions of one blob share a partition: `--versions` per name), the listing and
request-id rows in transactions of 100 in the `due` partition (Table Storage takes one PartitionKey
per transaction; Azurite would take more, Azure refuses them). Imports are spread over two years,
most final. Then, for each size, it counts table requests with the SDK pipeline's counting hook
(local/request_counting.py) and times: the first page, the next page (its nextLink), a filtered
page (a state and a dossier), a lookup by blob name and by request id, a purge of the imports past
the retention (a hook: see `measure_purge`), and for comparison the old list: every record read.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.data.tables import UpdateMode

from local.azurite import start_azurite
from local.request_counting import RequestCounter, counted_pipeline, counting_scope

DOSSIERS = 500
SPAN = timedelta(days=730)
_BATCH = 100  # Table Storage's limit of operations per entity-group transaction


@dataclass
class Measure:
    what: str
    requests: int
    seconds: float
    returned: int | str


def measure(counter: RequestCounter, what: str, action: Callable[[], Any]) -> tuple[Measure, Any]:
    counter.reset()
    started = time.perf_counter()
    with counting_scope("bench"):
        result = action()
    seconds = time.perf_counter() - started
    returned: int | str = len(result) if isinstance(result, list | tuple) else ("found" if result else "none")
    return Measure(what, counter.total("bench", "table"), seconds, returned), result


def seeded_records(container: str, start: int, count: int, versions: int, now: datetime) -> Iterator[list]:
    """Lists of the versions of one blob name (one partition each), `count` records in all; record n
    received at a time spread over SPAN (golden-ratio steps: every seeding covers the whole span),
    most of them final."""
    from shared.ledger import states  # noqa: PLC0415
    from shared.ledger.record import ImportRecord  # noqa: PLC0415

    finals = [states.COMPLETED] * 16 + [states.REJECTED, states.FAILED, states.DUPLICATE, states.UNKNOWN]
    for first in range(start, start + count, versions):
        name = f"D{first % DOSSIERS:05d}/{first // versions:07d}FEC20241231.txt"
        group = []
        for n in range(first, min(first + versions, start + count)):
            received = now - SPAN * ((n * 0.6180339887498949) % 1)
            state = finals[n % len(finals)]
            record = ImportRecord(container, name, f"0x{n:015X}", state=state, code_ibs=f"D{first % DOSSIERS:05d}",
                                  received_at=received, updated_at=received + timedelta(minutes=3),
                                  size=123_456, history="[]")
            if state in (states.COMPLETED, states.FAILED):
                record.request_id = str(uuid.UUID(int=n + 1))
                record.submitted_at, record.finished_at = received, received + timedelta(minutes=3)
                record.loop_status = 3 if state == states.COMPLETED else 4
            group.append(record)
        yield group


def seed(pipeline, start: int, count: int, versions: int, now: datetime, *, workers: int = 4) -> None:
    from shared.ledger.indexes import submit_together  # noqa: PLC0415
    from shared.ledger.record import to_entity  # noqa: PLC0415
    from shared.ledger.store import with_retries  # noqa: PLC0415

    table = pipeline.ledger.table
    groups = list(seeded_records(pipeline.settings.container, start, count, versions, now))
    index_operations = [op for group in groups for record in group for op in pipeline.ledger.listing.operations(record)]

    def put_records(group: list) -> None:  # upserts: a try again after a lost answer is harmless
        operations = [("upsert", to_entity(record), {"mode": UpdateMode.REPLACE}) for record in group]
        with_retries(lambda: table.submit_transaction(operations), "seeding records")

    def put_index(chunk: list) -> None:
        with_retries(lambda: submit_together(table, chunk), "seeding the index")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(put_records, groups))
        chunks = [index_operations[n:n + _BATCH] for n in range(0, len(index_operations), _BATCH)]
        list(pool.map(put_index, chunks))


def measure_purge(pipeline, counter: RequestCounter, max_records: int | None = None) -> Measure | None:
    """The retention's purge of the imports past LEDGER_RETENTION_DAYS (issue #26 item 3), one run
    within its budgets (its count budget lowered to `max_records` if given): table requests (every
    thread's: the purge works in a pool), time, records removed, and the blob requests beside (the
    reports next to the files looked up: none exist here). It deletes: run it last for a size."""
    from shared.flows.retention import PURGE_MAX_RECORDS, purge  # noqa: PLC0415

    limit = max_records or PURGE_MAX_RECORDS
    counter.reset()
    started = time.perf_counter()
    summary = purge(pipeline, max_records=limit)
    seconds = time.perf_counter() - started
    removed = sum(summary.removed.values())
    stopped = f", stopped by its {summary.stopped_by}" if summary.stopped_by else ""
    what = f"purge past {summary.retention_days} days (budget {limit:,})"
    return Measure(what, counter.total(None, "table"), seconds,
                   f"{removed:,} removed of {summary.examined:,} read, {counter.total(None, 'blob'):,} blob "
                   f"requests{stopped}")


def run_size(pipeline, counter: RequestCounter, size: int, page: int, old_list: bool, *,
             purge_records: int | None = None) -> list[Measure]:
    from shared.flows.import_api import get_import  # noqa: PLC0415
    from shared.flows.import_listing import ListQuery, list_page  # noqa: PLC0415
    from shared.ledger.indexes import LIST_PREFIX  # noqa: PLC0415

    results: list[Measure] = []
    first, got = measure(counter, f"first page of {page}", lambda: list_page(pipeline, ListQuery(), page))
    first.returned = len(got.records)
    results.append(first)
    following, got_next = measure(counter, f"next page of {page}",
                                  lambda: list_page(pipeline, ListQuery(), page, got.next_token))
    following.returned = len(got_next.records)
    results.append(following)
    index, _ = measure(counter, f"  of which the index range read ({page} rows)",
                       lambda: pipeline.ledger.listing.page(LIST_PREFIX, ListQuery().end, limit=page).rows)
    results.append(index)
    query = ListQuery(state="failed", code_ibs="D00010")
    filtered, got_filtered = measure(counter, f"page of {page}, state=failed&codeIbs=D00010",
                                     lambda: list_page(pipeline, query, page))
    filtered.returned = len(got_filtered.records)
    results.append(filtered)
    newest = got.records[0]
    by_name, _ = measure(counter, "lookup by blob name", lambda: get_import(pipeline, newest.blob_name)[0] == 200)
    results.append(by_name)
    request_id = next(record.request_id for record in got.records if record.request_id)
    by_id, _ = measure(counter, "lookup by request id", lambda: get_import(pipeline, request_id.upper())[0] == 200)
    results.append(by_id)
    if old_list:
        def old() -> list:
            return sorted(pipeline.ledger.all_records(), key=lambda r: r.received_at, reverse=True)[:page]

        scan, _ = measure(counter, "old list: every record read and sorted", old)
        results.append(scan)
    purge = measure_purge(pipeline, counter, purge_records)  # last: it deletes
    results.append(purge or Measure("purge of the imports past the retention", 0, 0.0, "not built yet"))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 200_000])
    parser.add_argument("--page", type=int, default=100)
    parser.add_argument("--versions", type=int, default=10, help="versions per blob name (records per partition)")
    parser.add_argument("--no-old-list", action="store_true", help="skip reading every record (the old list)")
    parser.add_argument("--purge-records", type=int, help="the purge's count budget (default: the timer's)")
    args = parser.parse_args(argv)
    from shared.platform.settings import load_settings  # noqa: PLC0415

    azurite = start_azurite(in_memory=True)
    try:
        env = {**os.environ, "AzureWebJobsStorage": azurite.connection_string, "IMPORT_LEDGER_TABLE": "ledgerbench",
               "FEC_IMPORT_CONTAINER": "fec-imports", "LOOP_API_BASE_URL": "http://127.0.0.1:9"}
        counter = RequestCounter()
        pipeline = counted_pipeline(load_settings(env, require_loop=False), counter)
        pipeline.ledger.ensure()
        now, seeded = datetime.now(UTC), 0
        for size in sorted(args.sizes):
            started = time.perf_counter()
            seed(pipeline, seeded, size - seeded, args.versions, now)
            print(f"\n{size:,} imports ({args.versions} versions per blob name): seeded {size - seeded:,} "
                  f"in {time.perf_counter() - started:.1f} s", flush=True)
            seeded = size
            print(f"  {'what':48} {'table requests':>14} {'time':>10} {'returned':>12}")
            for result in run_size(pipeline, counter, size, args.page, not args.no_old_list,
                                   purge_records=args.purge_records):
                print(f"  {result.what:48} {result.requests:>14,} {result.seconds * 1000:>8.0f} ms "
                      f"{result.returned!s:>12}", flush=True)
    finally:
        azurite.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
