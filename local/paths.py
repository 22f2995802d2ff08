"""Where the project is on this machine: the one definition local/ modules import."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOST_JSON = PROJECT_ROOT / "host.json"
AZURITE_WORKSPACE = PROJECT_ROOT / ".azurite"
# Real exports carried in the repository (MIT), and the reference folder some machines have beside it.
SAMPLES_DIR = PROJECT_ROOT / "tests" / "samples"
EXTERNAL_SAMPLES_DIR = PROJECT_ROOT.parent / "shared" / "fec-samples"
