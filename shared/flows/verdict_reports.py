"""The report next to each dropped file, for whoever dropped it: `<blob name>.report.json` (the JSON
of `imports show --json` for that version) and `<blob name>.report.html` (shared.flows.report_page)
in REPORTS_CONTAINER, never the watched container.

When: the ledger tells `VerdictReports.after_write` of every transition it writes. A version owes a
report once it has reached a verdict (rejected, submit_failed, completed, failed, unknown,
duplicate), and from then on every move rewrites it but a status check that found nothing new
(`NOTE_CHECK` alone).

Newest wins: each report blob carries in its metadata an order key: the version's Last-Modified
(then its claim time, as Last-Modified counts whole seconds), then the record's update time. A
write reads the blob's key and ETag, gives up if the stored key is not older than its own, and
uploads with If-Match on that ETag (If-None-Match: * when absent); a lost race reads again and
decides again. So the report of an older version, or an older state of the same version, never
overwrites a newer one, whatever the order the writers finish in. A version's first verdict
(no earlier one in its history) most likely has no report yet: it tries If-None-Match: * first and
reads only if a report is there (another version's, or a lost answer), saving the read.

Retry: a report that could not be written is logged (`import.report_failed`) and a row is put in
the ledger table's `report-owed` partition; the timer's tick (status_timer/) calls `retry_owed`,
which drains the partition within a row and a time budget, and a written report deletes its row
(only if nobody put it again meanwhile). A report written at the first try costs no table request.
A crash (the process dying, not an exception) after the ledger write and before the report leaves
no row; `catch_up` covers it: the blob's redelivery (submit) or the leased due row found again (poll)
meets the version final and writes its report if the stored one is older or missing. The ledger
stays the truth: a report is only a view of it, and nothing in the flows waits for or depends on one.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient
from azure.storage.blob import BlobClient, BlobProperties, BlobServiceClient, ContainerClient, ContentSettings

from shared.flows.import_views import import_details
from shared.flows.report_page import render_report_html
from shared.flows.reports import ReportStore
from shared.ledger import states
from shared.ledger.ledger import Ledger
from shared.ledger.record import ImportRecord
from shared.ledger.states import Transition
from shared.platform import telemetry

log = logging.getLogger(__name__)

REPORT_STATES = frozenset({
    states.REJECTED, states.SUBMIT_FAILED, states.COMPLETED, states.FAILED, states.UNKNOWN, states.DUPLICATE,
})
OWED_PARTITION = "report-owed"
JSON_SUFFIX, HTML_SUFFIX = ".report.json", ".report.html"
JSON_TYPE, HTML_TYPE = "application/json; charset=utf-8", "text/html; charset=utf-8"
ORDER_KEY, VERSION_KEY, STATE_KEY = "reportorder", "reportetag", "reportstate"
WRITE_ATTEMPTS = 8
RETRY_MAX_ROWS = 200
RETRY_BUDGET_SECONDS = 10.0
_DOT_SEGMENT = "%2E"


class ReportRaceError(RuntimeError):
    """The report blob kept changing under the writer; the owed row stays, the next tick retries."""


def report_blob_names(blob_name: str) -> tuple[str, str]:
    """The JSON and HTML report names for a blob name, in the same folder as the file.

    Storage and HTTP clients rewrite `.` and `..` segments and backslashes, so a name holding them
    would land its report in another folder: those segments are written as `%2E` runs and a
    backslash as `%5C`, keeping the report under the file's own prefix; a literal `%` is written
    `%25`, so two blob names never share a report."""
    segments = [
        _DOT_SEGMENT * len(segment) if segment in (".", "..") else segment.replace("%", "%25").replace("\\", "%5C")
        for segment in blob_name.split("/")
    ]
    base = "/".join(segments)
    return base + JSON_SUFFIX, base + HTML_SUFFIX


def _stamp(when: datetime | None) -> str:
    return when.strftime("%Y%m%dT%H%M%S.%fZ") if when else "00000000T000000.000000Z"


def order_key(record: ImportRecord) -> str:
    """Sorts as text like the reports should: by version, then by the record's last write.

    A version is placed by its Last-Modified, which storage gives to the second only: two
    versions written within one second are placed by when each was claimed (received_at, to the
    microsecond; a delivery claims the ETag it has just read, so the older version's claim reads
    first). Records claimed before Last-Modified was kept use received_at alone."""
    version = record.modified_at or record.received_at
    return f"{_stamp(version)}_{_stamp(record.received_at)}_{_stamp(record.updated_at)}"


def owes_report(record: ImportRecord) -> bool:
    """A version that reached a verdict once keeps its report up to date from then on."""
    return record.state in REPORT_STATES or any(
        entry.get("state") in REPORT_STATES for entry in record.history_entries()
    )


def changes_what_a_report_shows(taken: Sequence[Transition]) -> bool:
    """Every transition but a plain check does (a state, a Loop status, a flag, a poll failure or its
    recovery): a status check that found nothing new leaves the report as it is, so an import
    resolved after `unknown` and followed for an hour does not rewrite two blobs at every check."""
    return not taken or any(transition is not states.NOTE_CHECK for transition in taken)


def first_verdict(record: ImportRecord) -> bool:
    """No verdict before this write in the version's history: its report most likely does not exist
    yet (a guess that only decides whether a write reads first; it is never trusted for the outcome)."""
    return not any(entry.get("state") in REPORT_STATES for entry in record.history_entries()[:-1])


def _refused(error: HttpResponseError) -> bool:
    """A lost conditional write (412, or 409 when a create met an existing blob)."""
    return isinstance(error, ResourceModifiedError | ResourceExistsError) or error.status_code in (409, 412)


def _properties(blob: BlobClient) -> BlobProperties | None:
    try:
        return blob.get_blob_properties()
    except ResourceNotFoundError:
        return None


def write_if_newer(blob: BlobClient, body: bytes, content_type: str, metadata: dict[str, str], *,
                   likely_absent: bool = False) -> bool:
    """Upload unless the stored report is as new or newer (its ORDER_KEY); True if written.

    `likely_absent`: try the create (If-None-Match: *) before any read; a report already there
    refuses it, and the loop reads and decides as usual. Either way every upload is conditional.

    Raises:
        ReportRaceError: lost the conditional write WRITE_ATTEMPTS times in a row.
        azure.core.exceptions.AzureError: storage could not be reached.
    """
    settings = ContentSettings(content_type=content_type)
    read = not likely_absent
    for _ in range(WRITE_ATTEMPTS):
        props = _properties(blob) if read else None
        read = True
        if props is not None and (props.metadata or {}).get(ORDER_KEY, "") >= metadata[ORDER_KEY]:
            return False
        condition = (
            {"overwrite": False} if props is None
            else {"overwrite": True, "etag": props.etag, "match_condition": MatchConditions.IfNotModified}
        )
        try:
            blob.upload_blob(body, metadata=metadata, content_settings=settings, **condition)
        except HttpResponseError as error:
            if _refused(error):
                continue  # another writer got there first: read again, decide again
            raise
        return True
    raise ReportRaceError(f"{blob.blob_name}: the report kept changing")


class VerdictReports:
    """Writes the reports of one container and keeps the owed rows of one ledger."""

    def __init__(self, blob_service: BlobServiceClient, container: str, ledger: Ledger, details: ReportStore,
                 clock: Callable[[], datetime]) -> None:
        self.container: ContainerClient = blob_service.get_container_client(container)
        self.ledger = ledger
        self.details = details
        self.clock = clock

    @property
    def table(self) -> TableClient:
        return self.ledger.table

    def ensure(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self.container.create_container()

    # --- the ledger's observer ---------------------------------------------------------------

    def after_write(self, record: ImportRecord, taken: Sequence[Transition] = ()) -> None:
        """Write the report of a version that owes one, after `taken` was written. Never raises: a
        failure is logged and the owed row left for the timer (the ledger write has happened)."""
        if not owes_report(record) or not changes_what_a_report_shows(taken):
            return
        self.write(record, None, likely_absent=first_verdict(record))

    def catch_up(self, record: ImportRecord) -> None:
        """A version met again after its verdict (a redelivery of its blob, or a due row a crash left
        behind) gets its report if the stored one is older or missing: this closes the window between
        the ledger's write and the report's when the process died in it. Costs a read per report blob
        when it is up to date; never raises."""
        if owes_report(record):
            self.write(record, None)

    def write(self, record: ImportRecord, owed_etag: str | None, *, likely_absent: bool = False) -> bool:
        """Write both report blobs of `record`; True if done. On success its owed row (`owed_etag`, the
        timer's retry) is dropped; on failure a row is owed, unless it already is."""
        try:
            written = self._write_blobs(record, likely_absent)
        except Exception as error:  # a report must never fail the flow that wrote the ledger
            queued = owed_etag is not None or self._owe(record) is not None
            self._failed(record, f"{type(error).__name__}: {str(error)[:200]}", queued=queued)
            return False
        if owed_etag is not None:
            self._forget(record, owed_etag)
        if written:
            telemetry.emit(telemetry.REPORT_WRITTEN, {**record.dimensions(), "state": None, "reason": None},
                           logging.INFO, verdict=str(record.state), report=report_blob_names(record.blob_name)[0])
        return True

    def _write_blobs(self, record: ImportRecord, likely_absent: bool) -> bool:
        detail = import_details(self.details, record)
        json_name, html_name = report_blob_names(record.blob_name)
        metadata = {ORDER_KEY: order_key(record), VERSION_KEY: record.etag.strip('"'), STATE_KEY: str(record.state)}
        body = json.dumps(detail, ensure_ascii=False, indent=1).encode("utf-8")
        wrote_json = write_if_newer(self.container.get_blob_client(json_name), body, JSON_TYPE, metadata,
                                    likely_absent=likely_absent)
        page = render_report_html(detail).encode("utf-8")
        wrote_html = write_if_newer(self.container.get_blob_client(html_name), page, HTML_TYPE, metadata,
                                    likely_absent=likely_absent)
        return wrote_json or wrote_html

    def _failed(self, record: ImportRecord, reason: str, *, queued: bool) -> None:
        retry = "retried by the next timer tick" if queued else "not queued: the owed row could not be written"
        telemetry.emit(telemetry.REPORT_FAILED, {**record.dimensions(), "state": None, "reason": f"{reason}; {retry}"},
                       logging.WARNING, verdict=str(record.state))

    # --- retention (shared.flows.retention) ------------------------------------------------

    def forget(self, blob_name: str, etag: str) -> int:
        """Delete the reports next to a file that show this version (their metadata says which),
        each under the ETag it was read with: a newer version's report at the same name, or one
        written meanwhile, stays. Returns how many were deleted."""
        deleted = 0
        for name in report_blob_names(blob_name):
            blob = self.container.get_blob_client(name)
            props = _properties(blob)
            if props is None or (props.metadata or {}).get(VERSION_KEY) != etag.strip('"'):
                continue
            try:
                blob.delete_blob(etag=props.etag, match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
            except HttpResponseError as error:
                if not _refused(error):
                    raise
                continue
            deleted += 1
        return deleted

    # --- the owed rows ---------------------------------------------------------------------

    @staticmethod
    def owed_row(record: ImportRecord) -> str:
        return "|".join(record.keys)

    def _owe(self, record: ImportRecord) -> str | None:
        """Put (or refresh) the owed row of a report that could not be written; its ETag, or None if
        it could not be written either."""
        partition, row = record.keys
        entity = {"PartitionKey": OWED_PARTITION, "RowKey": self.owed_row(record), "record_partition": partition,
                  "record_row": row, "blob": record.blob, "owed_at": self.clock()}
        try:
            return self.table.upsert_entity(entity).get("etag")
        except AzureError as error:
            log.warning("could not note the report owed by %s: %s", record.blob_name, type(error).__name__)
            return None

    def _forget(self, record: ImportRecord, etag: str) -> None:
        """Delete the owed row unless it was put again since (a later write owes its own report)."""
        try:
            self.table.delete_entity(OWED_PARTITION, self.owed_row(record), etag=etag,
                                     match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            pass
        except AzureError as error:
            log.warning("could not clear the report owed by %s: %s", record.blob_name, type(error).__name__)

    def owed_count(self) -> int:
        return sum(1 for _ in self.table.query_entities("PartitionKey eq @p", parameters={"p": OWED_PARTITION}))

    def retry_owed(self, max_rows: int = RETRY_MAX_ROWS, budget_seconds: float = RETRY_BUDGET_SECONDS) -> Counter:
        """Write the reports still owed (the timer's tick): at most `max_rows`, within the budget;
        the rest waits for the next tick. Never raises; returns what was done."""
        done: Counter = Counter()
        deadline = time.monotonic() + budget_seconds
        try:
            rows = self.table.query_entities("PartitionKey eq @p", parameters={"p": OWED_PARTITION},
                                             results_per_page=min(max_rows, 1000))
            for entity in itertools.islice(rows, max_rows):
                done[self._retry_one(entity)] += 1
                if time.monotonic() > deadline:
                    done["left_for_next_tick"] += 1
                    break
        except AzureError as error:
            log.warning("could not read the reports owed: %s", type(error).__name__)
            done["unreadable"] += 1
        return done

    def _retry_one(self, entity: dict) -> str:
        etag = entity.metadata.get("etag")
        record = self.ledger.get(entity["record_partition"], entity["record_row"])
        if record is None:
            self._forget_row(entity["RowKey"], etag)
            return "gone"
        return "written" if self.write(record, etag) else "failed"

    def _forget_row(self, row: str, etag: str | None) -> None:
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            self.table.delete_entity(OWED_PARTITION, row, etag=etag, match_condition=MatchConditions.IfNotModified)
