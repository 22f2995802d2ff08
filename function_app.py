"""Entry point loaded by the Functions host: telemetry, the app and its three blueprints, nothing else."""

import azure.functions as func

from blob_trigger import bp as blob_trigger_bp
from http_api import bp as http_api_bp
from shared.platform.observability import configure_telemetry
from shared.platform.settings import environment_with_local_settings
from status_timer import bp as status_timer_bp

# On Azure the Python worker has configured OpenTelemetry already and this keeps it; elsewhere it
# makes the worker's call itself when APPLICATIONINSIGHTS_CONNECTION_STRING is set (shared/platform/observability.py).
configure_telemetry(environment_with_local_settings())

app = func.FunctionApp()
app.register_functions(blob_trigger_bp)
app.register_functions(status_timer_bp)
app.register_functions(http_api_bp)
