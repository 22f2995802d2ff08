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
    if not SAMPLES_DIR.is_dir():
        pytest.fail(f"FEC samples not found at {SAMPLES_DIR}: shared/ must sit beside the project")
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
