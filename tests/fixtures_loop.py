"""Fixtures that run the Cegid Loop emulator as a real process, reached over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.loop_emulator.process import EmulatorProcess, start_emulator_process

# Distinctive fake keys: the secrets test searches every log line and ledger field for them.
TEST_LOOP_API_KEY = "test-loop-key-7f3a:test-secret-91bd"
TEST_LOOP_SUBSCRIPTION_KEY = "test-subscription-c4e2"


@pytest.fixture(scope="session")
def loop_emulator_process() -> Iterator[EmulatorProcess]:
    emulator = start_emulator_process(
        env={
            "LOOP_EMULATOR_API_KEY": TEST_LOOP_API_KEY,
            "LOOP_EMULATOR_SUBSCRIPTION_KEY": TEST_LOOP_SUBSCRIPTION_KEY,
            "LOOP_EMULATOR_WAITING_SECONDS": "0.2",
            "LOOP_EMULATOR_PROCESSING_SECONDS": "0.3",
        }
    )
    yield emulator
    emulator.stop()


@pytest.fixture
def loop_emulator(loop_emulator_process: EmulatorProcess) -> EmulatorProcess:
    """The session's emulator, with its requests, imports and faults cleared."""
    loop_emulator_process.reset()
    return loop_emulator_process
