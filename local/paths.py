"""Where the project is on this machine: the one definition local/ modules import."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOST_JSON = PROJECT_ROOT / "host.json"
AZURITE_WORKSPACE = PROJECT_ROOT / ".azurite"
SAMPLES_DIR = PROJECT_ROOT.parent / "shared" / "fec-samples"
