"""Texts made of several messages: the `validate` command's report, the summary of a validation."""

from __future__ import annotations

from typing import Any

from shared.fec.rules import ERROR, RULES
from shared.language.wording import N_, Wording

SCHEMES = {
    "file": N_("over the file"), "journal": N_("per journal"), "file_year": N_("over the file, per year"),
    "journal_year": N_("per journal and year"), "none": N_("in no continuous scheme"),
}
LEVELS = {"error": N_("error"), "warning": N_("warning")}


def totals_by_level(counts: dict[str, int]) -> tuple[int, int]:
    """(errors, warnings) found in all, from a report's counts per rule."""
    errors = sum(count for rule, count in counts.items() if rule in RULES and RULES[rule].level == ERROR)
    return errors, sum(counts.values()) - errors


def summary_text(w: Wording, summary: dict[str, Any]) -> str:
    """`3 lines, 1 entry, debit 1 724,54 €, credit 1 724,54 €, from 01/01/2021 to 02/05/2021`."""
    parts = [
        w.ngettext("{n} line", "{n} lines", int(summary.get("records") or 0)),
        w.ngettext("{n} entry", "{n} entries", int(summary.get("entries") or 0)),
        w._("debit {amount}").format(amount=w.amount(summary.get("total_debit") or 0)),
        w._("credit {amount}").format(amount=w.amount(summary.get("total_credit") or 0)),
    ]
    period = w.period(summary.get("first_date"), summary.get("last_date"))
    text = ", ".join([*parts, period] if period else parts)
    return text + (f"; {left_out}" if (left_out := left_out_text(w, summary)) else "")


def left_out_text(w: Wording, summary: dict[str, Any]) -> str | None:
    """The unreadable lines the totals leave out, said rather than hidden: `3 lignes illisibles non
    comptées (lignes 4, 9, 12)`; None when the totals hold every line."""
    count = int(summary.get("lines_left_out") or 0)
    if not count:
        return None
    listed = summary.get("lines_left_out_first") or []
    lines = ", ".join(map(str, listed)) + (", …" if count > len(listed) else "")
    return w.ngettext("{n} unreadable line not counted (line {lines})",
                      "{n} unreadable lines not counted (lines {lines})", count).format(lines=lines)


def where(w: Wording, line: int | None) -> str:
    return w._("line {line}").format(line=line) if line else w._("the file")


def validation_text(w: Wording, report: dict[str, Any]) -> str:
    """The `validate` command's text output for a report (`ValidationReport.to_dict()`)."""
    summary, counts = report.get("summary") or {}, report.get("counts") or {}
    errors, warnings = totals_by_level(counts)
    verdict = w._("importable") if report.get("valid") else w._("NOT importable")
    tally = ", ".join((w.ngettext("{n} error", "{n} errors", errors),
                       w.ngettext("{n} warning", "{n} warnings", warnings)))
    journals = ", ".join(summary.get("journals") or []) or "-"
    lines = [
        w._("{file}: {verdict} ({tally})").format(file=report.get("file_name") or w._("file"), verdict=verdict,
                                                  tally=tally),
        "  " + summary_text(w, summary),
        "  " + w._("journals: {journals}; layout {layout}, encoding {encoding}, separator {separator}, "
                   "line ending {ending}").format(journals=journals, layout=summary.get("layout"),
                                                  encoding=summary.get("encoding"),
                                                  separator=repr(summary.get("separator")),
                                                  ending=summary.get("line_ending")),
    ]
    numbering = summary.get("numbering")
    if numbering and numbering.get("scheme") in SCHEMES:
        scheme = w._(SCHEMES[numbering["scheme"]])
        series = w.ngettext("EcritureNum numbered {scheme}, {n} series", "EcritureNum numbered {scheme}, {n} series",
                            int(numbering.get("series") or 0))
        lines.append("  " + series.format(scheme=scheme))
    for level, findings in (("error", report.get("errors") or []), ("warning", report.get("warnings") or [])):
        for finding in findings:
            lines.append("  " + w._("{level} {rule}: {where}: {message}").format(
                level=w._(LEVELS[level]), rule=finding.get("rule"), where=where(w, finding.get("line")),
                message=w.rule_message(finding)))
    shown = [finding.get("rule") for finding in (*(report.get("errors") or []), *(report.get("warnings") or []))]
    for rule, count in sorted(counts.items()):
        listed = shown.count(rule)
        if count > listed and rule in RULES:
            tally = w.ngettext("{n} in all, the first {shown} listed", "{n} in all, the first {shown} listed", count)
            lines.append("  " + w._("{level} {rule}: {count}").format(
                level=w._(LEVELS[RULES[rule].level]), rule=rule, count=tally.format(shown=w.number(listed))))
    return "\n".join(lines)
