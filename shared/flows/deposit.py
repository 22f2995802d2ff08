"""How Loop gets a file: a SAS URL on our snapshot (`sas`), or an upload to Loop's deposit URL (`deposit`).

`deposit` (LOOP_TRANSFER_MODE=deposit) lets the storage account stay closed to the internet: the app
asks getFileUrlDeposit for a signed URL on Cegid's side, streams the validated snapshot there, and
importFEC gets the URI. The upload goes in bounded blocks: through the blob SDK when the deposit URL
is an Azure blob SAS URL (Put Block / Put Block List), as one streamed HTTP PUT otherwise. The bytes
sent are hashed on the way and must match the sha256 computed at validation.

All of it happens before the ETag-guarded move to `submitting`: a deposit has no effect in Loop
until importFEC names it, and each try gets a fresh deposit URL, so uploading again is harmless. A
failure here (Loop unreachable, upload refused or cut) is a DepositError, recorded and retried like
any failure before the POST; Loop refusing the deposit call closes the import (DepositRefusedError).
The deposit URL is never logged, stored or shown: records keep the URI without its query, redacted.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from azure.core.exceptions import AzureError, HttpResponseError
from azure.storage.blob import BlobClient, StorageStreamDownloader
from opentelemetry.instrumentation.utils import suppress_http_instrumentation, suppress_instrumentation

from shared.flows.pipeline import Pipeline
from shared.flows.snapshot_validation import download_client
from shared.ledger import states
from shared.ledger.record import ImportRecord
from shared.ledger.states import Transition
from shared.loop.client import LoopAuthError, LoopError, LoopRejectedError
from shared.platform.redaction import protect_logger

SAS_MODE, DEPOSIT_MODE = "sas", "deposit"
MAX_FILENAME_LENGTH = 128
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")
# Libraries that write request URLs in their log records (urllib3: every request line at DEBUG).
for _logger in ("urllib3.connectionpool", "azure.core.pipeline.policies.http_logging_policy"):
    protect_logger(_logger)


class DepositError(RuntimeError):
    """The deposit failed before any POST (Loop unreachable, the upload refused or cut): try again later.
    The message never holds the deposit URL."""


class DepositRefusedError(RuntimeError):
    """Loop refused to give a deposit URL (keys, an error answer, no URL in it): the import is closed
    with `transition`."""

    def __init__(self, message: str, transition: Transition) -> None:
        super().__init__(message)
        self.message, self.transition = message, transition


@dataclass(frozen=True)
class Transfer:
    """What importFEC gets for one file: a SAS `url` (sas mode) or a deposit `uri` (deposit mode)."""

    mode: str
    url: str = ""
    uri: str = ""
    expires_at: datetime | None = None
    shown_uri: str | None = None

    def __repr__(self) -> str:  # the SAS URL carries a signature: never in a repr
        return f"Transfer(mode={self.mode!r}, uri={self.shown_uri!r})"


def prepare_transfer(pipeline: Pipeline, record: ImportRecord) -> Transfer:
    """Sign a SAS URL on the snapshot, or deposit the snapshot at Loop, per LOOP_TRANSFER_MODE.

    Raises:
        DepositError: the deposit failed and may be tried again (nothing was sent to importFEC).
        DepositRefusedError: Loop refused the deposit call.
    """
    if pipeline.settings.loop_transfer_mode == DEPOSIT_MODE:
        return deposit(pipeline, record)
    signed = pipeline.signer.sign(record.container, record.blob_name, snapshot=record.snapshot)
    return Transfer(SAS_MODE, url=signed.url, expires_at=signed.expires_at)


def deposit_filename(blob_name: str) -> str:
    """The file name given to getFileUrlDeposit: the blob's base name, reduced to characters every
    URL and file system accept (a blob name may hold `?`, `#`, spaces or control characters)."""
    name = _UNSAFE_FILENAME.sub("_", PurePosixPath(blob_name).name).strip("._")
    return name[-MAX_FILENAME_LENGTH:] or "fec.txt"


def deposit(pipeline: Pipeline, record: ImportRecord) -> Transfer:
    """Get a deposit URL, upload the snapshot's bytes to it, check their hash; return the URI."""
    try:
        target = pipeline.loop.get_file_url_deposit(deposit_filename(record.blob_name))
    except LoopAuthError as error:
        raise DepositRefusedError(f"getFileUrlDeposit: {error.message}", states.REFUSE_DEPOSIT_KEYS) from None
    except LoopRejectedError as error:
        raise DepositRefusedError(f"getFileUrlDeposit: {error.message}", states.FAIL_DEPOSIT) from None
    except LoopError as error:
        raise DepositError(f"getFileUrlDeposit: {error.message}") from None
    settings = pipeline.settings
    source = HashingReader(download_client(pipeline, record).download_blob(max_concurrency=1),
                           settings.download_chunk_bytes)
    timeouts = (settings.loop_connect_timeout, settings.loop_read_timeout)
    upload(target.upload_url, source, record.size, settings.download_chunk_bytes, timeouts)
    if record.content_sha256 and source.sha256 != record.content_sha256:
        raise DepositError(
            f"the {source.sent} bytes uploaded do not hash to the validated sha256 {record.content_sha256[:12]}...; "
            "nothing was imported"
        )
    return Transfer(DEPOSIT_MODE, uri=target.uri, shown_uri=target.shown_uri)


class HashingReader:
    """A read-only stream over the snapshot's download, in bounded reads, hashing what it hands out.

    It has no `seek`, so the blob SDK uploads it block by block without buffering the file; it has a
    length, so requests sends it with a Content-Length rather than chunked (some signed-URL services
    refuse chunked uploads). It draws on the download's `chunks()` (BLOB_DOWNLOAD_CHUNK_BYTES each), as
    the validator does, and returns exactly `size` bytes per read except at the end (the SDK's
    single-request upload reads the whole length at once). A storage failure
    while reading is kept in `failure`, so it is not mistaken for a refused upload."""

    def __init__(self, source: StorageStreamDownloader, chunk_bytes: int) -> None:
        self.size = source.size
        self.chunks = iter(source.chunks())
        self.chunk_bytes = chunk_bytes
        self.pending = memoryview(b"")
        self.digest = hashlib.sha256()
        self.sent = 0
        self.failure: AzureError | None = None

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (a negative size: one chunk's worth), fewer only at the end."""
        wanted = self.chunk_bytes if size is None or size < 0 else size
        parts: list[bytes] = []
        count = 0
        while count < wanted:
            if not self.pending:
                self.pending = memoryview(self._next_chunk())
                if not self.pending:
                    break
            part = bytes(self.pending[: wanted - count])
            self.pending = self.pending[len(part):]
            parts.append(part)
            count += len(part)
        data = b"".join(parts)
        self.digest.update(data)
        self.sent += len(data)
        return data

    def _next_chunk(self) -> bytes:
        try:
            return next(self.chunks, b"")
        except AzureError as error:
            self.failure = error
            raise

    def __len__(self) -> int:
        return max(self.size - self.sent, 0)

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


def is_azure_blob_sas(url: str) -> bool:
    """A blob SAS URL (signed version `sv` and signature `sig`), on Azure or Azurite."""
    query = parse_qs(urlsplit(url).query)
    return "sig" in query and "sv" in query


def upload(url: str, source: HashingReader, size: int | None, block_bytes: int,
           timeouts: tuple[float, float]) -> None:
    """Stream `source` to the deposit URL in blocks of `block_bytes`.

    Raises:
        DepositError: the upload was refused or cut (the message names the HTTP status or the
            failure's type, never the URL).
        azure.core.exceptions.AzureError: reading the snapshot from our storage failed.
    """
    try:
        with suppress_instrumentation(), suppress_http_instrumentation():  # no span may carry the signed URL
            if is_azure_blob_sas(url):
                _upload_blocks(url, source, size, block_bytes, timeouts)
            else:
                _put_streamed(url, source, timeouts)
    except (AzureError, requests.RequestException, OSError) as error:
        if source.failure is not None:
            raise source.failure from None
        raise DepositError(f"upload to the deposit URL failed: {_describe(error)}") from None


def _upload_blocks(url: str, source: HashingReader, size: int | None, block_bytes: int,
                   timeouts: tuple[float, float]) -> None:
    """Put Block per `block_bytes`, then Put Block List; one at a time, so memory stays near one block.
    max_single_put_size is lowered too: the SDK's default would send a file under 64 MiB in one
    request, read whole into memory."""
    client = BlobClient.from_blob_url(
        url, max_single_put_size=block_bytes, max_block_size=block_bytes,
        connection_timeout=timeouts[0], read_timeout=timeouts[1],
    )
    with client:
        client.upload_blob(source, length=size, overwrite=True, max_concurrency=1)


def _put_streamed(url: str, source: HashingReader, timeouts: tuple[float, float]) -> None:
    """One HTTP PUT whose body is read from `source` as it is sent. A session of its own: Loop's
    session carries the Loop keys, which must never go to the deposit host."""
    with requests.Session() as session:
        response = session.put(url, data=source, timeout=timeouts,
                               headers={"Content-Type": "application/octet-stream"})
        with response:
            if not 200 <= response.status_code < 300:
                raise _RefusedUploadError(response.status_code)


class _RefusedUploadError(OSError):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _describe(error: Any) -> str:
    """The failure in words that cannot carry the URL: HTTP status and storage error code, or the type."""
    if isinstance(error, _RefusedUploadError):
        return str(error)
    if isinstance(error, HttpResponseError) and error.status_code:
        code = f" {error.error_code}" if getattr(error, "error_code", None) else ""
        return f"HTTP {error.status_code}{code}"
    return type(error).__name__
