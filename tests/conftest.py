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
