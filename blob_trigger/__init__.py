"""Blob-triggered function: a thin adapter from the binding to shared.flows.submit."""

from __future__ import annotations

import os

import azure.functions as func
from azurefunctions.extensions.bindings import blob

from shared.flows.runtime import current_pipeline
from shared.flows.submit import submit_blob

bp = func.Blueprint()

# Event Grid on Azure (Flex Consumption requires it); container polling locally, where Azurite
# cannot send Event Grid events. Read at indexing time, like every binding expression.
SOURCES = {
    "EventGrid": (func.BlobSource.EVENT_GRID, "Azure, Flex Consumption"),
    "LogsAndContainerScan": (func.BlobSource.LOGS_AND_CONTAINER_SCAN, "polling, local runs"),
}
DEFAULT_SOURCE = "LogsAndContainerScan"


def trigger_source(value: str | None) -> func.BlobSource:
    """The BlobSource a BLOB_TRIGGER_SOURCE value names (case-insensitive; unset: polling).

    An unknown value is a start-up error: falling back to polling on Flex Consumption would index a
    trigger that never fires."""
    wanted = (value or "").strip() or DEFAULT_SOURCE
    for name, (source, _) in SOURCES.items():
        if wanted.lower() == name.lower():
            return source
    accepted = ", ".join(f"{name} ({where})" for name, (_, where) in SOURCES.items())
    raise ValueError(f"BLOB_TRIGGER_SOURCE={wanted!r} is not a blob trigger source: use one of {accepted}")


TRIGGER_SOURCE = trigger_source(os.environ.get("BLOB_TRIGGER_SOURCE"))


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
