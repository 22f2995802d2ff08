"""Cegid's side of a deposit, in Azurite: getFileUrlDeposit answers `depositUrl`, a real write-only
SAS URL (create+write, short lived) on a blob of its own in the deposit container, and `uri`, to
give importFEC; an import naming that URI reads the file deposited there.

Settings (environment): LOOP_EMULATOR_DEPOSIT_STORAGE, the connection string of the storage
holding deposits (default UseDevelopmentStorage=true, the Azurite of `make run`);
LOOP_EMULATOR_DEPOSIT_CONTAINER, its container (default loop-deposits);
LOOP_EMULATOR_DEPOSIT_TTL_SECONDS, a deposit URL's life (600).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

from local.loop_emulator.imports import Import, Reading

if TYPE_CHECKING:
    from local.loop_emulator.state import EmulatorState


@dataclass
class Deposit:
    """One deposit URL given by getFileUrlDeposit: where the file goes and the URI that names it."""

    id: str
    filename: str
    container: str
    blob_name: str
    blob_url: str
    uri: str
    created: float
    expires: float
    upload_fault: str | None = None

    def names(self, uri: str) -> bool:
        """importFEC may name a deposit by its `uri`, or by its URL (with or without signature)."""
        return uri == self.uri or uri.split("?", 1)[0] == self.blob_url


class DepositStore:
    """Cegid's side of a deposit, in Azurite: a container of its own, a write-only SAS URL per file."""

    def __init__(self, env: dict[str, str]) -> None:
        self.connection = env.get("LOOP_EMULATOR_DEPOSIT_STORAGE") or "UseDevelopmentStorage=true"
        self.container = env.get("LOOP_EMULATOR_DEPOSIT_CONTAINER", "loop-deposits")
        self.ttl = float(env.get("LOOP_EMULATOR_DEPOSIT_TTL_SECONDS", "600"))
        self._service: BlobServiceClient | None = None

    @property
    def service(self) -> BlobServiceClient:
        if self._service is None:
            service = BlobServiceClient.from_connection_string(self.connection)
            with contextlib.suppress(ResourceExistsError):
                service.create_container(self.container)
            self._service = service
        return self._service

    def create(self, filename: str, upload_fault: str | None) -> tuple[Deposit, str]:
        """A new deposit and its signed URL (the URL is returned, never kept)."""
        deposit_id = uuid.uuid4().hex
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in filename)[-100:] or "file"
        container = self.container + ("-missing" if upload_fault == "missing_container" else "")
        blob_name = f"{deposit_id}/{safe}"
        blob_url = self.service.get_blob_client(container, blob_name).url
        now = time.time()
        deposit = Deposit(deposit_id, filename, container, blob_name, blob_url, f"loop-deposit:{blob_name}", now,
                          now + self.ttl, upload_fault)
        return deposit, f"{blob_url}?{self._sign(deposit, upload_fault)}"

    def _sign(self, deposit: Deposit, upload_fault: str | None) -> str:
        now = datetime.now(UTC)
        start, expiry = now - timedelta(minutes=5), now + timedelta(seconds=self.ttl)
        permission = BlobSasPermissions(create=True, write=True)  # write-only: the depositor reads nothing
        key = self.service.credential.account_key
        if upload_fault == "expired":
            start, expiry = now - timedelta(hours=2), now - timedelta(hours=1)
        elif upload_fault == "read_only":
            permission = BlobSasPermissions(read=True)
        elif upload_fault == "bad_signature":
            key = base64.b64encode(b"not the account key, not at all" * 2).decode()
        return generate_blob_sas(self.service.account_name, deposit.container, deposit.blob_name, account_key=key,
                                 permission=permission, start=start, expiry=expiry)

    def chunks(self, deposit: Deposit) -> Iterable[bytes]:
        """The deposited file, streamed (ResourceNotFoundError: nothing was uploaded)."""
        client = self.service.get_blob_client(deposit.container, deposit.blob_name)
        return client.download_blob(max_concurrency=1).chunks()

    def describe(self, deposit: Deposit) -> dict[str, Any]:
        view: dict[str, Any] = {"id": deposit.id, "filename": deposit.filename, "uri": deposit.uri,
                                "created": deposit.created, "expires": deposit.expires,
                                "upload_fault": deposit.upload_fault, "uploaded": False, "size": None,
                                "sha256": None}
        digest, size = hashlib.sha256(), 0
        try:
            for chunk in self.chunks(deposit):
                digest.update(chunk)
                size += len(chunk)
        except (ResourceNotFoundError, AzureError):
            return view
        return {**view, "uploaded": True, "size": size, "sha256": digest.hexdigest()}


def read_deposit_and_check(state: EmulatorState, record: Import) -> None:
    """Read the file deposited under the URI importFEC was given, hash it and parse it."""
    with state.lock:
        deposit = next((d for d in state.deposits.values() if d.names(record.url)), None)
    reading, failure = Reading(), None
    if deposit is None:
        failure = "no deposit has this URI"
    else:
        try:
            reading.feed(state.deposit_store.chunks(deposit))
        except ResourceNotFoundError:
            failure = "nothing was uploaded to this deposit"
        except AzureError as error:
            failure = f"deposit unreadable: {type(error).__name__}"
    reading.finish(record, failure)
