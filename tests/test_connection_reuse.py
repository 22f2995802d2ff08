"""The clients a flow builds per file share one connection pool (shared.platform.storage.shared_transport):
submitting files one after another reuses connections to blob storage instead of opening new ones
(on Azure each new connection is a TLS handshake). Counted from urllib3's own log of new connections,
against real Azurite."""

from __future__ import annotations

import logging

from shared.flows.submit import submit_blob
from shared.ledger import states
from tests.helpers import upload

FILES = 8


def new_connections_to(caplog, port: int) -> int:
    return len([r for r in caplog.records
                if r.name == "urllib3.connectionpool" and r.getMessage().startswith("Starting new HTTP connection")
                and f":{port}" in r.getMessage()])


def test_submitting_files_one_after_another_reuses_blob_connections(pipeline, azurite, loop_emulator, fec_bytes,
                                                                     caplog):
    blobs = [upload(pipeline, f"DEMO001/{n}/123456789FEC20241231.txt", fec_bytes.replace(b"Facture", f"F{n}".encode()))
             for n in range(FILES)]
    submit_blob(pipeline, blobs[0])  # the pools' first connections
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    records = [submit_blob(pipeline, blob) for blob in blobs[1:]]
    assert [record.state for record in records] == [states.PENDING] * (FILES - 1)
    assert new_connections_to(caplog, azurite.blob_port) == 0  # one per file before the shared transport
