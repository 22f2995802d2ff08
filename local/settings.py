"""The environment of a local run: defaults, then local.settings.json, then the real environment."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DEFAULTS = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "BLOB_TRIGGER_SOURCE": "LogsAndContainerScan",
    "FEC_IMPORT_CONTAINER": "api-import-ecrit",
    "STATUS_POLL_SCHEDULE": "*/10 * * * * *",
    "LOOP_STATUS_PATH": "/getImportStatus",
    "SAS_TTL_HOURS": "24",
}
EMULATOR_API_KEY = "local-dev-key:local-dev-secret"
EMULATOR_SUBSCRIPTION_KEY = "local-dev-subscription"


def local_environment() -> dict[str, str]:
    env = dict(LOCAL_DEFAULTS)
    settings_file = PROJECT_ROOT / "local.settings.json"
    if settings_file.exists():
        env.update({k: str(v) for k, v in json.loads(settings_file.read_text()).get("Values", {}).items()})
    env.update(os.environ)
    return env


def configure_logging(level: int = logging.INFO) -> None:
    """Readable one-line logs; the Azure SDK's HTTP logging stays quiet (it would print URLs)."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("azure", "urllib3", "azure.core.pipeline.policies.http_logging_policy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
