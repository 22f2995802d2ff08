"""The readable report next to a dropped file: one self-contained HTML page (inline CSS, no script,
no external asset), rendered from the same JSON as `imports show --json`. Every value goes through
html.escape, so a blob name or a file line holding `<script>` or quotes reads as text."""

from __future__ import annotations

from html import escape
from typing import Any

# What each state means to whoever dropped the file: a headline, a sentence, a colour.
VERDICTS: dict[str, tuple[str, str, str]] = {
    "rejected": ("Rejected", "The file was not sent to Loop. Fix the errors below and drop it again.", "#b3261e"),
    "submit_failed": ("Not imported", "Loop refused the file or could not be reached; see the reason below.",
                      "#b3261e"),
    "failed": ("Failed in Loop", "Loop finished the import with an error (status 4); see Loop's import history.",
               "#b3261e"),
    "completed": ("Imported", "Loop finished the import (status 3).", "#1e6b34"),
    "unknown": ("Outcome unknown", "The file may have reached Loop; an operator checks it before anything is "
                "sent again.", "#8a5a00"),
    "duplicate": ("Not sent: duplicate", "The same content was already sent to this dossier; see the reason below.",
                  "#8a5a00"),
    "superseded": ("Replaced", "A newer version of this file was dropped before this one was read.", "#555555"),
    "cancelled": ("Cancelled", "An operator stopped following this import.", "#555555"),
}
IN_PROGRESS = ("In progress", "The import is on its way; this page is updated when it moves.", "#1f4e8c")
FIRST_FINDINGS = 20

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:60rem;
padding:0 1rem;color:#1c1c1c;line-height:1.45}
.verdict{border-left:.5rem solid var(--c);padding:.6rem 1rem;background:#f6f6f6;margin-bottom:1.5rem}
.verdict h1{margin:0;color:var(--c);font-size:1.9rem}.verdict p{margin:.3rem 0 0}
table{border-collapse:collapse;width:100%;margin:.4rem 0 1.2rem}
th,td{text-align:left;padding:.25rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}
th{background:#fafafa;font-weight:600}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}code{font-size:.92em;overflow-wrap:anywhere}
.rule{margin-top:1rem}.count{color:#555}details{margin:1rem 0}summary{cursor:pointer;font-weight:600}
footer{color:#666;font-size:.85rem;margin-top:2rem}
"""


def _text(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _verdict(detail: dict[str, Any]) -> str:
    title, sentence, colour = VERDICTS.get(detail.get("state") or "", IN_PROGRESS)
    reason = detail.get("error")
    return (
        f'<section class="verdict" style="--c:{colour}"><h1 id="verdict">{_text(title)}</h1>'
        f"<p>{_text(sentence)}</p>"
        + (f'<p id="reason"><strong>Reason:</strong> {_text(reason)}</p>' if reason else "")
        + "</section>"
    )


def _facts(detail: dict[str, Any]) -> str:
    loop = detail.get("loop_status")
    waiting = "not known yet" if detail.get("request_id") else "none (not sent)"
    loop_text = f"{loop} ({detail.get('loop_status_label')})" if loop else waiting
    rows = [
        ("File", detail.get("blob")),
        ("Version (ETag)", detail.get("etag")),
        ("Dossier (codeIbs)", detail.get("code_ibs") or "not resolved"),
        ("State", detail.get("state")),
        ("Loop request id", detail.get("request_id") or "none (not sent)"),
        ("Loop status", loop_text),
        ("Received", detail.get("received_at")),
        ("Submitted", detail.get("submitted_at")),
        ("Finished", detail.get("finished_at")),
    ]
    return "<dl>" + "".join(f"<dt>{_text(k)}</dt><dd>{_text(v or '')}</dd>" for k, v in rows) + "</dl>"


def _findings_table(findings: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{_text(f.get('line') or 'file')}</td><td>{_text(f.get('column') or '')}</td>"
        f"<td><code>{_text(f.get('value') if f.get('value') is not None else '')}</code></td>"
        f"<td>{_text(f.get('message'))}</td></tr>"
        for f in findings[:FIRST_FINDINGS]
    )
    return f"<table><tr><th>Line</th><th>Column</th><th>Value</th><th>Problem</th></tr>{rows}</table>"


def _by_rule(findings: list[dict[str, Any]], counts: dict[str, int]) -> str:
    rules: dict[str, list[dict[str, Any]]] = {}
    for finding in findings:
        rules.setdefault(finding.get("rule") or "?", []).append(finding)
    parts = []
    for rule, found in rules.items():
        count = counts.get(rule, len(found))
        shown = min(count, FIRST_FINDINGS, len(found))
        parts.append(
            f'<div class="rule"><h3><code>{_text(rule)}</code> <span class="count">{_text(count)} '
            f"{'time' if count == 1 else 'times'} (first {shown} below)</span></h3>{_findings_table(found)}</div>"
        )
    return "".join(parts)


def _left_out(summary: dict[str, Any]) -> str:
    """The lines the totals above leave out (unreadable), said rather than hidden."""
    count = summary.get("lines_left_out") or 0
    if not count:
        return ""
    listed = summary.get("lines_left_out_first") or []
    first = ", ".join(map(str, listed)) + (", ..." if count > len(listed) else "")
    return (f'<p id="left-out">{_text(count)} unreadable line{"s" if count > 1 else ""} not counted in these '
            f"totals (line{'s' if count > 1 else ''} {_text(first)}).</p>")


def _validation(detail: dict[str, Any]) -> str:
    report = detail.get("report")
    if not report:
        return ""
    counts = report.get("counts") or {}
    errors, warnings = report.get("errors") or [], report.get("warnings") or []
    summary = report.get("summary") or {}
    head = (
        f"<p>{_text(summary.get('records'))} records, {_text(summary.get('entries'))} entries, "
        f"debit {_text(summary.get('total_debit'))}, credit {_text(summary.get('total_credit'))}.</p>"
        + _left_out(summary)
    )
    body = f'<h2 id="errors">Errors to fix</h2>{_by_rule(errors, counts)}' if errors else "<p>No errors.</p>"
    if warnings:
        total = sum(counts.get(rule, 0) for rule in {w.get("rule") for w in warnings}) or len(warnings)
        body += (f'<details id="warnings"><summary>Warnings ({_text(total)}): importable, worth a look'
                 f"</summary>{_by_rule(warnings, counts)}</details>")
    return f"<h2>Validation</h2>{head}{body}"


def _history(detail: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_text(entry.get('at'))}</td><td>{_text(entry.get('state'))}</td><td>{_text(entry.get('note'))}</td>"
        "</tr>"
        for entry in detail.get("history") or []
    )
    return f"<h2>History</h2><table><tr><th>Time (UTC)</th><th>State</th><th>Note</th></tr>{rows}</table>"


def render_report_html(detail: dict[str, Any]) -> str:
    """The whole page for one version's detail (the `imports show --json` object)."""
    title = f"{VERDICTS.get(detail.get('state') or '', IN_PROGRESS)[0]}: {detail.get('blob')}"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>{_text(title)}</title><style>{_STYLE}</style></head><body>"
        f"{_verdict(detail)}{_facts(detail)}{_validation(detail)}{_history(detail)}"
        f"<footer>Written by the FEC import pipeline at {_text(detail.get('updated_at'))}; the JSON report next "
        "to this page holds the same facts.</footer></body></html>"
    )
