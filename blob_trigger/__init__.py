"""Blob-triggered function: a thin adapter from the binding to shared.submit."""

from __future__ import annotations

import os

import azure.functions as func
from azurefunctions.extensions.bindings import blob

from shared.runtime import current_pipeline
from shared.submit import submit_blob

bp = func.Blueprint()

# Event Grid on Azure (Flex Consumption requires it); container polling locally, where Azurite
# cannot send Event Grid events. Read at indexing time, like every binding expression.
_SOURCES = {
    "eventgrid": func.BlobSource.EVENT_GRID,
    "logsandcontainerscan": func.BlobSource.LOGS_AND_CONTAINER_SCAN,
}
TRIGGER_SOURCE = _SOURCES.get(
    os.environ.get("BLOB_TRIGGER_SOURCE", "LogsAndContainerScan").strip().lower(),
    func.BlobSource.LOGS_AND_CONTAINER_SCAN,
)


@bp.function_name("fec_blob_trigger")
@bp.blob_trigger(
    arg_name="client",
    path="%FEC_IMPORT_CONTAINER%/{name}",
    connection="AzureWebJobsStorage",
    source=TRIGGER_SOURCE,
)
def fec_blob_trigger(client: blob.BlobClient) -> None:
    """One delivery of one blob version. The SDK client streams the blob; the binding never
    loads it into memory. A SubmitRetryableError fails the invocation so the host retries it."""
    submit_blob(current_pipeline(), client)
