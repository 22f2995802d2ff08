"""Everything a pipeline step needs, built once per process from the settings.

Building a Pipeline does no I/O: `ensure_resources()` creates the tables and containers, and is
called by the app's start-up (shared.flows.runtime) and the local run, never by read-only commands.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

from shared.flows.dossier import SirenTable
from shared.flows.reports import ReportStore
from shared.flows.verdict_reports import VerdictReports
from shared.language.wording import Wording
from shared.ledger.ledger import Ledger
from shared.loop.client import LoopClient
from shared.platform.backoff import Backoff
from shared.platform.clock import Clock, utcnow
from shared.platform.sas import SasSigner
from shared.platform.settings import Settings
from shared.platform.storage import blob_service_client, shared_transport, status_queue_client, table_service_client


@dataclass
class Pipeline:
    settings: Settings
    blob_service: BlobServiceClient
    ledger: Ledger
    loop: LoopClient
    signer: SasSigner
    dossiers: SirenTable
    reports: ReportStore
    status_queue: QueueClient
    verdict_reports: VerdictReports
    clock: Clock = utcnow
    backoff: Backoff = field(default_factory=Backoff)
    blob_client_options: dict[str, Any] = field(default_factory=dict)  # for the blob clients steps build themselves
    # The connection pool of those clients (shared.platform.storage.shared_transport), one per pipeline.
    blob_client_transport: RequestsTransport = field(default_factory=shared_transport)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        blob_service: BlobServiceClient | None = None,
        table_service: TableServiceClient | None = None,
        loop: LoopClient | None = None,
        status_queue: QueueClient | None = None,
        clock: Clock = utcnow,
        blob_client_options: dict[str, Any] | None = None,
    ) -> Pipeline:
        """Clients only: no request is made until a step runs."""
        blobs = blob_service or blob_service_client(settings)
        tables = table_service or table_service_client(settings)
        ledger = Ledger.from_service(tables, settings.ledger_table, clock)
        reports = ReportStore(blobs, settings.report_container)
        verdict_reports = VerdictReports(blobs, settings.reports_container, ledger, reports, clock,
                                         wording=Wording(settings.report_language, settings.report_timezone))
        ledger.observer = verdict_reports.after_write  # every verdict gets its report next to the file
        return cls(
            settings=settings,
            blob_service=blobs,
            ledger=ledger,
            loop=loop or LoopClient.from_settings(settings),
            signer=SasSigner(blobs, settings.sas_ttl_hours, clock),
            dossiers=SirenTable(tables.get_table_client(settings.dossier_table)),
            reports=reports,
            status_queue=status_queue or status_queue_client(settings),
            verdict_reports=verdict_reports,
            clock=clock,
            backoff=Backoff.from_settings(settings),
            blob_client_options=blob_client_options or {},
        )

    def ensure_resources(self) -> None:
        """Create the ledger and dossier tables, the status queue, the report containers and the import container.

        On Azure the infrastructure creates the import container; creating it here is harmless.
        """
        self.ledger.ensure()
        self.dossiers.ensure()
        self.reports.ensure()
        self.verdict_reports.ensure()
        with contextlib.suppress(ResourceExistsError):
            self.blob_service.create_container(self.settings.container)
        with contextlib.suppress(ResourceExistsError):
            self.status_queue.create_queue()

    @property
    def claim_lease(self) -> timedelta:
        """How long a delivery may work on a claimed record before another may take it over."""
        return timedelta(seconds=self.settings.claim_lease_seconds)

    @property
    def submit_timeout(self) -> timedelta:
        return timedelta(minutes=self.settings.submit_timeout_minutes)
