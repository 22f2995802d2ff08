"""`python -m shared imports ...`: list, show, report, resubmit, resolve, cancel and purge imports."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError

from shared.flows.deposit import DepositError
from shared.flows.import_api import request_json, show_json
from shared.flows.import_listing import DEFAULT_LIMIT, ListQuery, ListQueryError, list_records
from shared.flows.import_views import redacted
from shared.flows.operator_actions import OperatorError, cancel, find_import, resolve, resubmit
from shared.flows.pipeline import Pipeline
from shared.flows.retention import PurgeSummary, cutoff_of, purge
from shared.flows.submit import SubmitRetryableError
from shared.ledger.record import ImportRecord
from shared.ledger.states import ImportState
from shared.ledger.store import LedgerMissingError
from shared.loop.client import LoopError
from shared.platform.redaction import printable, shown
from shared.platform.settings import SettingsError, environment_with_local_settings, load_settings

STATES = [str(state) for state in ImportState]


def add_parser(commands: argparse._SubParsersAction) -> None:
    imports = commands.add_parser("imports", help="list and act on imports recorded in the ledger")
    actions = imports.add_subparsers(dest="action", required=True)

    listing = actions.add_parser("list", help="one line per import, newest first, a page at a time")
    listing.add_argument("--status", choices=STATES, help="only imports in this state")
    listing.add_argument("--dossier", metavar="CODEIBS", help="only imports of this dossier")
    listing.add_argument("--since", help="only imports received at this ISO 8601 time or later")
    listing.add_argument("--until", help="only imports received before this ISO 8601 time")
    size = listing.add_mutually_exclusive_group()
    size.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help=f"at most this many (default {DEFAULT_LIMIT})")
    size.add_argument("--all", action="store_true", help="every import, page after page")
    listing.add_argument("--next", metavar="TOKEN", help="go on where a previous --limit stopped")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.set_defaults(handler=run_list)

    show = actions.add_parser("show", help="every version of a blob, or the import with a request id")
    show.add_argument("key", nargs="?", help="blob name (as in the container), else Loop request id")
    show.add_argument("--request-id", help="the import with this Loop request id (even if a blob has that name)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=run_show)

    page = actions.add_parser(
        "report", help="the report next to the file (the HTML page, or --json), rendered from the ledger"
    )
    page.add_argument("key", help="blob name (as in the container) or Loop request id")
    kind = page.add_mutually_exclusive_group()
    kind.add_argument("--html", action="store_true", help="the HTML page (the default)")
    kind.add_argument("--json", action="store_true", help="the JSON report")
    page.add_argument("-o", "--output", type=Path, help="write it to this file (default: standard output)")
    page.set_defaults(handler=run_report)

    again = actions.add_parser(
        "resubmit", help="new SAS URL (or new deposit, in deposit mode) and new importFEC call (history kept)"
    )
    again.add_argument("key")
    again.add_argument("--dossier", help="send to this dossier code instead")
    again.set_defaults(handler=run_resubmit)

    attach = actions.add_parser("resolve", help="attach a request id found in Loop to an unknown import")
    attach.add_argument("key")
    attach.add_argument("--request-id", required=True)
    attach.set_defaults(handler=run_resolve)

    index = actions.add_parser("reindex", help="index a ledger written before the listing index (reads every record)")
    index.set_defaults(handler=run_reindex)

    old = actions.add_parser("purge", help="remove the final imports past the retention, with their reports and rows")
    old.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    old.add_argument("--older-than", type=int, metavar="DAYS",
                     help="imports whose last change is older than this (default LEDGER_RETENTION_DAYS; at least 30)")
    old.set_defaults(handler=run_purge)

    stop = actions.add_parser("cancel", help="stop following an import (refused while submitting)")
    stop.add_argument("key")
    stop.set_defaults(handler=run_cancel)


def _pipeline(require_loop: bool = False) -> Pipeline:
    return Pipeline.from_settings(load_settings(environment_with_local_settings(), require_loop=require_loop))


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _loop_status(record: ImportRecord) -> str:
    return f"{record.loop_status} ({record.loop_status_label})" if record.loop_status else ""


def _guard(action: Any) -> int:
    try:
        return action()
    except (SettingsError, LedgerMissingError) as error:
        print(f"error: {shown(str(error))}", file=sys.stderr)
        return 2
    except (OperatorError, ListQueryError) as error:
        print(f"error: {shown(str(error))}", file=sys.stderr)
        return 1
    except (LoopError, SubmitRetryableError, DepositError) as error:
        print(f"error: Loop: {shown(str(error))}", file=sys.stderr)
        return 1
    except AzureError as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"error: storage: {shown(reason)} (check AzureWebJobsStorage; is Azurite running?)", file=sys.stderr)
        return 2


def run_list(args: argparse.Namespace) -> int:
    def action() -> int:
        pipeline = _pipeline()
        query = ListQuery.parse(args.status, args.dossier, args.since, args.until)
        if not args.all and args.limit < 1:
            raise ListQueryError("--limit must be at least 1")
        records, token = list_records(pipeline, query, None if args.all else args.limit, args.next)
        if token is not None:
            print(f"more imports: --all, or --next {token} with the same filters", file=sys.stderr)
        if args.json:
            print(json.dumps([redacted(record.to_dict()) for record in records], indent=1, ensure_ascii=False))
            return 0
        rows = [
            (r.blob_name, r.etag.strip('"'), r.code_ibs or "", r.request_id or "", r.state, _loop_status(r),
             _when(r.submitted_at), _when(r.updated_at), cut(r.error or "", 80))
            for r in records
        ]
        header = ("BLOB", "ETAG", "CODEIBS", "REQUEST ID", "STATE", "LOOP", "SUBMITTED", "UPDATED", "ERROR")
        print_table(header, rows)
        return 0

    return _guard(action)


def cut(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, a cut one ending with `…` (so no one reads it as whole)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    rows = [tuple(printable(str(cell)) if i == 0 else shown(str(cell)) for i, cell in enumerate(row))
            for row in rows]  # the first column is the blob's name: never redacted
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    if not rows:
        print("(no imports)")


def run_show(args: argparse.Namespace) -> int:
    def action() -> int:
        if (args.key is None) == (args.request_id is None):
            raise OperatorError("give a blob name or --request-id ID (one of them)")
        shown_json = show_json(_pipeline(), args.key) if args.key is not None else _by_request_id(args.request_id)
        if args.json:
            print(json.dumps(shown_json, indent=1, ensure_ascii=False))
            return 0
        details = shown_json if isinstance(shown_json, list) else [shown_json]
        # show_json's details are redacted already, but the names (shared.flows.import_views).
        print("\n\n".join("\n".join(printable(line) for line in _render(detail)) for detail in details))
        return 0

    return _guard(action)


def _by_request_id(request_id: str) -> dict[str, Any]:
    found = request_json(_pipeline(), request_id)
    if found is None:
        raise OperatorError(f"no import has the request id {request_id!r}")
    return found


def _render(detail: dict[str, Any]) -> list[str]:
    loop = detail["loop_status"]
    loop_text = f"{loop} ({detail['loop_status_label']})" if loop else ""
    lines = [
        f"blob         {detail['blob']}",
        f"etag         {detail['etag']}",
        f"codeIbs      {detail['code_ibs'] or ''}",
        f"request id   {detail['request_id'] or ''}",
        f"state        {detail['state']}",
        f"Loop status  {loop_text}",
        f"received     {detail['received_at'] or ''}",
        f"submitted    {detail['submitted_at'] or ''}",
        f"updated      {detail['updated_at'] or ''}",
        f"finished     {detail['finished_at'] or ''}",
        f"error        {detail['error'] or ''}",
        f"transfer     {detail.get('transfer_mode') or ''}",
    ]
    if detail.get("deposit_uri"):
        lines.append(f"deposit URI  {detail['deposit_uri']}")
    if detail.get("flags"):
        lines.append(f"flags        {detail['flags']}")
    report = detail.get("report")
    if report:
        summary = report.get("summary") or {}
        lines.append(
            f"validation   {'valid' if report['valid'] else 'INVALID'}; records={summary.get('records')} "
            f"entries={summary.get('entries')} debit={summary.get('total_debit')} credit={summary.get('total_credit')}"
            + (f" left_out={summary['lines_left_out']}" if summary.get("lines_left_out") else "")
        )
        for finding in (report.get("errors") or [])[:20] + (report.get("warnings") or [])[:10]:
            where = f"line {finding.get('line')}" if finding.get("line") else "file"
            lines.append(f"  {finding.get('rule')}: {where}: {finding.get('message')}")
        counts = report.get("counts") or {}
        if counts:
            lines.append("  counts: " + ", ".join(f"{rule}={count}" for rule, count in sorted(counts.items())))
    lines.append("history")
    lines += [f"  {entry['at']}  {entry['state']}  {entry.get('note') or ''}" for entry in detail["history"]]
    return lines


def run_report(args: argparse.Namespace) -> int:
    """The import's report as the reports container holds it beside the file, rendered from the ledger
    (the truth the stored report is a view of): the same bytes, also before a verdict or while a
    report is still owed, for the latest version of a blob name or the import with a request id."""
    def action() -> int:
        pipeline = _pipeline()
        record = find_import(pipeline, args.key)
        as_json, page = pipeline.verdict_reports.bodies(record)
        body = as_json if args.json else page
        if args.output is None:
            sys.stdout.flush()
            sys.stdout.buffer.write(body)
            sys.stdout.buffer.flush()
            return 0
        try:
            args.output.write_bytes(body)
        except OSError as error:
            print(f"error: cannot write {args.output}: {error.strerror or error}", file=sys.stderr)
            return 2
        print(shown(f"{record.blob}: {record.state}, report written to {args.output}"))
        return 0

    return _guard(action)


def run_resubmit(args: argparse.Namespace) -> int:
    def action() -> int:
        pipeline = _pipeline(require_loop=True)
        record = resubmit(pipeline, find_import(pipeline, args.key), args.dossier)
        outcome = f"{record.state} {record.request_id or ''} {record.error or ''}".rstrip()
        print(f"{printable(record.blob)}: {shown(outcome)}")
        return 0 if record.state == ImportState.PENDING else 1

    return _guard(action)


def run_resolve(args: argparse.Namespace) -> int:
    def action() -> int:
        pipeline = _pipeline()
        record = resolve(pipeline, find_import(pipeline, args.key), args.request_id)
        print(f"{printable(record.blob)}: " + shown(f"pending with request id {record.request_id}"))
        return 0

    return _guard(action)


def run_reindex(_args: argparse.Namespace) -> int:
    def action() -> int:
        print(f"indexed {_pipeline().ledger.reindex():,} imports")
        return 0

    return _guard(action)


def run_cancel(args: argparse.Namespace) -> int:
    def action() -> int:
        pipeline = _pipeline()
        record = cancel(pipeline, find_import(pipeline, args.key))
        print(f"{printable(record.blob)}: cancelled")
        return 0

    return _guard(action)


def run_purge(args: argparse.Namespace) -> int:
    def action() -> int:
        pipeline = _pipeline()
        try:
            cutoff_of(pipeline, args.older_than)
        except ValueError as error:
            raise OperatorError(f"--older-than: {error}") from None
        summary = purge(pipeline, older_than_days=args.older_than, dry_run=args.dry_run)
        print("\n".join(purge_lines(summary)))
        return 0

    return _guard(action)


def purge_lines(summary: PurgeSummary) -> list[str]:
    """What a purge removed (or, dry, would remove), by state, and what it kept and why."""
    verb = "would remove" if summary.dry_run else "removed"
    lines = [f"final imports last changed before {summary.cutoff:%Y-%m-%d %H:%M} UTC "
             f"({summary.retention_days} days): {verb} {sum(summary.removed.values()):,}"]
    lines += [f"  {state:14} {count:>8,}" for state, count in sorted(summary.removed.items())]
    if summary.kept:
        lines.append("kept: " + ", ".join(f"{reason}={count:,}" for reason, count in sorted(summary.kept.items())))
    if summary.orphans:
        dropped = "would drop" if summary.dry_run else "dropped"
        lines.append(f"index rows without a record: {summary.orphans:,} ({dropped})")
    if not summary.dry_run:
        lines.append(f"report blobs and snapshots deleted: {summary.blobs:,}")
    if summary.stopped_by:
        lines.append(f"stopped by its {summary.stopped_by.replace('_', ' ')}: run it again for the rest")
    return lines
