"""The outcome written back on the blob as index tags, for whoever looks at the container."""

from __future__ import annotations

import logging

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from shared.ledger.record import ImportRecord
from shared.platform.redaction import printable

log = logging.getLogger(__name__)


def write_outcome_tags(blob_service: BlobServiceClient, record: ImportRecord) -> None:
    """Blob index tags with the outcome. Tags, not metadata: they do not change the blob's ETag,
    so writing them cannot look like a new version to the trigger. Best effort: a tag that cannot
    be written is logged, the ledger stays the record of truth.

    Only on the version the record describes: the write carries that version's ETag
    (`set_blob_tags(etag=..., match_condition=IfNotModified)`, sent as `x-ms-blob-if-match`, which the
    service checks with the write itself, service version 2024-08-04 on), so a version uploaded since
    refuses it (412) and never shows another version's outcome or request id. One request: no read
    before, which could not close the window anyway. Azurite ignores that header (README, "How it works");
    the tests stand in for the service's check (tests/test_outcome_tags.py)."""
    blob = blob_service.get_blob_client(record.container, record.blob_name)
    tags = {"fecimport": str(record.state)}
    if record.request_id:
        tags["looprequestid"] = record.request_id
    if record.loop_status:
        tags["loopstatus"] = str(record.loop_status)
    try:
        blob.set_blob_tags(tags, etag=record.etag, match_condition=MatchConditions.IfNotModified)
    except ResourceModifiedError:
        log.info("%s not tagged: the blob is another version now", printable(record.blob))
    except (ResourceNotFoundError, HttpResponseError) as error:
        log.warning("could not tag %s with its outcome: %s", printable(record.blob), type(error).__name__)
