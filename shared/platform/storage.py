"""Storage clients from the same settings the Functions host uses (AzureWebJobsStorage)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from azure.core.credentials import TokenCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient, TextBase64EncodePolicy
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from shared.platform.settings import Settings

# A reachability probe: one attempt, answered or refused within seconds, not the SDK's retries.
_PROBE_OPTIONS = {"retry_total": 0, "connection_timeout": 5, "read_timeout": 10}


class StorageUnavailableError(RuntimeError):
    """Storage cannot be used with the configured connection; the message is one line that names the
    endpoint and what to check, and never holds a key or a SAS."""


def shared_transport(connections: int = 32) -> RequestsTransport:
    """One connection pool for the clients a flow builds per file (the Azure SDK's transport sharing):
    each new client would otherwise open its own connections (a TLS handshake each on Azure), and
    `connections` at once per host are kept, not discarded ("Connection pool is full"). Retries stay
    the SDK's (its retry policy); urllib3's own are off, as in the SDK's default transport. The SDK's
    adapter with a larger upload block size is not mounted: these clients only download."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=connections,
                          max_retries=Retry(total=False, redirect=False, raise_on_status=False))
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    return RequestsTransport(session=session, session_owner=False)


def _default_credential() -> TokenCredential:
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - only needed on Azure

    return DefaultAzureCredential()


def blob_service_client(
    settings: Settings, credential: TokenCredential | None = None, **options: Any
) -> BlobServiceClient:
    """Connection string when there is one (Azurite, keys); managed identity otherwise."""
    if settings.storage_connection_string:
        return BlobServiceClient.from_connection_string(settings.storage_connection_string, **options)
    account_url = settings.blob_service_uri or f"https://{settings.storage_account_name}.blob.core.windows.net"
    return BlobServiceClient(account_url, credential=credential or _default_credential(), **options)


def table_service_client(
    settings: Settings, credential: TokenCredential | None = None, **options: Any
) -> TableServiceClient:
    if settings.storage_connection_string:
        return TableServiceClient.from_connection_string(settings.storage_connection_string, **options)
    endpoint = settings.table_service_uri or f"https://{settings.storage_account_name}.table.core.windows.net"
    return TableServiceClient(endpoint, credential=credential or _default_credential(), **options)


def status_queue_client(settings: Settings, credential: TokenCredential | None = None, **extra: Any) -> QueueClient:
    """The queue of status checks, base64-encoded as the Functions queue trigger expects by default."""
    options: dict[str, Any] = {
        "message_encode_policy": TextBase64EncodePolicy(), "message_decode_policy": BinaryBase64DecodePolicy(),
        **extra,
    }
    if settings.storage_connection_string:
        return QueueClient.from_connection_string(settings.storage_connection_string, settings.status_queue, **options)
    endpoint = settings.queue_service_uri or f"https://{settings.storage_account_name}.queue.core.windows.net"
    return QueueClient(endpoint, settings.status_queue, credential=credential or _default_credential(), **options)


def _endpoint(url: str) -> str:
    """The service URL without its query (a SAS connection string puts the token there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def _what_to_check(settings: Settings) -> str:
    if settings.storage_connection_string:
        return "check AzureWebJobsStorage (locally: is Azurite running? `make run` starts it)"
    return "check AzureWebJobsStorage__accountName and your sign-in (az login) and storage data role"


def check_storage(settings: Settings, credential: TokenCredential | None = None) -> None:
    """Raise StorageUnavailableError, one clear line, unless the blob endpoint answers and accepts
    the credentials. One request, no retries: made before a run starts, not on every call."""
    try:
        service = blob_service_client(settings, credential, **_PROBE_OPTIONS)
    except ValueError as error:  # a malformed connection string; the SDK's message quotes no key
        raise StorageUnavailableError(f"AzureWebJobsStorage is not a usable connection string: {error}") from None
    endpoint = _endpoint(service.url)
    try:
        next(iter(service.list_containers(results_per_page=1)), None)
    except ServiceRequestError:
        raise StorageUnavailableError(
            f"storage unreachable at {endpoint}: nothing answered; {_what_to_check(settings)}"
        ) from None
    except (ClientAuthenticationError, HttpResponseError) as error:
        raise StorageUnavailableError(_refusal(endpoint, error, settings)) from None


def _refusal(endpoint: str, error: HttpResponseError, settings: Settings) -> str:
    code = getattr(error.error_code, "value", error.error_code) or error.reason
    answer = f"HTTP {error.status_code} {code}"
    if isinstance(error, ClientAuthenticationError) or error.status_code in (401, 403):
        what = "the account key" if settings.storage_connection_string else "the identity's storage data role"
        return f"storage at {endpoint} refused the credentials ({answer}): {_what_to_check(settings)}, and {what}"
    return (
        f"storage at {endpoint} answered {answer}: is it a storage account's blob endpoint? {_what_to_check(settings)}"
    )
