"""The runtime dependency floors: known-broken releases stay out, and each floor says why."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"

# Releases a fresh build must never pick, with the reason (see the comments in requirements.txt).
KNOWN_BROKEN = {
    # The blob trigger's source reaches the host as "EVENT_GRID" instead of "EventGrid".
    "azure-functions": ["1.20.0", "1.21.0", "1.21.1", "1.21.2"],
    # The BlobClient converter ignores AzureWebJobsStorage__accountName (identity-based storage).
    "azurefunctions-extensions-bindings-blob": ["1.1.0", "1.1.1"],
    # Older than what the blob extension itself requires.
    "azure-storage-blob": ["12.20.0", "12.23.1"],
    "azure-identity": ["1.15.0", "1.18.0"],
    # No Retry(backoff_max=, backoff_jitter=) (shared/loop/client.py).
    "urllib3": ["1.26.20"],
}
KNOWN_GOOD_FLOORS = {
    "azure-functions": "1.21.3",
    "azurefunctions-extensions-bindings-blob": "1.1.2",
    "azure-storage-blob": "12.24.0",
    "azure-identity": "1.19.0",
    "urllib3": "2.2.0",
}


def requirement_lines() -> list[tuple[str, list[str]]]:
    """(requirement, the comment lines just above it) for each requirement in requirements.txt."""
    found: list[tuple[str, list[str]]] = []
    comments: list[str] = []
    for raw in REQUIREMENTS.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#"):
            comments.append(line)
        elif line:
            found.append((line, comments))
            comments = []
    return found


def requirements() -> dict[str, Requirement]:
    parsed = [Requirement(line) for line, _ in requirement_lines()]
    return {requirement.name.lower(): requirement for requirement in parsed}


@pytest.mark.parametrize("name", sorted(KNOWN_BROKEN))
def test_known_broken_releases_are_excluded(name):
    specifier = requirements()[name].specifier
    allowed = [release for release in KNOWN_BROKEN[name] if specifier.contains(release, prereleases=False)]
    assert not allowed, f"requirements.txt lets {name} {allowed} in: raise the floor to {KNOWN_GOOD_FLOORS[name]}"


@pytest.mark.parametrize("name", sorted(KNOWN_GOOD_FLOORS))
def test_the_known_good_floor_itself_is_allowed(name):
    assert requirements()[name].specifier.contains(KNOWN_GOOD_FLOORS[name])


def test_every_requirement_has_a_floor_and_a_reason():
    for line, comments in requirement_lines():
        requirement = Requirement(line)
        assert any(spec.operator == ">=" for spec in requirement.specifier), f"{line}: no floor"
        assert any(spec.operator == "<" for spec in requirement.specifier), f"{line}: no ceiling"
        assert comments, f"{line}: say why the floor is what it is, in a comment just above"


def test_the_installed_environment_satisfies_requirements_txt():
    """The tests run against what a fresh build installs, not a stale venv."""
    for name, requirement in requirements().items():
        assert requirement.specifier.contains(version(name), prereleases=True), f"{name} {version(name)}"
