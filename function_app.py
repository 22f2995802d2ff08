"""Entry point loaded by the Functions host: telemetry, the app and its two blueprints, nothing else."""

import logging

import azure.functions as func

from blob_trigger import bp as blob_trigger_bp
from shared.platform.observability import configure_telemetry
from shared.platform.settings import environment_with_local_settings
from status_timer import bp as status_timer_bp


class _NoUnusedAuthLevelWarning(logging.Filter):
    """azure-functions warns at indexing that an auth level is unused when an app has no HTTP
    function; this app has none on purpose, and the warning would read like a fault to ops."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Auth level is not applied")


logging.getLogger().addFilter(_NoUnusedAuthLevelWarning())
# On Azure the Python worker has configured OpenTelemetry already and this keeps it; elsewhere it
# makes the worker's call itself when APPLICATIONINSIGHTS_CONNECTION_STRING is set (shared/platform/observability.py).
configure_telemetry(environment_with_local_settings())

app = func.FunctionApp()
app.register_functions(blob_trigger_bp)
app.register_functions(status_timer_bp)
