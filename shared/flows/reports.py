"""Validation reports, stored as JSON blobs in their own container (never the watched one)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings


class ReportStore:
    def __init__(self, service: BlobServiceClient, container: str) -> None:
        self.container = service.get_container_client(container)

    def ensure(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self.container.create_container()

    def save(self, name: str, report: dict[str, Any]) -> str:
        self.container.upload_blob(
            name,
            json.dumps(report, ensure_ascii=False, indent=1).encode("utf-8"),
            overwrite=True,
            content_settings=ContentSettings(content_type="application/json; charset=utf-8"),
        )
        return name

    def delete(self, name: str) -> bool:
        """Delete a report; False if it was gone already."""
        try:
            self.container.delete_blob(name)
        except ResourceNotFoundError:
            return False
        return True

    def load(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.container.download_blob(name).readall())
        except ResourceNotFoundError:
            return None
