"""Everything a pipeline step needs, built once per process from the settings."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.dossier import SirenTable
from shared.ledger import Ledger
from shared.loop_client import LoopClient
from shared.reports import ReportStore
from shared.sas import SasSigner
from shared.settings import Settings
from shared.storage import blob_service_client, table_service_client


@dataclass
class Pipeline:
    settings: Settings
    blob_service: BlobServiceClient
    ledger: Ledger
    loop: LoopClient
    signer: SasSigner
    dossiers: SirenTable
    reports: ReportStore

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        blob_service: BlobServiceClient | None = None,
        table_service: TableServiceClient | None = None,
        loop: LoopClient | None = None,
    ) -> Pipeline:
        blobs = blob_service or blob_service_client(settings)
        tables = table_service or table_service_client(settings)
        ledger = Ledger.from_service(tables, settings.ledger_table)
        dossier_table = tables.get_table_client(settings.dossier_table)
        with contextlib.suppress(ResourceExistsError):
            dossier_table.create_table()
        reports = ReportStore(blobs, settings.report_container)
        reports.ensure()
        return cls(
            settings=settings,
            blob_service=blobs,
            ledger=ledger,
            loop=loop or LoopClient.from_settings(settings),
            signer=SasSigner(blobs, settings.sas_ttl_hours),
            dossiers=SirenTable(dossier_table),
            reports=reports,
        )

    def ensure_import_container(self) -> None:
        """Create the watched container (locally; on Azure the infrastructure creates it)."""
        with contextlib.suppress(ResourceExistsError):
            self.blob_service.create_container(self.settings.container)

    @property
    def claim_lease(self) -> timedelta:
        """How long a delivery may work on a claimed record before another may take it over."""
        return timedelta(seconds=self.settings.claim_lease_seconds)

    @property
    def submit_timeout(self) -> timedelta:
        return timedelta(minutes=self.settings.submit_timeout_minutes)
