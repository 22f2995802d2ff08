"""Entry point loaded by the Functions host: the app and its two blueprints, nothing else."""

import logging

import azure.functions as func

from blob_trigger import bp as blob_trigger_bp
from status_timer import bp as status_timer_bp


class _NoUnusedAuthLevelWarning(logging.Filter):
    """azure-functions warns at indexing that an auth level is unused when an app has no HTTP
    function; this app has none on purpose, and the warning would read like a fault to ops."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Auth level is not applied")


logging.getLogger().addFilter(_NoUnusedAuthLevelWarning())

app = func.FunctionApp()
app.register_functions(blob_trigger_bp)
app.register_functions(status_timer_bp)
