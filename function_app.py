"""Entry point loaded by the Functions host: the app and its two blueprints, nothing else."""

import azure.functions as func

from blob_trigger import bp as blob_trigger_bp
from status_timer import bp as status_timer_bp

app = func.FunctionApp()
app.register_functions(blob_trigger_bp)
app.register_functions(status_timer_bp)
