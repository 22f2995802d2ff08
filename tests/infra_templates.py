"""The Bicep templates, parsed once per test module with pycep-parser: `main` and `resources` fixtures
(a pytest plugin of tests/conftest.py) and `parse` for the other modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

INFRA = Path(__file__).resolve().parent.parent / "infra"


def parse(path: Path) -> dict[str, Any]:
    return BicepParser().parse(file_path=path)


@pytest.fixture(scope="module")
def main() -> dict[str, Any]:
    return parse(INFRA / "main.bicep")


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    return parse(INFRA / "modules" / "resources.bicep")
