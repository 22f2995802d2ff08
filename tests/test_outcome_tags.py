"""Outcome tags land only on the version they describe (shared/flows/outcome_tags.py), on Azurite and
the Loop emulator, with the window between the verdict and the tag write held open by a hook that
uploads a new version of the blob just before the tag write is sent.

Azure checks a tag write's `x-ms-blob-if-match` with the write; Azurite (3.37) ignores that header
on Set Blob Tags. `AzureTagCondition` stands in for the service: just before a tag write carrying the
header is sent, it asks Azurite for the blob under that same condition (a read Azurite does check)
and answers the tag write with that read's 412 when the ETag differs. A tag write without the
condition goes through untouched, as it would on Azure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from urllib.parse import unquote, urlparse

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobServiceClient

from shared.flows.submit import submit_blob
from shared.ledger import states
from tests.helpers import poll_until_final, upload, wait_until_final_at_loop

ROUNDS = 20


class AzureTagCondition(RequestsTransport):
    """The blob client's transport: runs `before_send` before each tag write, then refuses one whose
    `x-ms-blob-if-match` is not the blob's ETag any more, as Azure does (see the module's docstring).
    A transport because the blob clients take no extra pipeline policy."""

    def __init__(self, reader: BlobServiceClient, before_send: Callable[[], None]) -> None:
        super().__init__()
        self.reader = reader
        self.before_send = before_send
        self.refused = 0

    def send(self, request, **kwargs):
        if request.method != "PUT" or "comp=tags" not in request.url:
            return super().send(request, **kwargs)
        self.before_send()
        expected = request.headers.get("x-ms-blob-if-match")
        if expected:
            _, _account, container, name = urlparse(request.url).path.split("/", 3)
            blob = self.reader.get_blob_client(unquote(container), unquote(name))
            try:
                blob.get_blob_properties(etag=expected, match_condition=MatchConditions.IfNotModified)
            except ResourceModifiedError as refused:
                self.refused += 1
                return refused.response
        return super().send(request, **kwargs)


def with_tag_window(pipeline, azurite, before_send: Callable[[], None]) -> AzureTagCondition:
    """Give the pipeline a blob client whose tag writes go through `AzureTagCondition`."""
    transport = AzureTagCondition(BlobServiceClient.from_connection_string(azurite.connection_string), before_send)
    pipeline.blob_service = BlobServiceClient.from_connection_string(azurite.connection_string, transport=transport)
    return transport


def test_a_version_uploaded_while_a_rejection_is_tagged_never_gets_its_tags(pipeline, azurite, loop_emulator,
                                                                            fec_bytes):
    invalid = fec_bytes.replace(b"|20240202|401000", b"|20240231|401000", 1)
    newer: dict[str, object] = {}
    name = ""

    def upload_a_newer_version() -> None:
        newer["blob"] = upload(pipeline, name, fec_bytes)

    policy = with_tag_window(pipeline, azurite, upload_a_newer_version)
    for round_number in range(ROUNDS):
        name = f"DEMO001/tagged-{round_number}/123456789FEC20231231.txt"
        record = submit_blob(pipeline, upload(pipeline, name, invalid))
        assert record.state == states.REJECTED
        assert newer["blob"].get_blob_properties().etag != record.etag
        assert newer["blob"].get_blob_tags() == {}, round_number  # not `fecimport=rejected`
    assert policy.refused == ROUNDS


def test_a_version_uploaded_while_a_completion_is_tagged_never_gets_the_old_request_id(pipeline, azurite,
                                                                                      loop_emulator, fec_bytes):
    newer: dict[str, object] = {}
    name = ""

    def upload_a_newer_version() -> None:
        newer["blob"] = upload(pipeline, name, b"the next version, not yet handled")

    policy = with_tag_window(pipeline, azurite, upload_a_newer_version)
    for round_number in range(ROUNDS):
        name = f"DEMO001/completed-{round_number}/123456789FEC20241231.txt"
        data = fec_bytes.replace(b"Facture", f"Facture {round_number}".encode())
        record = submit_blob(pipeline, upload(pipeline, name, data))
        assert record.state == states.PENDING
        wait_until_final_at_loop(loop_emulator)
        pipeline.clock.advance(timedelta(seconds=pipeline.settings.status_first_check_seconds + 1))
        assert poll_until_final(pipeline, record).state == states.COMPLETED
        assert newer["blob"].get_blob_tags() == {}, round_number  # not `fecimport=completed` + the old id
    assert policy.refused == ROUNDS
