"""The report next to each dropped file, for whoever dropped it: `<blob name>.report.json` (the JSON
of `imports show --json` for that version) and `<blob name>.report.html` (shared.flows.report_page)
in REPORTS_CONTAINER, never the watched container.

When: the ledger tells `VerdictReports.after_write` of every transition it writes. A version owes a
report once it has reached a verdict (rejected, submit_failed, completed, failed, unknown,
duplicate), and from then on every move rewrites it but a status check that found nothing new
(`NOTE_CHECK` alone).

Newest wins: each report blob carries in its metadata an order key (`order_key`) made only of what
storage and the ledger give, never of a process's clock: the version's Last-Modified, then the time
of its snapshot, then the record's revision. A write reads the blob's key and ETag, gives up if the
stored key is not older than its own, and uploads with If-Match on that ETag (If-None-Match: * when
absent); a lost race reads again and decides again. So the report of an older version, or an older
state of the same version, never overwrites a newer one, whatever the order the writers finish in
and whatever their clocks say. A version's first verdict (no earlier one in its history) most
likely has no report yet: it tries If-None-Match: * first and reads only if a report is there
(another version's, or a lost answer), saving the read.

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
import hashlib
import itertools
import json
import logging
import re
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
from azure.data.tables import TableClient, TableEntity, UpdateMode
from azure.storage.blob import BlobClient, BlobProperties, BlobServiceClient, ContainerClient, ContentSettings

from shared.flows.import_views import earlier_record, earlier_view, import_details
from shared.flows.report_page import render_report_html, report_link, translated_report
from shared.flows.reports import ReportStore
from shared.language.wording import Wording
from shared.ledger import states
from shared.ledger.ledger import Ledger
from shared.ledger.record import ImportRecord, record_keys, utf16_units
from shared.ledger.states import Transition
from shared.platform import telemetry
from shared.platform.redaction import redacted_cut

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
# Tries of an owed row by the timer before it is given up (`import.report_given_up`).
REPORT_MAX_TRIES = 5
_DOT_SEGMENT = "%2E"
# Azure refuses a blob name longer than 1,024 characters (counted here in UTF-16 units, as .NET does:
# a character outside the BMP counts two, never fewer than the service counts).
MAX_BLOB_NAME_UNITS = 1024
SHORT_DIGEST_CHARS = 40
_PARTIAL_ESCAPE = re.compile(r"%[0-9A-F]?$")


class ReportRaceError(RuntimeError):
    """The report blob kept changing under the writer; the owed row stays, the next tick retries."""


def report_blob_names(blob_name: str) -> tuple[str, str]:
    """The JSON and HTML report names for a blob name, in the same folder as the file.

    Storage and HTTP clients rewrite `.` and `..` segments and backslashes, so a name holding them
    would land its report in another folder: those segments are written as `%2E` runs and a
    backslash as `%5C`, keeping the report under the file's own prefix; a literal `%` is written
    `%25`, so two blob names never share a report. A name that would then pass Azure's limit
    (MAX_BLOB_NAME_UNITS) gets its short form (`_short_base`)."""
    segments = [
        _DOT_SEGMENT * len(segment) if segment in (".", "..") else segment.replace("%", "%25").replace("\\", "%5C")
        for segment in blob_name.split("/")
    ]
    base = "/".join(segments)
    if utf16_units(base + JSON_SUFFIX) > MAX_BLOB_NAME_UNITS:
        base = _short_base(base, blob_name)
    return base + JSON_SUFFIX, base + HTML_SUFFIX


def _short_base(base: str, blob_name: str) -> str:
    """The stable short form of a report name too long for Azure (a blob name of 1,013 characters or
    more, or fewer holding `%`s, each written `%25`): the escaped name cut to what fits, then `~` and
    the first 40 hex digits of the sha256 of the blob name (UTF-8). The same name always gives the same
    report; two names never share one (the digest); the cut keeps the file's folder and the start of
    its name, never splits a `%XX` escape or a character, and the suffixes still end the name."""
    tag = "~" + hashlib.sha256(blob_name.encode("utf-8")).hexdigest()[:SHORT_DIGEST_CHARS]
    room = MAX_BLOB_NAME_UNITS - len(JSON_SUFFIX) - len(tag)
    head = base.encode("utf-16-le")[: room * 2].decode("utf-16-le", errors="ignore")
    return _PARTIAL_ESCAPE.sub("", head) + tag


_NO_SNAPSHOT = "00000000T000000.0000000Z"
_SNAPSHOT_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?Z")


def _stamp(when: datetime | None) -> str:
    return when.strftime("%Y%m%dT%H%M%S.%fZ") if when else "00000000T000000.000000Z"


def _snapshot_stamp(snapshot: str | None) -> str:
    """A snapshot time (`2026-12-04T21:28:36.1390000Z`, storage's own clock to 100 ns) as a
    fixed-width text that sorts in time order; no snapshot sorts first."""
    parts = _SNAPSHOT_TIME.fullmatch(snapshot or "")
    if parts is None:
        return _NO_SNAPSHOT
    year, month, day, hour, minute, second, fraction = parts.groups()
    return f"{year}{month}{day}T{hour}{minute}{second}.{(fraction or '').ljust(7, '0')}Z"


def order_key(record: ImportRecord, earlier: ImportRecord | None = None) -> str:
    """Sorts as text like the reports should: by version, then by the record's state. Made only of
    what the storage account and the ledger give, so no process's clock can reorder two reports.

    - Versions of one blob: by Last-Modified, which storage gives to the second only, then by the
      time of the version's snapshot. A version that reaches a verdict on its content has one
      (shared.flows.submit takes it, under the version's ETag, before the verdict, an empty file's
      included): storage stamps it, to 100 ns, at a moment the version was still the blob's current
      one (a version overwritten first is refused its snapshot and ends `superseded`, no report). So of
      two versions within one second the older one's snapshot is taken before the newer one was
      written, hence before the newer one's snapshot: storage itself orders them. Neither blob
      versioning (not enabled on the account, not emulated by Azurite) nor the ETag (opaque, no order)
      nor a claim time (a process's clock, and a delivery paused before its claim claims an older
      version last) could. A file without a dossier is snapshotted and validated too, so has one.
      A record without a snapshot (given up before the snapshot, deleted or overwritten before it
      was read, or claimed before snapshots came first) sorts before a snapshot of the same second:
      right when it is the older version (a delivery paused before its claim), wrong only if a
      version written within the same second after one with a snapshot has none.
    - States of one version: by the record's revision, raised by each ETag-guarded ledger write, so
      a later state always has a higher one whoever wrote it; its update time only breaks ties of
      records written before revisions were kept.
    - A duplicate's page also shows its `earlier` import, which moves on without the duplicate's
      record changing: that import's revision ends the key, so the page written again when it
      reaches a verdict (`_refresh_duplicate`) wins over the one written before."""
    version = record.modified_at or record.received_at
    key = f"{_stamp(version)}_{_snapshot_stamp(record.snapshot)}_{record.revision:010d}_{_stamp(record.updated_at)}"
    return key if earlier is None else f"{key}_{earlier.revision:010d}"


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
                   likely_absent: bool = False, winner: dict[str, str] | None = None) -> bool:
    """Upload unless the stored report is as new or newer (its ORDER_KEY); True if written.

    `likely_absent`: try the create (If-None-Match: *) before any read; a report already there
    refuses it, and the loop reads and decides as usual. Either way every upload is conditional.
    `winner`: filled with the stored report's metadata when it wins.

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
            if winner is not None:
                winner.update(props.metadata or {})
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
                 clock: Callable[[], datetime], *, wording: Wording | None = None) -> None:
        self.container: ContainerClient = blob_service.get_container_client(container)
        self.ledger = ledger
        self.details = details
        self.clock = clock
        self.wording = wording or Wording()  # REPORT_LANGUAGE, REPORT_TIMEZONE

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
            self._failed(record, f"{type(error).__name__}: {redacted_cut(str(error), 200)}", queued=queued)
            return False
        if owed_etag is not None:
            self._forget(record, owed_etag)
        if written:
            telemetry.emit(telemetry.REPORT_WRITTEN, {**record.dimensions(), "state": None, "reason": None},
                           logging.INFO, verdict=str(record.state), report=report_blob_names(record.blob_name)[0])
        return True

    def _write_blobs(self, record: ImportRecord, likely_absent: bool) -> bool:
        json_name, html_name = report_blob_names(record.blob_name)
        earlier = self._earlier(record)
        metadata = {ORDER_KEY: order_key(record, earlier), VERSION_KEY: record.etag.strip('"'),
                    STATE_KEY: str(record.state)}
        body, page = self._rendered(record, earlier)
        winner: dict[str, str] = {}
        wrote_json = write_if_newer(self.container.get_blob_client(json_name), body, JSON_TYPE, metadata,
                                    likely_absent=likely_absent)
        wrote_html = write_if_newer(self.container.get_blob_client(html_name), page, HTML_TYPE, metadata,
                                    likely_absent=likely_absent, winner=winner)
        if not wrote_html:
            self._refresh_duplicate(record, winner)
        return wrote_json or wrote_html

    def _refresh_duplicate(self, record: ImportRecord, winner: dict[str, str]) -> None:
        """The page at this name lost to a newer version's: if that version is a duplicate of this
        import (the same bytes dropped again while it was in Loop), its page shows this import's
        state and is written again, so the success it reached stays visible. Costs a ledger read
        only when the winning page is a duplicate's."""
        if winner.get(STATE_KEY) != states.DUPLICATE or winner.get(VERSION_KEY) in (None, record.etag.strip('"')):
            return
        duplicate = self.ledger.get(*record_keys(record.container, record.blob_name, winner[VERSION_KEY]))
        if duplicate is not None and duplicate.duplicate_of == "|".join(record.keys):
            self._write_blobs(duplicate, likely_absent=False)

    def _earlier(self, record: ImportRecord) -> ImportRecord | None:
        return earlier_record(self.ledger, record) if record.state == states.DUPLICATE else None

    def bodies(self, record: ImportRecord) -> tuple[bytes, bytes]:
        """The JSON report and the HTML page beside the file for this version, as stored (`imports
        report` prints the same bytes)."""
        return self._rendered(record, self._earlier(record))

    def _rendered(self, record: ImportRecord, earlier: ImportRecord | None) -> tuple[bytes, bytes]:
        detail = self.reader_detail(record, report_blob_names(record.blob_name)[1], earlier)
        return (json.dumps(translated_report(detail, self.wording), ensure_ascii=False, indent=1).encode("utf-8"),
                render_report_html(detail, self.wording).encode("utf-8"))

    def reader_detail(self, record: ImportRecord, html_name: str, earlier: ImportRecord | None = None) -> dict:
        """The version's detail, and for a duplicate the `earlier` import that holds its bytes, with a
        link from this page to that import's own report."""
        detail = import_details(self.details, record)
        if earlier is not None:
            view = earlier_view(earlier)
            view["report_link"] = report_link(html_name, report_blob_names(earlier.blob_name)[1])
            detail["earlier"] = view
        return detail

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
        the rest waits for the next tick. Never raises; returns what was done.

        Each row is tried at most REPORT_MAX_TRIES times (its `tries` column), then given up with
        `import.report_given_up` (an alert, docs/runbooks/report-given-up.md) and deleted, so rows
        that can never be written leave the partition and never starve the rows after them; a row
        whose try fails in any way is counted and the next one tried."""
        done: Counter = Counter()
        deadline = time.monotonic() + budget_seconds
        try:
            rows = self.table.query_entities("PartitionKey eq @p", parameters={"p": OWED_PARTITION},
                                             results_per_page=min(max_rows, 1000))
            for entity in itertools.islice(rows, max_rows):
                done[self._retry_guarded(entity)] += 1
                if time.monotonic() > deadline:
                    done["left_for_next_tick"] += 1
                    break
        except AzureError as error:
            log.warning("could not read the reports owed: %s", type(error).__name__)
            done["unreadable"] += 1
        return done

    def _retry_guarded(self, entity: TableEntity) -> str:
        """`_retry_one`, a failure of any kind counted as a try of that row alone."""
        try:
            return self._retry_one(entity)
        except Exception as error:  # one bad row must never stop the others
            log.warning("owed report %s failed: %s", entity.get("RowKey"), type(error).__name__)
            return self._tried(entity, None, f"{type(error).__name__}: {redacted_cut(str(error), 200)}")

    def _retry_one(self, entity: TableEntity) -> str:
        etag = entity.metadata.get("etag")
        record = self.ledger.get(entity["record_partition"], entity["record_row"])
        if record is None:
            self._forget_row(entity["RowKey"], etag)
            return "gone"
        return "written" if self.write(record, etag) else self._tried(entity, record, "the report could not be written")

    def _tried(self, entity: TableEntity, record: ImportRecord | None, reason: str) -> str:
        """Count a failed try on the row (under its ETag: a row owed again since, by a later write,
        starts afresh); at the last one, give it up: one event, the row deleted."""
        etag = entity.metadata.get("etag")
        tries = int(entity.get("tries") or 0) + 1
        if tries < REPORT_MAX_TRIES:
            counted = {"PartitionKey": OWED_PARTITION, "RowKey": entity["RowKey"], "tries": tries}
            with contextlib.suppress(AzureError):
                self.table.update_entity(counted, mode=UpdateMode.MERGE, etag=etag,
                                         match_condition=MatchConditions.IfNotModified)
            return "failed"
        dimensions = record.dimensions() if record is not None else {"blob": entity.get("blob")}
        telemetry.emit(telemetry.REPORT_GIVEN_UP, {**dimensions, "state": None, "reason": reason}, logging.ERROR,
                       tries=tries, verdict=str(record.state) if record is not None else None)
        with contextlib.suppress(AzureError):
            self._forget_row(entity["RowKey"], etag)
        return "given_up"

    def _forget_row(self, row: str, etag: str | None) -> None:
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            self.table.delete_entity(OWED_PARTITION, row, etag=etag, match_condition=MatchConditions.IfNotModified)
