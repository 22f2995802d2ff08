"""Shared fixtures: a real Azurite per test session, in memory, on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local.azurite import Azurite, start_azurite
from local.paths import EXTERNAL_SAMPLES_DIR, SAMPLES_DIR
from tests.helpers import MovableClock, environment_for_test

pytest_plugins = ["tests.fixtures_loop", "tests.infra_templates"]



@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """Real exports carried in tests/samples/ (see its README)."""
    assert SAMPLES_DIR.is_dir(), f"{SAMPLES_DIR} is missing: the real samples are part of the repository"
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def odoo_sample() -> Path:
    """The Odoo sample (LGPL-3, not carried here) when ../shared/fec-samples sits beside the project;
    tests/fixtures/542107651FEC20210502.txt covers its quirks on a clone alone."""
    path = EXTERNAL_SAMPLES_DIR / "odoo_odoo_test_wizard_expected_542107651FEC20210502.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found (optional: tests/fixtures/542107651FEC20210502.txt covers its quirks)")
    return path


@pytest.fixture(scope="session")
def fec_bytes() -> bytes:
    """A valid, balanced FEC written for these tests: pipe-separated, accented labels, four entries."""
    from tests.fec_factory import FecSpec  # noqa: PLC0415

    entries = [
        [("401000", 0, 12000), ("607000", 10000, 0), ("445660", 2000, 0)],
        [("411000", 36000, 0), ("706000", 0, 30000), ("445710", 0, 6000)],
        [("512000", 36000, 0), ("411000", 0, 36000)],
        [("401000", 12000, 0), ("512000", 0, 12000)],
    ]
    return FecSpec(separator="|", entries=entries).render()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    instance = start_azurite(in_memory=True)
    yield instance
    instance.stop()


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
    """Settings for one test: its own container, tables, queue and report container; the test Loop keys."""
    return environment_for_test(azurite.connection_string, loop_emulator.base_url)


@pytest.fixture
def pipeline(pipeline_env: dict[str, str]):
    from shared.flows.pipeline import Pipeline  # noqa: PLC0415
    from shared.loop.client import LoopClient, build_retry  # noqa: PLC0415
    from shared.platform.settings import load_settings  # noqa: PLC0415

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
    built = Pipeline.from_settings(settings, loop=loop, clock=MovableClock())
    built.ensure_resources()
    yield built
    loop.close()


@pytest.fixture
def host_env(pipeline_env) -> dict[str, str]:
    """The environment `host` runs the app with (a test module overrides it for other settings)."""
    return pipeline_env


@pytest.fixture
def host(host_env, monkeypatch, blob_service):
    """The app's own functions under the local host, with this test's settings (`host_env`) in the
    environment and the app's start-up done (its tables and containers created)."""
    import function_app  # noqa: PLC0415 - indexes the app: only for the tests that run it
    from local.host.host import LocalHost  # noqa: PLC0415
    from shared.flows.runtime import current_pipeline, reset_pipeline  # noqa: PLC0415

    for name, value in host_env.items():
        monkeypatch.setenv(name, value)
    reset_pipeline()
    current_pipeline()
    local_host = LocalHost(function_app.app, blob_service, host_env, retry_delay=0.1)
    yield local_host
    local_host.stop()
    reset_pipeline()
