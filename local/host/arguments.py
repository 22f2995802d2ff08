"""What the local host hands each function, as the host and the Python worker build it: the blob
trigger's SDK type through the binding extension's own converter (from the model binding data the
host sends), the queue trigger's func.QueueMessage through azure-functions' converter, and a
func.TimerRequest. The blob converter reads the connection from the process environment, as on Azure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.queue import QueueMessageInConverter
from azure.storage.queue import QueueMessage as QueueMessageItem
from azurefunctions.extensions.base import Datum, get_binding_registry

from local.host.bindings import BlobFunction, UnsupportedTriggerError


@dataclass(frozen=True)
class ModelBindingData:
    """The fields of the worker's ModelBindingData message that SDK-type converters read."""

    version: str
    source: str
    content_type: str
    content: str


class LocalTimerRequest(func.TimerRequest):
    def __init__(self, past_due: bool = False) -> None:
        self._past_due = past_due

    @property
    def past_due(self) -> bool:
        return self._past_due


def blob_trigger_argument(function: BlobFunction, blob_name: str) -> Any:
    """What the host hands the function for this blob: the binding extension's converter,
    found in the registry the worker reads, decoding the model binding data the host sends."""
    converter = get_binding_registry().get("blobTrigger")
    if converter is None:
        raise UnsupportedTriggerError("no converter registered for blobTrigger: is azurefunctions-extensions-"
                                      "bindings-blob imported by the function's module?")
    content = {"Connection": function.connection, "ContainerName": function.container, "BlobName": blob_name}
    data = ModelBindingData("1.0", "AzureStorageBlobs", "application/json", json.dumps(content))
    return converter.decode(Datum(data, "model_binding_data"), trigger_metadata={}, pytype=function.pytype)


def queue_trigger_argument(message: QueueMessageItem) -> func.QueueMessage:
    """What the worker hands a queue-triggered function: built by azure-functions' own converter
    from the payload and trigger metadata, as the host sends them."""
    metadata = {
        "Id": meta.Datum(message.id, "string"),
        "DequeueCount": meta.Datum(message.dequeue_count, "int"),
        "PopReceipt": meta.Datum(message.pop_receipt, "string"),
    }
    return QueueMessageInConverter.decode(meta.Datum(message.content, "bytes"), trigger_metadata=metadata)
