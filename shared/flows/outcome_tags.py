"""The outcome written back on the blob as index tags, for whoever looks at the container."""

from __future__ import annotations

import logging

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from shared.ledger.record import ImportRecord
from shared.platform.redaction import printable

log = logging.getLogger(__name__)


def write_outcome_tags(blob_service: BlobServiceClient, record: ImportRecord) -> None:
    """Blob index tags with the outcome. Tags, not metadata: they do not change the blob's ETag,
    so writing them cannot look like a new version to the trigger. Best effort: a tag that cannot
    be written is logged, the ledger stays the record of truth."""
    blob = blob_service.get_blob_client(record.container, record.blob_name)
    tags = {"fecimport": str(record.state)}
    if record.request_id:
        tags["looprequestid"] = record.request_id
    if record.loop_status:
        tags["loopstatus"] = str(record.loop_status)
    try:
        if blob.get_blob_properties().etag != record.etag:
            return
        blob.set_blob_tags(tags)
    except (ResourceNotFoundError, HttpResponseError) as error:
        log.warning("could not tag %s with its outcome: %s", printable(record.blob), type(error).__name__)
