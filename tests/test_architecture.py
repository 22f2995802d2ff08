"""The allowed imports between packages hold, and the contracts that state them can fail.

The contracts live in one place, `[tool.importlinter]` in pyproject.toml (docs/architecture.md
explains them); these tests run import-linter on the project, then on a copy with one import that
breaks a rule, so a contract that no longer bites is noticed.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONFIG = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
SHARED_PACKAGES = sorted(p.name for p in (PROJECT_ROOT / "shared").iterdir() if (p / "__init__.py").is_file())


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=root, capture_output=True, text=True, timeout=120,
        check=False,
    )


def copy_of_the_project(tmp_path: Path) -> Path:
    for name in [*CONFIG["root_packages"], "pyproject.toml"]:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    return tmp_path


def test_the_project_keeps_every_contract() -> None:
    result = lint_imports(PROJECT_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONFIG['contracts'])} kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("shared/platform/probe.py", "from shared.ledger import states", "imports point down only"),
        ("shared/ledger/probe.py", "from shared.loop import client", "imports point down only"),
        ("shared/flows/probe.py", "from shared.cli import main", "imports point down only"),
        ("shared/fec/probe.py", "from shared.platform import redaction", "a library of its own"),
        ("shared/fec/probe.py", "import azure.storage.blob", "a library of its own"),
        ("shared/fec/probe.py", "from shared.language import wording", "a library of its own"),
        ("shared/language/probe.py", "from shared.flows import report_page", "imports point down only"),
        ("shared/language/probe.py", "import azure.storage.blob", "reads the rule registry and the settings only"),
        ("blob_trigger/probe.py", "from shared.ledger import states", "triggers call the flows"),
    ],
)
def test_an_import_against_the_rules_breaks_a_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    root = copy_of_the_project(tmp_path)
    (root / module).write_text(f"{line}\n")
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[1]
    assert contract in " ".join(broken.split())
    assert module.removesuffix(".py").replace("/", ".") in broken


def test_every_package_says_what_it_owns_and_what_it_may_import() -> None:
    for package in SHARED_PACKAGES:
        docstring = ast.get_docstring(ast.parse((PROJECT_ROOT / "shared" / package / "__init__.py").read_text()))
        assert docstring, f"shared/{package}/__init__.py has no docstring"
        assert "May import:" in docstring, f"shared/{package}/__init__.py does not say what it may import"


def test_every_package_of_shared_has_its_place_in_the_layers() -> None:
    layered = " ".join(next(c for c in CONFIG["contracts"] if c["id"] == "layers")["layers"])
    missing = [package for package in SHARED_PACKAGES if f"shared.{package}" not in layered]
    assert not missing, f"packages with no layer in pyproject.toml: {missing}"
