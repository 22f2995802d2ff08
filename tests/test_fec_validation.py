"""The streaming FEC validator: real samples, chunking, every rule, and hostile input."""

from __future__ import annotations

import itertools
import tracemalloc

import pytest

from shared.fec_validation import read_chunks, validate_path, validate_stream
from tests.fec_factory import FecSpec

SAMPLE_NAMES = {
    "neolegal-fr_fec-reader_0000000001FEC20220831.txt": "0000000001FEC20220831.txt",
    "neolegal-fr_fec-reader_000000000FEC20231231.txt": "000000000FEC20231231.txt",
    "neolegal-fr_fec-reader_111111111FEC20221231.TXT": "111111111FEC20221231.TXT",
    "neolegal-fr_fec-reader_123456789FEC20500930.txt": "123456789FEC20500930.txt",
    "odoo_odoo_test_wizard_expected_542107651FEC20210502.txt": "542107651FEC20210502.txt",
}


def validate_bytes(data: bytes, name: str | None = "123456789FEC20241231.txt", chunk: int = 65536):
    return validate_stream((data[i:i + chunk] for i in range(0, len(data), chunk)), file_name=name)


def rules(report) -> set[str]:
    return {finding.rule for finding in report.errors}


@pytest.mark.parametrize("sample", sorted(SAMPLE_NAMES))
def test_every_real_sample_is_importable(samples_dir, sample):
    report = validate_stream(read_chunks(samples_dir / sample), file_name=SAMPLE_NAMES[sample])
    assert report.valid, report.to_text()
    assert report.errors == []
    assert report.summary["total_debit"] == report.summary["total_credit"]


def test_sample_quirks_are_recognised(samples_dir):
    def summary(sample):
        report = validate_stream(read_chunks(samples_dir / sample), file_name=SAMPLE_NAMES[sample])
        return report, report.summary

    report, s = summary("neolegal-fr_fec-reader_0000000001FEC20220831.txt")
    assert (s["encoding"], s["records"], s["total_debit"]) == ("utf-8-sig", 5422, "10186219.81")
    assert report.counts["file_name"] == 1  # a 10-digit "SIREN"
    report, s = summary("neolegal-fr_fec-reader_000000000FEC20231231.txt")
    assert (s["layout"], s["records"]) == ("bnc", 2102)
    assert "ac" in s["journals"]
    report, s = summary("neolegal-fr_fec-reader_111111111FEC20221231.TXT")
    assert (s["encoding"], s["separator"], s["records"]) == ("iso-8859-15", "|", 934)
    assert report.counts["trailing_separator"] == 1
    report, s = summary("neolegal-fr_fec-reader_123456789FEC20500930.txt")
    assert (s["line_ending"], s["final_newline"], s["records"]) == ("CR CR LF", False, 10756)
    assert "empty_line" not in report.counts  # CR CR LF makes no phantom records
    report, s = summary("odoo_odoo_test_wizard_expected_542107651FEC20210502.txt")
    assert (s["line_ending"], s["total_debit"], s["first_date"]) == ("CRLF", "7760.45", "2021-05-02")
    assert report.warnings == []


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_any_chunking_gives_the_same_report(samples_dir, chunk):
    for sample in ("neolegal-fr_fec-reader_0000000001FEC20220831.txt", "neolegal-fr_fec-reader_111111111FEC20221231.TXT",
                   "odoo_odoo_test_wizard_expected_542107651FEC20210502.txt"):
        whole = validate_path(samples_dir / sample).to_dict()
        assert validate_stream(read_chunks(samples_dir / sample, chunk), file_name=sample).to_dict() == whole


@pytest.mark.parametrize(
    ("change", "rule", "line"),
    [
        (lambda rows: rows[2].__setitem__(3, "20191232"), "invalid_date", 3),
        (lambda rows: rows[2].__setitem__(9, "20190230"), "invalid_date", 3),
        (lambda rows: rows[1].__setitem__(11, "100.00"), "decimal_point", 2),
        (lambda rows: rows[1].__setitem__(12, "1 200,00"), "thousands_separator", 2),
        (lambda rows: rows[1].__setitem__(12, "12O,00"), "invalid_amount", 2),
        (lambda rows: rows[3].__setitem__(5, ""), "required_empty", 4),
        (lambda rows: rows[2].append("extra"), "column_count", 3),
        (lambda rows: rows[3].__setitem__(11, "20,01"), "unbalanced_entry", 2),
    ],
)
def test_each_rule_fires_at_its_line(change, rule, line):
    spec = FecSpec()
    rows = spec.rows()
    change(rows)
    report = validate_bytes(spec.render(rows))
    assert not report.valid
    assert rule in rules(report)
    assert next(f for f in report.errors if f.rule == rule).line == line


def test_unbalanced_file_and_signs_after_the_number():
    spec = FecSpec(entries=[[("401000", 0, 1000), ("607000", 1000, 0)]])
    rows = spec.rows()
    rows[1][12] = "10,00-"  # credit of -10 is a debit of 10: the entry is off by 20, the file too
    report = validate_bytes(spec.render(rows))
    assert rules(report) == {"unbalanced_entry", "unbalanced_file"}
    assert "off by 20.00" in next(f.message for f in report.errors if f.rule == "unbalanced_entry")


def test_entries_are_per_journal_and_a_reappearing_entry_is_summed():
    spec = FecSpec(entries=[[("401000", 0, 1000)], [("512000", 500, 0)]])
    rows = spec.rows()
    rows.append(list(rows[1]))  # entry 1 comes back later with the matching debit
    rows[3][2], rows[3][11], rows[3][12] = "1", "10,00", "0,00"
    rows.append(list(rows[2]))
    rows[4][0], rows[4][11], rows[4][12] = "BQ", "0,00", "5,00"  # same number, other journal
    report = validate_bytes(spec.render(rows))
    assert "unbalanced_file" not in rules(report)
    assert [f.value for f in report.errors if f.rule == "unbalanced_entry"] == ["AC/2", "BQ/2"]


def test_montant_sens_layout_checks_sens():
    spec = FecSpec(layout="montant_sens")
    rows = spec.rows()
    rows[1][12] = "X"
    report = validate_bytes(spec.render(rows))
    assert "invalid_sens" in rules(report)


def test_a_repeated_header_is_accepted():
    spec = FecSpec()
    rows = spec.rows()
    report = validate_bytes(spec.render([*rows, rows[0], *rows[1:]]).replace(b"\t1\t", b"\t1\t"))
    assert "repeated_header" in report.counts
    assert "column_count" not in report.counts


def test_header_missing_column_names_it():
    spec = FecSpec()
    rows = [row[:16] + row[17:] for row in spec.rows()]
    report = validate_bytes(spec.render(rows))
    (finding,) = report.errors
    assert finding.rule == "header_missing_column"
    assert "Montantdevise" in finding.message


def test_the_report_is_bounded_but_counts_are_exact():
    spec = FecSpec(entries=[[("401000", 100, 100)] for _ in range(5000)])
    rows = spec.rows()
    for row in rows[1:]:
        row[3] = "20241301"
    report = validate_bytes(spec.render(rows))
    assert report.counts["invalid_date"] == 5000
    assert len([f for f in report.errors if f.rule == "invalid_date"]) == 20


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b"", "empty_file"),
        ("\t".join(FecSpec().rows()[0]).encode() + b"\n", "no_records"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, "not_text"),
        ("\t".join(FecSpec().rows()[0]).encode("utf-16"), "utf16"),
        ("\t".join(FecSpec().rows()[0]).encode("utf-16-le"), "utf16"),
        (b"|||||\n" * 1000, "header_missing_column"),
        (b"\t\t\t\n" * 1000, "header_missing_column"),
        (b"JournalCode JournalLib\n", "header_separator"),
    ],
)
def test_bad_input_gives_a_clear_report(data, rule):
    report = validate_bytes(data)
    assert not report.valid
    assert rule in rules(report)
    assert report.to_text()


def test_nul_bytes_inside_the_file():
    data = FecSpec(entries=[[("401000", 100, 100)] for _ in range(4000)]).render()
    report = validate_bytes(data[:-40] + b"\x00" + data[-40:])
    assert "nul_byte" in rules(report)


def test_a_1_mb_line_is_skipped_in_bounded_memory():
    spec = FecSpec()
    good = spec.render()
    data = good + b"A" * (1024 * 1024) + b"\n" + good.split(b"\n", 1)[1]
    tracemalloc.start()
    report = validate_bytes(data, chunk=65536)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert report.counts["line_too_long"] == 1
    assert next(f for f in report.errors if f.rule == "line_too_long").line == 5
    assert report.summary["records"] == 6
    assert peak < 4 * 1024 * 1024


def test_a_2_gb_stream_of_garbage_lines_is_read_in_bounded_memory():
    """2 GB streamed through (never stored): lines of 1 MB without a newline. Memory stays small;
    the validator keeps reading (it cannot know the end) but holds at most one line."""
    header = "\t".join(FecSpec().rows()[0]).encode() + b"\n"
    block = b"x" * (1024 * 1024)
    chunks = itertools.chain([header], itertools.repeat(block, 2048))
    tracemalloc.start()
    report = validate_stream(chunks, file_name="123456789FEC20241231.txt")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert not report.valid
    assert report.counts["line_too_long"] == 1
    assert peak < 8 * 1024 * 1024


def test_file_name_rule_is_a_warning_only():
    report = validate_bytes(FecSpec().render(), name="export.csv")
    assert report.valid
    assert [f.rule for f in report.warnings] == ["file_name"]
    assert validate_bytes(FecSpec().render(), name="123456789FEC20241231.txt").warnings == []


def test_to_dict_shape():
    report = validate_bytes(FecSpec().render())
    out = report.to_dict()
    assert set(out) >= {"valid", "errors", "warnings", "counts", "summary"}
    assert out["summary"]["records"] == 3
    assert out["summary"]["entries"] == 1
    assert out["summary"]["total_debit"] == "120.00"


def test_the_column_path_and_the_line_path_give_the_same_report(samples_dir, monkeypatch):
    """Batches of well-formed records are booked column-wise; the report must not depend on it."""
    from shared import fec_validation  # noqa: PLC0415

    spec = FecSpec(entries=[[("401000", 0, 1000 + n), ("607000", 1000 + n, 0)] for n in range(3000)])
    rows = spec.rows()
    rows.append(list(rows[1]))  # entry 1 reappears at the end, unbalanced
    data = spec.render(rows)
    samples = [path for path in sorted(samples_dir.iterdir()) if path.suffix.lower() == ".txt"]
    reports = [validate_bytes(data, chunk=5000).to_dict()] + [validate_path(p).to_dict() for p in samples]
    monkeypatch.setattr(fec_validation._Checker, "_consume_columns", lambda *_: False)
    assert [validate_bytes(data, chunk=5000).to_dict()] + [validate_path(p).to_dict() for p in samples] == reports
    assert reports[0]["counts"]["unbalanced_entry"] == 1


def test_mixed_line_endings_are_read_and_reported():
    spec = FecSpec(line_ending="\r\n")
    first, second, rest = spec.render().split(b"\r\n", 2)
    data = first + b"\r\n" + second + b"\n" + rest  # one LF-only line in a CRLF file
    report = validate_bytes(data)
    assert report.valid
    assert report.summary["line_ending"] == "CRLF (mixed)"
    assert report.summary["records"] == 3


def test_montantdevise_takes_one_sign_before_or_after():
    spec = FecSpec()
    rows = spec.rows()
    rows[1][16], rows[2][16], rows[3][16] = "-12,50", "12,50-", "-12,50-"
    report = validate_bytes(spec.render(rows))
    assert [(f.rule, f.line) for f in report.errors] == [("invalid_amount", 4)]
