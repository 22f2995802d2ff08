"""The readable report next to a dropped file: one self-contained HTML page (inline CSS, no script,
no external asset), rendered from the same JSON as `imports show --json`, in the dropper's language
(shared.language: REPORT_LANGUAGE, dates in REPORT_TIMEZONE). Every value goes through html.escape,
so a blob name or a file line holding `<script>` or quotes reads as text.

For each verdict the page says, in plain words, what happened and what to do now; known reasons
(no dossier, Loop's documented refusals) get their own explanation and fix, an unknown one is shown
as it was written. The facts an accountant checks come next (the file, the dossier, the period, the
journals, the counts and totals), then every problem found, then the technical details folded.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote

from shared.flows.dossier import FEC_FILE_NAME
from shared.language.texts import left_out_text, where
from shared.language.wording import N_, Wording

FIRST_FINDINGS = 20
RED, GREEN, AMBER, BLUE, GREY = "#b3261e", "#1e6b34", "#8a5a00", "#1f4e8c", "#555555"


@dataclass(frozen=True)
class Verdict:
    headline: str
    happened: str
    todo: str
    colour: str


# What each state means to whoever dropped the file: a headline, what happened, what to do now.
VERDICTS: dict[str, Verdict] = {
    "completed": Verdict(N_("Imported into Loop"), N_("Loop finished importing the file."),
                         N_("Nothing to do: the entries are in Loop."), GREEN),
    "rejected": Verdict(N_("Refused: not sent to Loop"),
                        N_("The file has errors, so it was not sent to Loop."),
                        N_("Fix the errors listed below, then drop the file again."), RED),
    "submit_failed": Verdict(N_("Not imported: Loop refused the file"),
                             N_("The file was sent to Loop, which refused it or could not be reached."),
                             N_("Read the reason below; if it does not help, send this page to your administrator."),
                             RED),
    "failed": Verdict(N_("Import failed in Loop"),
                      N_("Loop received the file but finished the import with an error."),
                      N_("Open the import history in Loop to see why, fix the file, then drop it again."), RED),
    "unknown": Verdict(N_("Outcome unknown"),
                       N_("The file may have reached Loop, but its answer was lost."),
                       N_("Do not drop the file again: your administrator checks in Loop whether it was imported "
                          "and finishes this import."), AMBER),
    "duplicate": Verdict(N_("Not sent: duplicate"),
                         N_("The same content was already sent to this dossier, so it was not sent again."),
                         N_("Nothing to do if that import is the right one. To send the file again anyway, drop it "
                            "again with the metadata force=true."), AMBER),
    "superseded": Verdict(N_("Replaced"), N_("A newer version of this file was dropped before this one was read."),
                          N_("Nothing to do: the newer version has its own verdict on this page."), GREY),
    "cancelled": Verdict(N_("Cancelled"), N_("An operator stopped following this import."),
                         N_("Ask your administrator if you need this file imported."), GREY),
}
IN_PROGRESS = Verdict(N_("In progress"), N_("The import is on its way; this page is updated when it moves."),
                      N_("Nothing to do yet: come back to this page in a few minutes."), BLUE)
ALREADY_IMPORTED = Verdict(N_("Already imported: not sent again"),
                           N_("This content was already imported into Loop: nothing was sent again."),
                           N_("Nothing to do: the entries are in Loop. To import them a second time anyway, drop "
                              "the file again with the metadata force=true."), GREEN)
NO_DOSSIER = Verdict(N_("Refused: no dossier"),
                     N_("We could not tell which Loop dossier this file belongs to, so it was not sent."),
                     N_("Fix the problems listed below, the dossier first, then drop the file again."), RED)

# Reasons the pipeline or Loop gives that have a plain explanation and an obvious fix (the first that
# matches wins). Loop's texts: docs/loop-api.md; the dossier's: shared/flows/dossier.py.
KNOWN_REASONS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"^empty file \(0 bytes\)"),
     N_("The file is empty (0 bytes)."),
     N_("Export the FEC again from the accounting software, then drop the complete file.")),
    (re.compile(r"no dossier: set blob metadata codeibs"),
     N_("The file is not in a dossier's folder and its name does not give a SIREN."),
     N_("Drop the file in the folder named after its Loop dossier code (for example DEMO001/), or name it "
        "<SIREN>FEC<AAAAMMJJ>.txt with a SIREN your administrator has linked to the dossier.")),
    (re.compile(r"no dossier: SIREN (?P<siren>\d+) is not in the dossier table"),
     N_("The SIREN {siren} in the file's name is not linked to any Loop dossier."),
     N_("Ask your administrator to link SIREN {siren} to its dossier, or drop the file in the folder named after "
        "its Loop dossier code.")),
    (re.compile(r"(?P<origin>metadata codeibs|folder|dossier table entry[^']*) '(?P<code>[^']*)' is not a plausible"),
     N_("{code} is not a Loop dossier code (1 to 32 letters, digits, - or _)."),
     N_("Use the dossier code as Loop shows it, then drop the file again.")),
    (re.compile(r"Le dossier (?P<code>\S+) n'existe pas sur le domaine"),
     N_("Loop says the dossier {code} does not exist on your firm's domain."),
     N_("Check the dossier code in Loop (letters and digits exactly as Loop shows them), then drop the file in the "
        "folder of the right code.")),
    (re.compile(r"does not have access to the folder|n'a pas accès au dossier|not activated", re.IGNORECASE),
     N_("Loop refused: the API key is not activated on this dossier."),
     N_("Ask your administrator to activate the API key on this dossier in Loop Hub, then drop the file again.")),
    (re.compile(r"Ambigu[iï]t[ée] sur le chemin|both URI and URL", re.IGNORECASE),
     N_("Loop refused the request: it received both a URI and a URL for the file."),
     N_("Nothing is wrong with your file: send this page to your administrator (a setting of the import).")),
    (re.compile(r"^deleted before it was read"),
     N_("The file was deleted before it could be read: nothing was sent."),
     N_("Nothing to do if that was meant; otherwise drop the file again.")),
    (re.compile(r"^gave up after (?P<attempts>\d+) attempts"),
     N_("The file could not be sent to Loop: {attempts} attempts failed before Loop received it (Loop or the "
        "storage could not be reached)."),
     N_("Nothing is wrong with your file: send this page to your administrator, who can send it again.")),
    (re.compile(r"Loop refused the keys"),
     N_("Loop refused the pipeline's API keys."),
     N_("Nothing is wrong with your file: send this page to your administrator (the Loop keys).")),
)

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:60rem;
padding:0 1rem;color:#1c1c1c;line-height:1.45}
.verdict{border-left:.5rem solid var(--c);padding:.6rem 1rem;background:#f6f6f6;margin-bottom:1.5rem}
.verdict h1{margin:0;color:var(--c);font-size:1.9rem}.verdict p{margin:.3rem 0 0}
table{border-collapse:collapse;width:100%;margin:.4rem 0 1.2rem}
th,td{text-align:left;padding:.25rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}
th{background:#fafafa;font-weight:600}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}code{font-size:.92em;overflow-wrap:anywhere}
.more{color:#555}details{margin:1rem 0}summary{cursor:pointer;font-weight:600}
footer{color:#666;font-size:.85rem;margin-top:2rem}
"""


def _text(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def known_reason(reason: str | None) -> tuple[str, str, dict[str, str]] | None:
    """(explanation, fix, their parameters) of the first known reason found in `reason`, if any."""
    for pattern, explanation, fix in KNOWN_REASONS:
        found = pattern.search(reason or "")
        if found:
            return explanation, fix, found.groupdict()
    return None


# The reasons shared.flows.dossier gives when it finds no dossier (they come first in a reason).
_DOSSIER_PROBLEM = re.compile(r"^no dossier: |^[^;]* is not a plausible dossier code")


def _no_dossier(detail: dict[str, Any]) -> bool:
    return (detail.get("state") == "rejected" and not detail.get("code_ibs")
            and bool(_DOSSIER_PROBLEM.search(detail.get("error") or "")))


def _more_problems(detail: dict[str, Any], w: Wording) -> list[str]:
    """The known problems a no-dossier reason lists after the dossier's (`<dossier>; empty file
    (0 bytes)`), each explained with its fix; the findings are listed apart."""
    if not _no_dossier(detail):
        return []
    known = [known_reason(part) for part in (detail.get("error") or "").split("; ")[1:]]
    return [f"{w._(explanation).format(**params)} {w._(fix).format(**params)}"
            for explanation, fix, params in filter(None, known)]


def verdict_of(detail: dict[str, Any]) -> Verdict:
    state = detail.get("state") or ""
    if state == "duplicate" and (detail.get("earlier") or {}).get("state") == "completed":
        return ALREADY_IMPORTED
    if _no_dossier(detail):
        return NO_DOSSIER
    return VERDICTS.get(state, IN_PROGRESS)


def earlier_sentence(w: Wording, earlier: dict[str, Any]) -> str:
    """`Already imported on 04/12/2026 at 20:19, request …, completed (file …).`"""
    state = STATE_NAMES.get(earlier.get("state") or "", earlier.get("state") or "")
    when = earlier.get("finished_at") or earlier.get("submitted_at") or earlier.get("received_at")
    template = (N_("Already imported on {when}, request {request}, {state} (file {file}).")
                if earlier.get("state") == "completed"
                else N_("Sent on {when}, request {request}, {state} (file {file})."))
    return w._(template).format(when=w.moment(when), request=earlier.get("request_id") or w._("none"),
                                state=w._(state), file=earlier.get("blob"))


def reader_texts(detail: dict[str, Any], w: Wording) -> dict[str, Any]:
    """What the page says, as the JSON report carries it too: the verdict in the reader's language,
    the known reason explained, each finding's message translated."""
    verdict = verdict_of(detail)
    texts: dict[str, Any] = {"language": w.language, "headline": w._(verdict.headline),
                             "what_happened": w._(verdict.happened), "what_to_do": w._(verdict.todo)}
    known = known_reason(detail.get("error")) if detail.get("state") != "duplicate" else None
    if known:
        explanation, fix, params = known
        texts["reason"] = w._(explanation).format(**params)
        texts["fix"] = w._(fix).format(**params)
    elif detail.get("state") == "submit_failed" and detail.get("error"):
        texts["reason"] = w._("Loop's message: {message}").format(message=detail["error"])
    elif detail.get("state") == "rejected" and detail.get("error") and not (detail.get("report") or {}).get("errors"):
        texts["reason"] = detail["error"]  # no error to list and no plain words known: the reason as recorded
    if more := _more_problems(detail, w):
        texts["more_problems"] = more
    earlier = detail.get("earlier")
    if detail.get("state") == "duplicate" and earlier:
        texts["earlier"] = earlier_sentence(w, earlier)
    return texts


def translated_report(detail: dict[str, Any], w: Wording) -> dict[str, Any]:
    """The detail with the reader's texts (`texts`) and each finding's `text` in the reader's language:
    the JSON report next to the file."""
    out = dict(detail)
    out["texts"] = reader_texts(detail, w)
    report = detail.get("report")
    if report:
        out["report"] = {**report, **{
            kind: [{**finding, "text": w.rule_message(finding)} for finding in report.get(kind) or []]
            for kind in ("errors", "warnings")}}
    return out


STATE_NAMES = {
    "received": N_("received"), "retry_wait": N_("waiting to be sent again"), "submitting": N_("being sent"),
    "pending": N_("in progress in Loop"), "unknown": N_("outcome unknown"), "completed": N_("completed"),
    "failed": N_("failed in Loop"), "rejected": N_("refused"), "submit_failed": N_("refused by Loop"),
    "duplicate": N_("duplicate"), "superseded": N_("replaced"), "cancelled": N_("cancelled"),
}


def report_link(from_report: str, to_report: str) -> str:
    """A relative link from one report page to another in the same container (each name's own
    characters kept: `%` in a report name is written `%25` in the link)."""
    relative = posixpath.relpath(to_report, posixpath.dirname(from_report) or ".")
    return quote(relative, safe="/")


def _verdict(detail: dict[str, Any], texts: dict[str, Any], w: Wording) -> str:
    colour = verdict_of(detail).colour
    parts = [f'<section class="verdict" style="--c:{colour}"><h1 id="verdict">{_text(texts["headline"])}</h1>',
             f'<p id="happened">{_text(texts["what_happened"])}</p>']
    if texts.get("earlier"):
        earlier = detail.get("earlier") or {}
        same_page = earlier.get("blob_name") == detail.get("blob_name")  # a re-drop: its page is this one
        link = None if same_page else earlier.get("report_link")
        see = w._("See that import’s report.")
        anchor = f' <a id="earlier-report" href="{_text(link)}">{_text(see)}</a>' if link else ""
        parts.append(f'<p id="earlier">{_text(texts["earlier"])}{anchor}</p>')
    if texts.get("reason"):
        why = w._("Why:")
        parts.append(f'<p id="reason"><strong>{_text(why)}</strong> {_text(texts["reason"])}</p>')
    todo = texts.get("fix") if texts.get("fix") and not _no_dossier(detail) else texts["what_to_do"]
    now = w._("What to do now:")
    parts.append(f'<p id="todo"><strong>{_text(now)}</strong> {_text(todo)}</p></section>')
    return "".join(parts)


def _facts(detail: dict[str, Any], w: Wording) -> str:
    summary = ((detail.get("report") or {}).get("summary")) or {}
    rows = [
        (w._("File"), detail.get("blob")),
        (w._("Dossier"), detail.get("code_ibs") or w._("not found")),
        (w._("Dropped on"), w.moment(detail.get("received_at"))),
        (w._("Sent to Loop on"), w.moment(detail.get("submitted_at")) if detail.get("submitted_at") else None),
        (w._("Finished on"), w.moment(detail.get("finished_at")) if detail.get("finished_at") else None),
    ]
    closing = FEC_FILE_NAME.match(posixpath.basename(detail.get("blob_name") or detail.get("blob") or ""))
    if closing:  # <SIREN>FEC<AAAAMMJJ>: the closing date of the fiscal year
        rows.append((w._("Fiscal year closes on"), w.day(closing.group(2))))
    if summary:
        rows += [
            (w._("Period of the entries"), w.period(summary.get("first_date"), summary.get("last_date"))),
            (w._("Journals"), ", ".join(summary.get("journals") or []) or None),
            (w._("Content"), ", ".join((w.ngettext("{n} entry", "{n} entries", int(summary.get("entries") or 0)),
                                        w.ngettext("{n} line", "{n} lines", int(summary.get("records") or 0))))),
            (w._("Total debit"), w.amount(summary.get("total_debit"))),
            (w._("Total credit"), w.amount(summary.get("total_credit"))),
            (w._("Left out of the totals"), left_out_text(w, summary)),
        ]
    return '<dl id="facts">' + "".join(
        f"<dt>{_text(k)}</dt><dd>{_text(v)}</dd>" for k, v in rows if v) + "</dl>"


def _findings_table(findings: list[dict[str, Any]], counts: dict[str, int], w: Wording) -> str:
    shown: Counter[str] = Counter()
    rows = []
    for finding in findings:
        rule = finding.get("rule") or "?"
        shown[rule] += 1
        if shown[rule] > FIRST_FINDINGS:
            continue
        value = finding.get("value")
        rows.append(f"<tr><td>{_text(where(w, finding.get('line')))}</td><td>{_text(finding.get('column') or '')}</td>"
                    f"<td><code>{_text(value if value is not None else '')}</code></td>"
                    f"<td>{_text(w.rule_message(finding))}</td></tr>")
    more = [w.ngettext("{n} more of the same kind as “{example}”, not listed",
                       "{n} more of the same kind as “{example}”, not listed", counts[rule] - count).format(
                example=w.rule_message(next(f for f in findings if f.get("rule") == rule)))
            for rule, count in shown.items() if counts.get(rule, 0) > min(count, FIRST_FINDINGS)]
    head = "<tr>" + "".join(f"<th>{_text(name)}</th>" for name in (
        w._("Where"), w._("Column"), w._("Value"), w._("Problem"))) + "</tr>"
    return (f"<table>{head}{''.join(rows)}</table>"
            + "".join(f'<p class="more">{_text(line)}</p>' for line in more))


def _problems(detail: dict[str, Any], texts: dict[str, Any], w: Wording) -> str:
    report = detail.get("report") or {}
    counts = report.get("counts") or {}
    errors, warnings = report.get("errors") or [], report.get("warnings") or []
    parts = []
    if _no_dossier(detail):
        reason = texts.get("reason") or detail.get("error")
        fix = texts.get("fix") or ""
        parts.append(f'<li id="dossier-problem">{_text(reason)} <strong>{_text(fix)}</strong></li>')
        parts += [f"<li>{_text(problem)}</li>" for problem in texts.get("more_problems") or []]
    total_errors = sum(counts.get(rule, 0) for rule in {e.get("rule") for e in errors}) or len(errors)
    html = ""
    if parts or errors:
        title = w.ngettext("{n} problem to fix", "{n} problems to fix", len(parts) + total_errors)
        html += f'<h2 id="errors">{_text(title)}</h2>'
        if parts:
            html += f"<ul>{''.join(parts)}</ul>"
        if errors:
            html += _findings_table(errors, counts, w)
    elif report:
        none = w._("No errors found in the file.")
        html += f"<p>{_text(none)}</p>"
    if warnings:
        total = sum(counts.get(rule, 0) for rule in {x.get("rule") for x in warnings}) or len(warnings)
        summary = w.ngettext("{n} warning: importable, worth a look", "{n} warnings: importable, worth a look", total)
        html += (f'<details id="warnings"><summary>{_text(summary)}</summary>'
                 f"{_findings_table(warnings, counts, w)}</details>")
    return html


def _technical(detail: dict[str, Any], w: Wording) -> str:
    loop = detail.get("loop_status")
    counts = ((detail.get("report") or {}).get("counts")) or {}
    rows = [
        (w._("Version (ETag)"), detail.get("etag")),
        (w._("State"), detail.get("state")),
        (w._("Loop request id"), detail.get("request_id") or w._("none (not sent)")),
        (w._("Loop status"), f"{loop} ({detail.get('loop_status_label')})" if loop else None),
        (w._("Reason recorded"), detail.get("error")),
        (w._("Rules"), ", ".join(f"{rule} ×{count}" for rule, count in sorted(counts.items())) or None),
    ]
    facts = "<dl>" + "".join(f"<dt>{_text(k)}</dt><dd>{_text(v)}</dd>" for k, v in rows if v) + "</dl>"
    history = "".join(
        f"<tr><td>{_text(w.moment(entry.get('at')))}</td><td>{_text(entry.get('state'))}</td>"
        f"<td>{_text(entry.get('note'))}</td></tr>"
        for entry in detail.get("history") or []
    )
    head = "<tr>" + "".join(f"<th>{_text(name)}</th>" for name in (w._("When"), w._("State"), w._("Note"))) + "</tr>"
    summary, title = w._("Technical details"), w._("History")
    return (f'<details id="technical"><summary>{_text(summary)}</summary>{facts}'
            f"<h3>{_text(title)}</h3><table>{head}{history}</table></details>")


def render_report_html(detail: dict[str, Any], w: Wording | None = None) -> str:
    """The whole page for one version's detail (the `imports show --json` object)."""
    w = w or Wording()
    texts = reader_texts(detail, w)
    title = w._("{headline}: {file}").format(headline=texts["headline"], file=detail.get("blob"))
    footer = w._("Written by the FEC import pipeline on {when}; the JSON report next to this page holds the same "
                 "facts.").format(when=w.moment(detail.get("updated_at")))
    return (
        f'<!DOCTYPE html><html lang="{_text(w.language)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>{_text(title)}</title><style>{_STYLE}</style></head><body>"
        f"{_verdict(detail, texts, w)}{_facts(detail, w)}{_problems(detail, texts, w)}{_technical(detail, w)}"
        f"<footer>{_text(footer)}</footer></body></html>"
    )
