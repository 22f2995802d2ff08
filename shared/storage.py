"""Storage clients from the same settings the Functions host uses (AzureWebJobsStorage)."""

from __future__ import annotations

from azure.core.credentials import TokenCredential
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.settings import Settings


def _default_credential() -> TokenCredential:
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - only needed on Azure

    return DefaultAzureCredential()


def blob_service_client(settings: Settings, credential: TokenCredential | None = None) -> BlobServiceClient:
    """Connection string when there is one (Azurite, keys); managed identity otherwise."""
    if settings.storage_connection_string:
        return BlobServiceClient.from_connection_string(settings.storage_connection_string)
    account_url = settings.blob_service_uri or f"https://{settings.storage_account_name}.blob.core.windows.net"
    return BlobServiceClient(account_url, credential=credential or _default_credential())


def table_service_client(settings: Settings, credential: TokenCredential | None = None) -> TableServiceClient:
    if settings.storage_connection_string:
        return TableServiceClient.from_connection_string(settings.storage_connection_string)
    endpoint = settings.table_service_uri or f"https://{settings.storage_account_name}.table.core.windows.net"
    return TableServiceClient(endpoint, credential=credential or _default_credential())
