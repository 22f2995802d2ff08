"""The streaming FEC validator: the project's fixtures, the real samples when present, chunking,
summary counts, bounded memory and hostile input. Each rule's own test: test_fec_validation_rules.py."""

from __future__ import annotations

import itertools
import tracemalloc
from pathlib import Path

import pytest

from shared.fec import entries as fec_entries
from shared.fec.checks import Checker
from shared.fec.validation import read_chunks, validate_path, validate_stream
from tests.fec_factory import FecSpec, cents

FIXTURES = Path(__file__).parent / "fixtures"
# Each real sample (tests/samples/) and the project fixture that reproduces its quirks.
SAMPLES = {
    "neolegal-fr_fec-reader_0000000001FEC20220831.txt": "0000000001FEC20220831.txt",
    "neolegal-fr_fec-reader_000000000FEC20231231.txt": "000000000FEC20231231.txt",
    "neolegal-fr_fec-reader_111111111FEC20221231.TXT": "111111111FEC20221231.TXT",
    "neolegal-fr_fec-reader_123456789FEC20500930.txt": "123456789FEC20500930.txt",
}
# What a quirk looks like in the summary, the same for a sample and its fixture.
QUIRKS = {
    "0000000001FEC20220831.txt": {"encoding": "utf-8-sig", "line_ending": "LF", "layout": "standard"},
    "000000000FEC20231231.txt": {"layout": "bnc", "encoding": "utf-8", "separator": "\t"},
    "111111111FEC20221231.TXT": {"encoding": "iso-8859-15", "separator": "|", "layout": "standard"},
    "123456789FEC20500930.txt": {"line_ending": "CR CR LF", "final_newline": False},
    "542107651FEC20210502.txt": {"line_ending": "CRLF", "separator": "|", "final_newline": False},
}
WARNINGS = {  # the warnings each file owes, beyond the EcritureNum gaps of real files
    "0000000001FEC20220831.txt": {"file_name"},
    "000000000FEC20231231.txt": set(),
    "111111111FEC20221231.TXT": {"trailing_separator", "date_outside_period"},  # January 2023, closed 2022
    "123456789FEC20500930.txt": {"line_ending_cr_cr_lf", "date_outside_period"},  # 2022 entries, closed 2050
    "542107651FEC20210502.txt": set(),
}
# A sample's own warnings that its fixture does not reproduce.
SAMPLE_WARNINGS = {"neolegal-fr_fec-reader_000000000FEC20231231.txt": {"date_outside_period"}}  # 2021, closed 2023


def validate_bytes(data: bytes, name: str | None = "123456789FEC20241231.txt", chunk: int = 65536):
    return validate_stream((data[i:i + chunk] for i in range(0, len(data), chunk)), file_name=name)


def rules(report) -> set[str]:
    return {finding.rule for finding in report.errors}


def check_quirks(path: Path, name: str, more: frozenset[str] = frozenset()) -> None:
    report = validate_stream(read_chunks(path), file_name=name)
    assert report.valid, report.to_text()
    assert report.summary["total_debit"] == report.summary["total_credit"]
    assert {key: report.summary[key] for key in QUIRKS[name]} == QUIRKS[name]
    assert set(report.counts) - {"ecriturenum_gap"} == WARNINGS[name] | more
    assert "empty_line" not in report.counts  # CR CR LF makes no phantom records


@pytest.mark.parametrize("name", sorted(QUIRKS))
def test_every_fixture_is_importable_with_its_quirks(name):
    check_quirks(FIXTURES / name, name)


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_every_real_sample_is_importable_with_its_quirks(samples_dir, sample):
    check_quirks(samples_dir / sample, SAMPLES[sample], frozenset(SAMPLE_WARNINGS.get(sample, ())))


def test_real_sample_figures(samples_dir):
    def summary(sample):
        return validate_stream(read_chunks(samples_dir / sample), file_name=SAMPLES[sample]).summary

    assert summary("neolegal-fr_fec-reader_0000000001FEC20220831.txt")["total_debit"] == "10186219.81"
    assert summary("neolegal-fr_fec-reader_000000000FEC20231231.txt")["records"] == 2102
    assert summary("neolegal-fr_fec-reader_111111111FEC20221231.TXT")["records"] == 934
    assert summary("neolegal-fr_fec-reader_123456789FEC20500930.txt")["records"] == 10756


def test_the_odoo_sample_is_importable_with_its_quirks(odoo_sample):
    check_quirks(odoo_sample, "542107651FEC20210502.txt")
    assert validate_stream(read_chunks(odoo_sample), file_name=odoo_sample.name).summary["first_date"] == "2021-05-02"


def test_fixture_figures():
    report = validate_path(FIXTURES / "000000000FEC20231231.txt")
    assert (report.summary["records"], report.summary["entries"]) == (6, 2)  # ac/0 comes back: one entry
    assert report.summary["journals"] == ["ac", "bq"]
    report = validate_path(FIXTURES / "542107651FEC20210502.txt")
    assert (report.summary["total_debit"], report.summary["entries"]) == ("1724.54", 1)


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_any_chunking_gives_the_same_report(chunk):
    for path in sorted(FIXTURES.glob("*FEC*")):
        whole = validate_path(path).to_dict()
        assert validate_stream(read_chunks(path, chunk), file_name=path.name).to_dict() == whole


@pytest.mark.parametrize("mode", ["lines", "detailed"])
def test_every_path_gives_the_same_report(monkeypatch, mode):
    """Batches of well-formed records are booked column-wise; the report must not depend on it."""
    spec = FecSpec(entries=[[("401000", 0, 1000 + n), ("607000", 1000 + n, 0)] for n in range(3000)])
    rows = spec.rows()
    rows.append(list(rows[1]))  # entry 1 reappears at the end, unbalanced
    data = spec.render(rows)
    paths = sorted(FIXTURES.glob("*FEC*"))
    reports = [validate_bytes(data, chunk=5000).to_dict()] + [validate_path(p).to_dict() for p in paths]
    monkeypatch.setattr(Checker, "mode", mode)
    assert [validate_bytes(data, chunk=5000).to_dict()] + [validate_path(p).to_dict() for p in paths] == reports
    assert reports[0]["counts"]["unbalanced_entry"] == 1
    assert reports[0]["summary"]["entries"] == 3000


def test_entries_are_per_journal_and_a_reappearing_entry_is_summed_and_counted_once():
    spec = FecSpec(entries=[[("401000", 0, 1000)], [("512000", 500, 0)]])
    rows = spec.rows()
    rows.append(list(rows[1]))  # entry 1 comes back later with the matching debit
    rows[3][11], rows[3][12] = "10,00", "0,00"
    rows.append(list(rows[2]))
    rows[4][0], rows[4][11], rows[4][12] = "BQ", "0,00", "5,00"  # same number, other journal
    report = validate_bytes(spec.render(rows))
    assert "unbalanced_file" not in rules(report)
    unbalanced = [f for f in report.errors if f.rule == "unbalanced_entry"]
    assert [(f.details["journal"], f.details["number"]) for f in unbalanced] == [("AC", "2"), ("BQ", "2")]
    assert [f.value for f in unbalanced] == ["2", "2"]  # the EcritureNum, the journal apart
    assert report.summary["entries"] == 3  # AC/1 (two runs), AC/2, BQ/2


def account_sorted(entries: int) -> tuple[FecSpec, bytes]:
    """Every entry interleaved with all the others: the file sorted by account, not by entry."""
    spec = FecSpec(entries=[[("401000", 0, 1000 + n), ("607000", 1000 + n, 0)] for n in range(entries)])
    rows = spec.rows()
    rows[2 * (entries // 2) + 1][12] = "1,00"  # one entry unbalanced, in the middle
    header, body = rows[0], rows[1:]
    return spec, spec.render([header, *sorted(body, key=lambda row: row[4])])


def test_entries_spill_to_disk_with_the_same_report(monkeypatch):
    """Past the in-memory bounds, open entries and seen keys move to SQLite: same verdict, same lines."""
    _, data = account_sorted(3000)
    expected = validate_bytes(data).to_dict()
    assert expected["counts"]["unbalanced_entry"] == 1
    assert expected["summary"]["entries"] == 3000
    monkeypatch.setattr(fec_entries, "MAX_OPEN", 50)
    monkeypatch.setattr(fec_entries, "MAX_SEEN", 100)
    spilled = []
    monkeypatch.setattr(fec_entries._Spill, "close", lambda self: spilled.append(self.db.close()))
    assert validate_bytes(data).to_dict() == expected
    assert spilled  # the bounded path did run


def numbered(numbers: list[str]) -> bytes:
    """One balanced two-line entry per EcritureNum, in the order given."""
    spec = FecSpec(entries=[[("401000", 0, 1000), ("607000", 1000, 0)] for _ in numbers])
    rows = spec.rows()
    for position, number in enumerate(numbers):
        rows[1 + 2 * position][2] = rows[2 + 2 * position][2] = number
    return spec.render(rows)


@pytest.mark.parametrize("chunk", [300, 1 << 20])
def test_distinct_entries_across_series_ranges_and_hashes(monkeypatch, chunk):
    """Numbers in sequence are counted as ranges, others by hash (spilled to disk here): every
    entry once, whichever way it was counted and however often it comes back."""
    numbers = ["1", "2", "3", "7", "4", "5", "6", "8", "2", "AC01", "AC001", "AC1", "X", "X", "9", "10", "11", "7"]
    monkeypatch.setattr(fec_entries, "MAX_SEEN", 2)
    report = validate_bytes(numbered(numbers), chunk=chunk)
    assert report.summary["entries"] == len(set(numbers))
    monkeypatch.setattr(fec_entries, "MAX_SERIES", 0)  # every entry by hash
    assert validate_bytes(numbered(numbers), chunk=chunk).to_dict() == report.to_dict()


def test_a_batch_numbered_in_sequence_is_booked_whole_with_the_same_report(monkeypatch):
    """Entries balanced and numbered one after the other in their journals skip the run-by-run loop."""
    spec = FecSpec(entries=[[("401000", 0, 1000 + n), ("607000", 1000 + n, 0)] for n in range(3000)])
    rows = spec.rows()
    rows[4001][2] = rows[4002][2] = "5000"  # a jump and a step back, in one batch
    data = spec.render(rows)
    whole = []
    original = fec_entries.EntryBook._book_in_sequence
    monkeypatch.setattr(fec_entries.EntryBook, "_book_in_sequence",
                        lambda self, *args: whole.append(original(self, *args)) or whole[-1])
    report = validate_bytes(data, chunk=5000).to_dict()
    assert report["counts"] == {"ecriturenum_gap": 2}
    assert report["summary"]["entries"] == 3000
    assert whole.count(True) > whole.count(False) > 0
    monkeypatch.setattr(fec_entries.EntryBook, "_book_in_sequence", lambda self, *args: False)
    assert validate_bytes(data, chunk=5000).to_dict() == report


def test_open_entries_stay_bounded_for_a_file_sorted_by_account(monkeypatch):
    sizes = []
    original = fec_entries.EntryBook.book_runs

    def watch(self, *args):
        original(self, *args)
        sizes.append((len(self.open), len(self.seen)))

    monkeypatch.setattr(fec_entries, "MAX_OPEN", 200)
    monkeypatch.setattr(fec_entries, "MAX_SEEN", 300)
    monkeypatch.setattr(fec_entries.EntryBook, "book_runs", watch)
    _, data = account_sorted(2000)
    assert validate_bytes(data, chunk=3000).summary["entries"] == 2000
    assert len(sizes) > 10
    assert max(open_ for open_, _ in sizes) <= 200
    assert max(seen for _, seen in sizes) <= 300


def test_the_report_is_bounded_but_counts_are_exact():
    spec = FecSpec(entries=[[("401000", 100, 100)] for _ in range(5000)])
    rows = spec.rows()
    for row in rows[1:]:
        row[3] = "20241301"
    report = validate_bytes(spec.render(rows))
    assert report.counts["invalid_date"] == 5000
    assert len([f for f in report.errors if f.rule == "invalid_date"]) == 20


def test_a_repeated_date_outside_the_years_is_warned_on_every_line():
    spec = FecSpec(entries=[[("401000", 100, 0), ("607000", 0, 100)] for _ in range(3)])
    rows = spec.rows()
    for row in rows[1:]:
        row[15] = "21250115"
    report = validate_bytes(spec.render(rows))
    assert report.counts["date_year"] == 6


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b"", "empty_file"),
        (b"\n\n  \n", "empty_file"),
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
    assert rules(report) == {rule}
    assert report.to_text()


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


def test_big_date_values_are_not_kept(monkeypatch):
    spec = FecSpec(entries=[[("401000", 100, 0), ("607000", 0, 100)] for _ in range(200)])
    rows = spec.rows()
    for number, row in enumerate(rows[1:]):
        row[3] = " " * (1000 + number) + row[3]  # padded, valid, all different
    checkers = []
    original = Checker.finish

    def keep(self):
        checkers.append(self)
        original(self)

    monkeypatch.setattr(Checker, "finish", keep)
    monkeypatch.setattr(Checker, "mode", "detailed")  # the date cache belongs to the detailed path
    report = validate_bytes(spec.render(rows))
    assert report.valid
    assert checkers[0].valid_dates
    assert all(len(value) <= 16 for value in checkers[0].valid_dates)


def test_file_name_rule_is_a_warning_only():
    report = validate_bytes(FecSpec().render(), name="export.csv")
    assert report.valid
    assert [f.rule for f in report.warnings] == ["file_name"]
    assert validate_bytes(FecSpec().render(), name="123456789FEC20241231.txt").warnings == []


def test_to_dict_shape():
    report = validate_bytes(FecSpec().render())
    out = report.to_dict()
    assert set(out) == {"valid", "file_name", "errors", "warnings", "counts", "summary"}
    assert out["summary"]["records"] == 3
    assert out["summary"]["entries"] == 1
    assert out["summary"]["total_debit"] == "120.00"


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
    for row in rows[1:]:
        row[17] = "USD"
    rows[1][16], rows[2][16], rows[3][16] = "-12,50", "12,50-", "-12,50-"
    report = validate_bytes(spec.render(rows))
    assert [(f.rule, f.line) for f in report.errors] == [("invalid_amount", 4)]
    assert report.warnings == []


def test_warnings_are_counted_exactly_and_listed_up_to_the_budget():
    """What the ledger and the VALIDATED event carry (`warning_count`) is the count, not the list's length."""
    spec = FecSpec(entries=[[("ABC000", 100, 0), ("607000", 0, 100)] for _ in range(300)])
    report = validate_bytes(spec.render())
    assert report.counts == {"account_number": 300}
    assert report.warning_count == 300
    assert len(report.warnings) == 20
    assert "warning account_number: 300 in all, the first 20 listed" in report.to_text()


# Honest totals (issue #25): the lines left out of the totals are counted and said.

MODES = ["auto", "lines", "detailed"]


@pytest.mark.parametrize("mode", MODES)
def test_an_unreadable_debit_is_counted_as_left_out_of_the_totals(monkeypatch, mode):
    """The issue's file: 5 records, a 1,724.54 debit unreadable: the totals say what they leave out."""
    monkeypatch.setattr(Checker, "mode", mode)
    spec = FecSpec(entries=[[("607000", 172454, 0), ("401000", 0, 172454)], [("607000", 10000, 0),
                                                                               ("401000", 0, 9000), ("401000", 0, 1000)]])
    rows = spec.rows()
    rows[1][11] = "1724.54"
    report = validate_bytes(spec.render(rows))
    summary = report.summary
    assert (summary["records"], summary["entries"], summary["total_debit"], summary["total_credit"]) == (
        5, 2, "100.00", "1824.54")
    assert (summary["lines_left_out"], summary["lines_left_out_first"]) == (1, [2])
    assert "5 records, 2 entries, debit 100.00, credit 1824.54, 2024-02-02 to 2024-03-03; 1 unreadable line not " \
           "counted (line 2)" in report.to_text()


@pytest.mark.parametrize("mode", MODES)
def test_thousands_separators_everywhere_leave_every_line_out_and_say_so(monkeypatch, mode):
    monkeypatch.setattr(Checker, "mode", mode)
    spec = FecSpec(entries=[[("401000", 0, 120000), ("607000", 120000, 0)] for _ in range(30)])
    data = spec.render().replace(b"1200,00", b"1 200,00")
    report = validate_bytes(data)
    assert report.counts == {"thousands_separator": 60}
    assert (report.summary["entries"], report.summary["total_debit"]) == (0, "0.00")
    assert report.summary["lines_left_out"] == 60
    assert report.summary["lines_left_out_first"] == list(range(2, 22))
    assert "; 60 unreadable lines not counted (lines 2, 3, 4, " in report.to_text()
    assert "19, 20, 21, ...)" in report.to_text()


@pytest.mark.parametrize("mode", MODES)
def test_every_kind_of_unreadable_record_is_counted_once(monkeypatch, mode):
    """A wrong column count, an unreadable entry key, a Sens, a line over 64 KB: left out and counted;
    an empty line, a line of separators and a repeated header hold no record and are not."""
    monkeypatch.setattr(Checker, "mode", mode)
    spec = FecSpec(layout="montant_sens", entries=[[("401000", 0, 500), ("607000", 500, 0)] for _ in range(6)])
    rows = spec.rows()
    rows[2].append("extra")  # line 3
    rows[4][2] = ""  # line 5: no EcritureNum
    rows[6][12] = "X"  # line 7: Sens
    rows[8][10] = "x" * 70_000  # line 9: too long
    rows[10:10] = [[""], ["", "", ""], list(rows[0])]  # lines 11-13
    report = validate_bytes(spec.render(rows))
    assert report.summary["lines_left_out"] == 4, report.to_text()
    assert report.summary["lines_left_out_first"] == [3, 5, 7, 9]
    assert report.summary["records"] == 12 - 2  # the too long line and the wrong column count are not records


def test_a_clean_file_leaves_nothing_out():
    report = validate_bytes(FecSpec().render())
    assert (report.summary["lines_left_out"], report.summary["lines_left_out_first"]) == (0, [])
    assert "unreadable" not in report.to_text()


def test_a_spilled_unbalanced_entry_keeps_its_debit_credit_and_lines_exact(monkeypatch):
    """Amounts past SQLite's 64-bit integers (10^13 euros is 10^19 micro-units) are summed as text:
    the spilled report is the in-memory one, details included."""
    spec = FecSpec(entries=[[("401000", 0, 10**15 + n), ("607000", 10**15 + n, 0)] for n in range(300)])
    rows = spec.rows()
    rows[2 * 150 + 1][12] = cents(10**15 + 151)  # the 151st entry: its credit one cent above its debit
    data = spec.render([rows[0], *sorted(rows[1:], key=lambda row: row[4])])
    expected = validate_bytes(data).to_dict()
    (finding,) = [f for f in expected["errors"] if f["rule"] == "unbalanced_entry"]
    assert finding["details"]["debit"] == "10000000000001.50"
    assert finding["details"]["difference"] == "-0.01"
    assert finding["details"]["line_count"] == 2
    monkeypatch.setattr(fec_entries, "MAX_OPEN", 20)
    monkeypatch.setattr(fec_entries, "MAX_SEEN", 30)
    assert validate_bytes(data).to_dict() == expected
