"""Pages of imports, newest first, read from the ledger's listing index (docs/ledger-index.md): what
`GET /api/imports` answers and `imports list` prints. A page costs one range read of the index and
one read per import it returns, whatever the ledger holds.

A page's continuation is an opaque token: the position in the index where the next page starts,
bound to the filters it was made for. It grants nothing: each page is read with the filters of the
query it comes with, and a token made for other filters, out of their range, malformed, of another
format or older than TOKEN_LIFETIME is refused (PageTokenError), never followed.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.flows.dossier import CODE_IBS_PATTERN
from shared.flows.pipeline import Pipeline
from shared.ledger.indexes import LIST_PREFIX, ListingIndex
from shared.ledger.record import ImportRecord
from shared.ledger.states import ImportState

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
TOKEN_VERSION = 1
TOKEN_LIFETIME = timedelta(hours=24)
_READERS = 8  # records of a page read in parallel
# The `submitting` mark writes no index row (the hot path's budget): such an import is still indexed
# as `received`, so a query for `submitting` reads those rows too and keeps what the records say.
_INDEXED_AS = {ImportState.SUBMITTING: (str(ImportState.RECEIVED), str(ImportState.SUBMITTING))}


class ListQueryError(ValueError):
    """A filter, a limit or a page token the list cannot take; the message says which and why."""


class PageTokenError(ListQueryError):
    """A page token that is not one this query's pages gave (forged, altered, stale, other filters)."""


@dataclass(frozen=True)
class ListQuery:
    """The filters of a list: state, dossier, receipt time in [since, until)."""

    state: ImportState | None = None
    code_ibs: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(cls, state: str | None = None, code_ibs: str | None = None, since: str | None = None,
              until: str | None = None) -> ListQuery:
        """The query from text (the API's parameters, the CLI's options); ListQueryError if one is bad."""
        if state and state not in {str(known) for known in ImportState}:
            raise ListQueryError(f"state must be one of {', '.join(ImportState)}")
        if code_ibs and not CODE_IBS_PATTERN.fullmatch(code_ibs):
            raise ListQueryError("codeIbs is a dossier code: letters, digits, '-' and '_', at most 32")
        query = cls(ImportState(state) if state else None, code_ibs or None, _instant("since", since),
                    _instant("until", until))
        if query.since and query.until and query.since >= query.until:
            raise ListQueryError("since must be before until")
        return query

    def bound(self) -> dict[str, str]:
        """The filters as the token carries them."""
        values = {"state": self.state, "codeIbs": self.code_ibs, "since": self.since, "until": self.until}
        return {name: value.isoformat() if isinstance(value, datetime) else str(value)
                for name, value in values.items() if value is not None}

    @property
    def start(self) -> str:
        """The first index row of the range: the newest import received before `until`."""
        if self.until is None:
            return LIST_PREFIX
        return ListingIndex.start_of(self.until - timedelta(microseconds=1))

    @property
    def end(self) -> str:
        return ListingIndex.end_of(self.since)

    def admits(self, record: ImportRecord) -> bool:
        """What the record itself says (the index may lag it by a write)."""
        return ((self.state is None or record.state == self.state)
                and (self.code_ibs is None or record.code_ibs == self.code_ibs))


@dataclass(frozen=True)
class ImportPage:
    records: list[ImportRecord]
    next_token: str | None


def parse_limit(text: str | None, default: int = DEFAULT_LIMIT) -> int:
    try:
        limit = int(text) if text not in (None, "") else default
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ListQueryError(f"limit must be a whole number between 1 and {MAX_LIMIT}")
    return limit


def list_page(pipeline: Pipeline, query: ListQuery, limit: int = DEFAULT_LIMIT, token: str | None = None
              ) -> ImportPage:
    """One page: up to `limit` imports, newest first, and the token of the next page (None: the last).

    A page may hold fewer than `limit` imports while a next one exists (the index said more rows than
    the records confirm, or Table Storage stopped a filtered read early): follow the token until None.

    Raises:
        ListQueryError: a bad limit; PageTokenError: a token this query's pages did not give.
        LedgerMissingError, azure.core.exceptions.AzureError: storage could not be read.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ListQueryError(f"limit must be a whole number between 1 and {MAX_LIMIT}")
    start, inclusive = read_token(token, query, pipeline.clock()) if token else (query.start, True)
    indexed_states = _INDEXED_AS.get(query.state, (str(query.state),)) if query.state else ()
    page = pipeline.ledger.listing.page(start, query.end, inclusive=inclusive, states=indexed_states,
                                        code_ibs=query.code_ibs, limit=limit)
    with ThreadPoolExecutor(max_workers=_READERS) as pool:  # each read in a copy of this context (its trace)
        reads = [(contextvars.copy_context(), row.keys) for row in page.rows]
        records = list(pool.map(lambda read: read[0].run(pipeline.ledger.get, *read[1]), reads))
    kept = [record for record in records if record is not None and query.admits(record)]
    next_token = None
    if page.next_start is not None:
        next_token = make_token(page.next_start, page.next_inclusive, query, pipeline.clock())
    return ImportPage(kept, next_token)


def list_records(pipeline: Pipeline, query: ListQuery, count: int | None, token: str | None = None
                 ) -> tuple[list[ImportRecord], str | None]:
    """Pages followed until `count` imports (all: None) or the end; the token where it stopped."""
    records: list[ImportRecord] = []
    while True:
        wanted = MAX_LIMIT if count is None else min(MAX_LIMIT, count - len(records))
        page = list_page(pipeline, query, wanted, token)
        records += page.records
        token = page.next_token
        if token is None or (count is not None and len(records) >= count):
            return records, token


def make_token(start: str, inclusive: bool, query: ListQuery, now: datetime) -> str:
    body = {"v": TOKEN_VERSION, "k": start, "i": inclusive, "q": query.bound(), "t": int(now.timestamp())}
    return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")


def read_token(token: str, query: ListQuery, now: datetime) -> tuple[str, bool]:
    """Where the page starts, from a token this query's previous page gave; PageTokenError otherwise."""
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise PageTokenError("the page token is not one this API gave; start again without it") from None
    if not isinstance(body, dict) or body.get("v") != TOKEN_VERSION:
        raise PageTokenError("the page token is of another version; start again without it")
    issued = body.get("t")
    if not isinstance(issued, int) or not now.timestamp() - TOKEN_LIFETIME.total_seconds() <= issued \
            <= now.timestamp() + 300:
        raise PageTokenError("the page token is stale; start again without it")
    if body.get("q") != query.bound():
        raise PageTokenError("the page token was made for other filters; use the nextLink as given")
    start, inclusive = body.get("k"), body.get("i")
    if not isinstance(start, str) or not isinstance(inclusive, bool) or not ListingIndex.is_row(start) \
            or not query.start <= start < query.end:
        raise PageTokenError("the page token is not one this API gave; start again without it")
    return start, inclusive


def _instant(name: str, text: str | None) -> datetime | None:
    """An ISO 8601 time (a date alone: its midnight UTC; no offset: UTC)."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ListQueryError(f"{name} must be an ISO 8601 date or time, e.g. 2026-01-31T00:00:00Z") from None
    if not datetime(1970, 1, 2, tzinfo=UTC) <= (value if value.tzinfo else value.replace(tzinfo=UTC)) \
            <= datetime(2200, 1, 1, tzinfo=UTC):
        raise ListQueryError(f"{name} must be between 1970 and 2200")
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
