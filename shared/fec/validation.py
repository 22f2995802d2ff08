"""Streaming FEC validator: reads a byte stream once, in bounded memory, and explains what is wrong.

Public API (shared/flows/submit.py and the CLI use it): `validate_stream`, `validate_path`,
`ValidationReport`, `Finding`. The rules, their levels and reasons: shared/fec/rules.py and
docs/fec-validation.md. Errors block the import; warnings are recorded and the file is still sent.

Modules of shared.fec: lines (bytes to lines), layout (header, value formats), fast (the fast regex
path), checks (the rule bodies), entries (entry balance), numbering (EcritureNum schemes, bounded).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from pathlib import PurePath
from typing import Any

from shared.fec.checks import Checker
from shared.fec.layout import FILE_NAME, Layout, fiscal_period, format_micro, read_header
from shared.fec.lines import LINE_TOO_LONG, Lines
from shared.fec.rules import EMPTY_FILE, ONLY_EMPTY_LINES, RULES, Finding, Findings

__all__ = ["RULES", "Finding", "ValidationReport", "read_chunks", "validate_path", "validate_stream"]

READ_CHUNK = 1024 * 1024
SCHEME_NAMES = {"file": "over the file", "journal": "per journal", "file_year": "over the file, per year",
                "journal_year": "per journal and year", "none": "in no continuous scheme"}


@dataclass
class ValidationReport:
    valid: bool
    errors: list[Finding]
    warnings: list[Finding]
    counts: dict[str, int]
    summary: dict[str, Any]
    file_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "file_name": self.file_name,
            "errors": [finding.to_dict() for finding in self.errors],
            "warnings": [finding.to_dict() for finding in self.warnings],
            "counts": dict(self.counts),
            "summary": dict(self.summary),
        }

    @property
    def warning_count(self) -> int:
        """Every warning found (`warnings` holds at most the first N of each rule)."""
        return sum(count for rule, count in self.counts.items() if RULES[rule].level == "warning")

    def to_text(self) -> str:
        s = self.summary
        errors = sum(count for rule, count in self.counts.items() if RULES[rule].level == "error")
        lines = [
            f"{self.file_name or 'file'}: {'importable' if self.valid else 'NOT importable'}"
            f" ({errors} errors, {sum(self.counts.values()) - errors} warnings)",
            f"  {s.get('records', 0)} records, {s.get('entries', 0)} entries, debit {s.get('total_debit')},"
            f" credit {s.get('total_credit')}, {s.get('first_date') or '?'} to {s.get('last_date') or '?'}"
            + _left_out_text(s),
            f"  layout {s.get('layout')}, encoding {s.get('encoding')}, separator {s.get('separator')!r},"
            f" line ending {s.get('line_ending')}, journals {', '.join(s.get('journals') or [])}",
        ]
        numbering = s.get("numbering")
        if numbering:
            lines.append(f"  EcritureNum numbered {SCHEME_NAMES[numbering['scheme']]}, {numbering['series']} series")
        for label, findings in (("error", self.errors), ("warning", self.warnings)):
            for finding in findings:
                where = f"line {finding.line}" if finding.line else "file"
                lines.append(f"  {label} {finding.rule}: {where}: {finding.message}")
        for rule, count in sorted(self.counts.items()):
            shown = sum(finding.rule == rule for finding in (*self.errors, *self.warnings))
            if count > shown:
                lines.append(f"  {RULES[rule].level} {rule}: {count} in all, the first {shown} listed")
        return "\n".join(lines)


def _left_out_text(summary: dict[str, Any]) -> str:
    """What the totals above leave out, said: "; 3 unreadable lines not counted (lines 4, 9, 12)"."""
    count = summary.get("lines_left_out") or 0
    if not count:
        return ""
    first = summary.get("lines_left_out_first") or []
    listed = ", ".join(map(str, first)) + (", ..." if count > len(first) else "")
    return f"; {count} unreadable line{'s' if count > 1 else ''} not counted (line{'s' if count > 1 else ''} {listed})"


def validate_stream(
    chunks: Iterable[bytes], file_name: str | None = None, *, max_examples_per_rule: int = 20
) -> ValidationReport:
    """Validate a FEC file given as byte chunks (any sizes); read once, in bounded memory."""
    with _fewer_collections():
        return _validate(chunks, file_name, Findings(max_examples_per_rule))


@contextmanager
def _fewer_collections(threshold: int = 100_000) -> Iterator[None]:
    """Run the cyclic garbage collector less often while validating.

    The validator allocates millions of short-lived tuples and lists but makes no reference cycles,
    so refcounting frees everything; at the default threshold (700 allocations) the collector
    rescans each batch's rows dozens of times, a quarter of the validator's time. Collection stays
    on, every `threshold` allocations, and the previous setting is restored after.
    """
    previous = gc.get_threshold()
    gc.set_threshold(max(previous[0], threshold), *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def _validate(chunks: Iterable[bytes], file_name: str | None, findings: Findings) -> ValidationReport:
    if file_name and not FILE_NAME.match(PurePath(file_name).stem):
        findings.add("file_name", None, value=file_name)
    reader = Lines(findings)
    period = fiscal_period(PurePath(file_name).stem) if file_name else None
    layout, checker = _read(reader, findings, chunks, period)
    try:
        if reader.line_number == 0 and not reader.fatal:
            findings.add("empty_file", None, detail=EMPTY_FILE)
        elif layout is None and checker is None and not reader.fatal and not findings.counts.keys() & {
                "header_separator", "header_missing_column", "line_too_long"}:
            findings.add("empty_file", None, detail=ONLY_EMPTY_LINES)
        elif checker is not None:
            checker.finish()
            if checker.records == 0:
                findings.add("no_records", None)
        return _report(findings, reader, layout, checker, file_name)
    finally:
        if checker is not None:
            checker.book.close()


def _read(reader: Lines, findings: Findings, chunks: Iterable[bytes],
          period: tuple[str, str] | None) -> tuple[Layout | None, Checker | None]:
    """Find the header (the first line that is not blank), then check every line after it."""
    batches = reader.batches(chunks)
    for start, batch in batches:
        for offset, line in enumerate(batch):
            if line is LINE_TOO_LONG:
                continue
            if not line.strip(" "):
                findings.add("empty_line", start + offset)
                continue
            layout = read_header(line, findings)
            if layout is None:
                return None, None
            checker = Checker(layout, findings, period)
            checker.consume(chain([(start + offset + 1, batch[offset + 1:])], batches))
            return layout, checker
    return None, None


def _iso_day(value: str | None) -> str | None:
    return f"{value[:4]}-{value[4:6]}-{value[6:]}" if value else None


def _report(
    findings: Findings, reader: Lines, layout: Layout | None, checker: Checker | None, file_name: str | None
) -> ValidationReport:
    summary: dict[str, Any] = {
        "records": checker.records if checker else 0,
        "entries": checker.book.distinct if checker else 0,
        "total_debit": format_micro(checker.total_debit) if checker else "0.00",
        "total_credit": format_micro(checker.total_credit) if checker else "0.00",
        "first_date": _iso_day(checker.first_date) if checker else None,
        "last_date": _iso_day(checker.last_date) if checker else None,
        "journals": sorted(checker.journals) if checker else [],
        "numbering": checker.numbering_summary if checker else None,
        "encoding": ("utf-8-sig" if reader.bom else reader.encoding) if not reader.fatal else None,
        "separator": layout.separator if layout else None,
        "layout": layout.kind if layout else None,
        "line_ending": reader.line_ending if reader.line_number else None,
        "final_newline": reader.final_newline,
        "lines": reader.line_number,
        "lines_left_out": checker.left_out if checker else 0,
        "lines_left_out_first": list(checker.left_out_lines) if checker else [],
        "closing_date": _iso_day(checker.period[1]) if checker and checker.period else None,
    }
    return ValidationReport(
        valid=not findings.errors,
        errors=findings.errors,
        warnings=findings.warnings,
        counts=dict(findings.counts),
        summary=summary,
        file_name=file_name,
    )


def read_chunks(path: str | os.PathLike[str], size: int = READ_CHUNK) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(size):
            yield chunk


def validate_path(path: str | os.PathLike[str]) -> ValidationReport:
    return validate_stream(read_chunks(path), file_name=PurePath(path).name)
