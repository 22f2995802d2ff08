"""Shared fixtures: a real Azurite per test session, in memory, on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local.azurite import Azurite, start_azurite

pytest_plugins = ["tests.fixtures_loop"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = PROJECT_ROOT.parent / "shared" / "fec-samples"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The real samples beside the project, when present. Every rule is also covered by files the
    tests generate or carry in tests/fixtures/, so a clone alone skips only these extra checks."""
    if not SAMPLES_DIR.is_dir():
        pytest.skip(f"FEC samples not found at {SAMPLES_DIR} (optional: tests/fixtures/ covers their quirks)")
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    instance = start_azurite(in_memory=True)
    yield instance
    instance.stop()


def unique_name(prefix: str) -> str:
    """A table or container name no other test uses (letters and digits only)."""
    import uuid  # noqa: PLC0415

    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture
def blob_service(azurite: Azurite):
    from azure.storage.blob import BlobServiceClient  # noqa: PLC0415

    return BlobServiceClient.from_connection_string(azurite.connection_string)


@pytest.fixture
def table_service(azurite: Azurite):
    from azure.data.tables import TableServiceClient  # noqa: PLC0415

    return TableServiceClient.from_connection_string(azurite.connection_string)


@pytest.fixture
def pipeline_env(azurite: Azurite, loop_emulator) -> dict[str, str]:
    """Settings for one test: its own container, tables and report container; the test Loop keys."""
    from tests.fixtures_loop import TEST_LOOP_API_KEY, TEST_LOOP_SUBSCRIPTION_KEY  # noqa: PLC0415

    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "FEC_IMPORT_CONTAINER": unique_name("imports"),
        "IMPORT_LEDGER_TABLE": unique_name("ledger"),
        "DOSSIER_MAP_TABLE": unique_name("dossiers"),
        "IMPORT_REPORT_CONTAINER": unique_name("reports"),
        "LOOP_API_BASE_URL": loop_emulator.base_url,
        "LOOP_API_KEY": TEST_LOOP_API_KEY,
        "LOOP_SUBSCRIPTION_KEY": TEST_LOOP_SUBSCRIPTION_KEY,
        "LOOP_MAX_RETRIES": "2",
        "LOOP_READ_TIMEOUT_SECONDS": "2",
        "STATUS_POLL_SCHEDULE": "*/1 * * * * *",
    }


@pytest.fixture
def pipeline(pipeline_env: dict[str, str]):
    from shared.loop_client import LoopClient, build_retry  # noqa: PLC0415
    from shared.pipeline import Pipeline  # noqa: PLC0415
    from shared.settings import load_settings  # noqa: PLC0415

    settings = load_settings(pipeline_env)
    loop = LoopClient(
        settings.loop_base_url,
        settings.loop_api_key,
        settings.loop_subscription_key,
        status_path=settings.loop_status_path,
        connect_timeout=2,
        read_timeout=settings.loop_read_timeout,
        retry=build_retry(settings.loop_retries, backoff_factor=0.05),
    )
    built = Pipeline.from_settings(settings, loop=loop)
    built.ensure_import_container()
    yield built
    loop.close()


def upload(pipeline, name: str, data: bytes, **metadata: str):
    """Upload into the pipeline's watched container; return the BlobClient the trigger would get."""
    blob = pipeline.blob_service.get_blob_client(pipeline.settings.container, name)
    blob.upload_blob(data, overwrite=True, metadata=metadata or None)
    return blob


def poll_until_final(pipeline, record, timeout: float = 15.0):
    """Run timer ticks until the record is final; return it."""
    import time  # noqa: PLC0415

    from shared import ledger as states  # noqa: PLC0415
    from shared.poll import poll_imports  # noqa: PLC0415

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
    import time  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(item["status"] in (3, 4) for item in emulator.imports()):
            return
        time.sleep(0.05)
    raise AssertionError(f"imports not final at the emulator after {timeout}s")
