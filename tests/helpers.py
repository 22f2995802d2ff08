"""Helpers the tests share (fixtures stay in conftest.py)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from local.paths import PROJECT_ROOT
from shared.ledger import states
from shared.platform.clock import utcnow

__all__ = ["PROJECT_ROOT", "MovableClock", "poll_until_final", "run_together", "unique_name", "upload"]


class MovableClock:
    """The real time plus an offset that tests move forward, instead of sleeping."""

    def __init__(self) -> None:
        self.offset = timedelta(0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self.offset += delta


def unique_name(prefix: str) -> str:
    """A table or container name no other test uses (letters and digits only)."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def environment_for_test(storage_connection: str, loop_base_url: str) -> dict[str, str]:
    """Settings for one test: its own container, tables, queue and report container; the test Loop keys."""
    from tests.fixtures_loop import TEST_LOOP_API_KEY, TEST_LOOP_SUBSCRIPTION_KEY  # noqa: PLC0415

    return {
        "AzureWebJobsStorage": storage_connection,
        "FEC_IMPORT_CONTAINER": unique_name("imports"),
        "IMPORT_LEDGER_TABLE": unique_name("ledger"),
        "DOSSIER_MAP_TABLE": unique_name("dossiers"),
        "IMPORT_REPORT_CONTAINER": unique_name("reports"),
        "REPORTS_CONTAINER": unique_name("droppers"),
        "LOOP_API_BASE_URL": loop_base_url,
        "LOOP_API_KEY": TEST_LOOP_API_KEY,
        "LOOP_SUBSCRIPTION_KEY": TEST_LOOP_SUBSCRIPTION_KEY,
        "LOOP_MAX_RETRIES": "2",
        "LOOP_READ_TIMEOUT_SECONDS": "2",
        "STATUS_POLL_SCHEDULE": "*/1 * * * * *",
        "LEDGER_PURGE_SCHEDULE": "0 30 2 * * *",
        "STATUS_POLL_FIRST_SECONDS": "0",
        "STATUS_CHECK_QUEUE": unique_name("checks"),
    }


def drive_host_once(host) -> None:
    """One round of the local host: scan the blobs, wait for their invocations, fire every timer, drain the queues."""
    host.scan_blobs()
    host.wait_idle()
    for timer in host.timer_functions:
        host.fire_timer(timer)
    host.drain_queues()


def run_host_until_final(host, count: int, timeout: float = 30.0, pause: float = 0.2) -> dict:
    """Drive the local host (blob scan, every timer, the queues) until `count` imports are final;
    return them by blob name."""
    from shared.flows.runtime import current_pipeline  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    records: dict = {}
    while time.monotonic() < deadline:
        drive_host_once(host)
        records = {r.blob_name: r for r in current_pipeline().ledger.all_records()}
        if len(records) == count and all(r.state in states.FINAL_STATES for r in records.values()):
            return records
        time.sleep(pause)
    raise AssertionError(f"not final after {timeout}s: {[(r.blob_name, r.state, r.error) for r in records.values()]}")


def upload(pipeline, name: str, data: bytes, **metadata: str):
    """Upload into the pipeline's watched container; return the BlobClient the trigger would get."""
    blob = pipeline.blob_service.get_blob_client(pipeline.settings.container, name)
    blob.upload_blob(data, overwrite=True, metadata=metadata or None)
    return blob


def poll_until_final(pipeline, record, timeout: float = 15.0):
    """Run timer ticks until the record is final; return it."""
    from shared.flows.poll import poll_imports  # noqa: PLC0415 - keeps this module light for non-pipeline tests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        poll_imports(pipeline)
        current = pipeline.ledger.get(*record.keys)
        if current.state in states.FINAL_STATES:
            return current
        time.sleep(0.2)
    raise AssertionError(f"{record.blob} still {current.state} after {timeout}s")


def wait_until_final_at_loop(emulator, timeout: float = 20.0) -> None:
    """Wait until every import the emulator holds shows status 3 or 4 (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(item["status"] in (3, 4) for item in emulator.imports()):
            return
        time.sleep(0.05)
    raise AssertionError(f"imports not final at the emulator after {timeout}s")


def run_together(count: int, action: Callable[[int], Any]) -> list[Any]:
    """Run `action(i)` in `count` threads released at once by a barrier; return results (or errors)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = action(index)
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


class ProcessDied(BaseException):
    """The process stopping where it stands (not an exception the code could catch and record)."""


def submit_dying_at_the_post(pipeline, monkeypatch, name: str, data: bytes):
    """Drop a file and deliver it, the process dying as it POSTs (the record left `submitting`); return
    the stored record."""
    import pytest  # noqa: PLC0415 - keeps this module light for non-pipeline tests

    from shared.flows.submit import submit_blob  # noqa: PLC0415

    def die(*_args, **_kwargs):
        raise ProcessDied

    with monkeypatch.context() as patch:
        patch.setattr(pipeline.loop, "import_fec", die)
        with pytest.raises(ProcessDied):
            submit_blob(pipeline, upload(pipeline, name, data))
    (record,) = pipeline.ledger.all_records()
    return record
