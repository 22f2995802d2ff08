"""The environment of a local run: defaults, then local.settings.json, then the real environment."""

from __future__ import annotations

import logging
import sys

from local.paths import PROJECT_ROOT
from shared.platform import observability
from shared.platform.settings import environment_with_local_settings

LOCAL_DEFAULTS = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "BLOB_TRIGGER_SOURCE": "LogsAndContainerScan",
    "FEC_IMPORT_CONTAINER": "api-import-ecrit",
    "STATUS_POLL_SCHEDULE": "*/10 * * * * *",
    "LEDGER_PURGE_SCHEDULE": "0 30 2 * * *",
    "STATUS_CHECK_QUEUE": "fec-status-checks",
    "STATUS_POLL_FIRST_SECONDS": "5",
    "LOOP_STATUS_PATH": "/getImportStatus",
    "SAS_TTL_HOURS": "24",
    # As on Azure (infra/modules/resources.bicep): see shared/platform/observability.py.
    **observability.TRACES_SAMPLER_SETTINGS,
}
EMULATOR_API_KEY = "local-dev-key:local-dev-secret"
EMULATOR_SUBSCRIPTION_KEY = "local-dev-subscription"


def local_environment() -> dict[str, str]:
    """Local defaults, completed by local.settings.json and the environment (which win)."""
    return {**LOCAL_DEFAULTS, **environment_with_local_settings(PROJECT_ROOT)}


def configure_logging(level: int = logging.INFO) -> None:
    """Readable one-line logs on stdout, so that stderr holds only a run's fatal one-line error; the
    Azure SDK's HTTP logging stays quiet (it would print URLs)."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S", stream=sys.stdout
    )
    for noisy in ("azure", "urllib3", "azure.core.pipeline.policies.http_logging_policy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
