"""Fixtures for deposit-mode tests: an emulator process whose deposits live in the session's Azurite,
and the pipeline settings with LOOP_TRANSFER_MODE=deposit. Test modules import these names, which
override conftest's `loop_emulator` and extend its `pipeline_env`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.loop_emulator.process import EmulatorProcess, start_emulator_process
from tests.fixtures_loop import TEST_LOOP_API_KEY, TEST_LOOP_SUBSCRIPTION_KEY
from tests.helpers import unique_name


@pytest.fixture(scope="module")
def deposit_emulator(azurite) -> Iterator[EmulatorProcess]:
    emulator = start_emulator_process(
        env={
            "LOOP_EMULATOR_API_KEY": TEST_LOOP_API_KEY,
            "LOOP_EMULATOR_SUBSCRIPTION_KEY": TEST_LOOP_SUBSCRIPTION_KEY,
            "LOOP_EMULATOR_WAITING_SECONDS": "0.2",
            "LOOP_EMULATOR_PROCESSING_SECONDS": "0.3",
            "LOOP_EMULATOR_DEPOSIT_STORAGE": azurite.connection_string,
            "LOOP_EMULATOR_DEPOSIT_CONTAINER": unique_name("deposits"),
        }
    )
    yield emulator
    emulator.stop()


@pytest.fixture
def loop_emulator(deposit_emulator: EmulatorProcess) -> EmulatorProcess:
    """The module's deposit-capable emulator, with its requests, imports, deposits and faults cleared."""
    deposit_emulator.reset()
    return deposit_emulator


@pytest.fixture
def pipeline_env(pipeline_env: dict[str, str]) -> dict[str, str]:
    return {**pipeline_env, "LOOP_TRANSFER_MODE": "deposit"}


def calls(emulator: EmulatorProcess, path: str) -> list[dict]:
    return [request for request in emulator.requests() if request["path"] == path]


def uploaded(emulator: EmulatorProcess) -> list[dict]:
    """The deposits a file was really uploaded to (read back from Azurite by the emulator)."""
    return [deposit for deposit in emulator.deposits() if deposit["uploaded"]]
