"""Every rule of the registry, broken once, is caught at its line by every path that can read it
(the column-wise fast path, the line-by-line fast path, the detailed path); and each decision taken
against or with the DGFiP's Test Compta Demat (docs/fec-validation.md) holds."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.fec import numbering as fec_numbering
from shared.fec.checks import Checker
from shared.fec.entries import EntryBook
from shared.fec.fast import REFUSES, decides_every_line_rule
from shared.fec.rules import RULES, rules_of
from shared.fec.validation import validate_stream
from tests.fec_factory import FecSpec, cents

NAME = "123456789FEC20241231.txt"
README = Path(__file__).resolve().parent.parent / "README.md"
Rows = list[list[str]]


def edited(*changes: tuple[int, int, str], spec: FecSpec | None = None) -> bytes:
    spec = spec or FecSpec()
    rows = spec.rows()
    for row, column, value in changes:
        rows[row][column] = value
    return spec.render(rows)


def reshaped(change: Callable[[Rows], None], spec: FecSpec | None = None) -> bytes:
    spec = spec or FecSpec()
    rows = spec.rows()
    change(rows)
    return spec.render(rows)


def two_entries(change: Callable[[Rows], None]) -> bytes:
    return reshaped(change, FecSpec(entries=[[("401000", 0, 500), ("607000", 500, 0)],
                                             [("401000", 0, 700), ("607000", 700, 0)]]))


HEADER = "\t".join(FecSpec().rows()[0])
VALID = FecSpec().render()
BIG = FecSpec(entries=[[("401000", 0, 6000 + n), ("607000", 6000 + n, 0)] for n in range(1000)]).render()
# rule -> (file bytes, file name, expected line or None for the file, other rules expected with it)
BREAKERS: dict[str, tuple[bytes, str, int | None, set[str]]] = {
    "utf16": (HEADER.encode("utf-16"), NAME, None, set()),
    "not_text": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, NAME, None, set()),
    "nul_byte": (BIG[:BIG.rfind(b"Facture")] + b"\x00" + BIG[BIG.rfind(b"Facture"):], NAME, 2001, set()),
    "mixed_encoding": (VALID + "é".encode() * 70000 + b"\n" + VALID.split(b"\n", 1)[1].replace(
        "été".encode(), "été".encode("latin-1")), NAME, 6, {"line_too_long"}),
    "line_too_long": (VALID + b"x" * 70000 + b"\n", NAME, 5, set()),
    "line_ending_cr_cr_lf": (b"\n".join(line + b"\r\r" if number == 2 else line
                                        for number, line in enumerate(VALID.split(b"\n"))), NAME, 3, set()),
    "file_name": (VALID, "export.csv", None, set()),
    "empty_file": (b"", NAME, None, set()),
    "no_records": (HEADER.encode() + b"\n", NAME, None, set()),
    "unbalanced_file": (edited((1, 12, "10,00-")), NAME, None, {"unbalanced_entry"}),
    "header_separator": (b"JournalCode JournalLib\n", NAME, 1, set()),
    "header_missing_column": (HEADER.replace("\tIdevise", "").encode() + b"\n", NAME, 1, set()),
    "header_column_order": (reshaped(lambda rows: [row.insert(0, row.pop(1)) for row in rows]), NAME, 1, set()),
    "header_name_folded": (edited((0, 12, "CRÉDIT")), NAME, 1, set()),
    "trailing_separator": (reshaped(lambda rows: [row.append("") for row in rows]), NAME, 1, set()),
    "empty_line": (reshaped(lambda rows: rows.insert(2, [""])), NAME, 3, set()),
    "only_separators": (reshaped(lambda rows: rows.insert(2, ["", "", ""])), NAME, 3, set()),
    "repeated_header": (reshaped(lambda rows: rows.insert(2, list(rows[0]))), NAME, 3, set()),
    "column_count": (reshaped(lambda rows: rows[2].append("extra")), NAME, 3, set()),
    "required_empty": (edited((3, 5, " ")), NAME, 4, set()),
    "invalid_date": (edited((2, 3, "20191232")), NAME, 3, set()),
    "date_year": (edited((2, 15, "21250115")), NAME, 3, set()),  # ValidDate: an EcritureDate in 2124 is also validated before it
    "decimal_point": (edited((1, 12, "120.00")), NAME, 2, set()),
    "thousands_separator": (edited((1, 12, "1 200,00")), NAME, 2, set()),
    "invalid_amount": (edited((1, 12, "12O,00")), NAME, 2, set()),
    "invalid_sens": (edited((2, 12, "X"), spec=FecSpec(layout="montant_sens")), NAME, 3, set()),
    "account_number": (edited((2, 4, "ABC000")), NAME, 3, set()),
    "devise_without_idevise": (edited((3, 16, "20,00")), NAME, 4, set()),
    "debit_and_credit": (edited((1, 11, "10,00"), (1, 12, "130,00")), NAME, 2, set()),
    "zero_amounts": (reshaped(lambda rows: rows.insert(2, [*rows[2][:11], "0,00", "0,00", *rows[2][13:]])), NAME,
                     3, set()),
    "piece_after_entry": (edited((2, 9, "20250101")), NAME, 3, set()),
    "validdate_order": (two_entries(lambda rows: [rows[3].__setitem__(15, "20250110"),
                                                  rows[4].__setitem__(15, "20250110")]), NAME, 4, set()),
    "ecriturenum_gap": (two_entries(lambda rows: [rows[3].__setitem__(2, "3"), rows[4].__setitem__(2, "3")]), NAME,
                        4, set()),
    "unbalanced_entry": (two_entries(lambda rows: rows[4].__setitem__(11, "7,01")), NAME, 4, {"unbalanced_file"}),
    "date_outside_period": (edited((2, 3, "20250101")), NAME, 3, set()),  # one day after 20241231
}
MODES = ["auto", "lines", "detailed"]


def validate(data: bytes, name: str = NAME, chunk: int = 997):
    return validate_stream([data[i:i + chunk] for i in range(0, len(data), chunk)], file_name=name)


def test_every_rule_has_a_breaker_and_a_known_level():
    assert set(BREAKERS) == set(RULES)
    assert {rule.level for rule in RULES.values()} == {"error", "warning"}
    assert {rule.scope for rule in RULES.values()} == {"stream", "file", "header", "line", "booking"}


def test_the_fast_path_decides_every_line_rule():
    assert decides_every_line_rule()
    assert rules_of("line") == REFUSES


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rule", sorted(RULES))
def test_each_rule_is_caught_at_its_line_by_every_path(monkeypatch, rule, mode):
    monkeypatch.setattr(Checker, "mode", mode)
    data, name, line, companions = BREAKERS[rule]
    report = validate(data, name)
    assert set(report.counts) == {rule, *companions}, report.to_text()
    assert report.counts[rule] == 1
    finding = next(f for f in [*report.errors, *report.warnings] if f.rule == rule)
    assert finding.severity == RULES[rule].level
    assert finding.line == line
    assert report.valid == (RULES[rule].level == "warning" and all(
        RULES[other].level == "warning" for other in companions))


def test_the_valid_file_breaks_nothing_on_any_path(monkeypatch):
    for mode in MODES:
        monkeypatch.setattr(Checker, "mode", mode)
        report = validate(VALID)
        assert report.counts == {}
        assert report.valid


def test_the_readme_lists_every_rule_with_its_level():
    text = README.read_text(encoding="utf-8")
    for rule in RULES.values():
        assert re.search(rf"`{rule.id}`[^\n]*\b{rule.level}\b", text), rule.id


# Decisions against or with the DGFiP (docs/fec-validation.md), each on every path.

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("data", "counts"),
    [
        (edited((2, 12, "")), {}),  # an empty Credit next to a filled Debit reads as 0, as the DGFiP reads it
        (edited((1, 11, "")), {}),
        (reshaped(lambda rows: rows.insert(2, [*rows[2][:11], "", "", *rows[2][13:]])), {"zero_amounts": 1}),
        (edited((2, 14, "00000000")), {}),  # an all-zero optional date is blank, as for the DGFiP
        (edited((2, 14, "0")), {}),
        (edited((2, 9, "00000000")), {"invalid_date": 1}),  # a required one is still an error
        (edited((2, 14, "00/00/0000")), {"invalid_date": 1}),  # AAAAMMJJ only (the DGFiP is looser)
        (edited((1, 12, "\u00a0120,00\u00a0")), {}),  # NBSP around an amount is a space, as for the DGFiP
        (edited((1, 12, "1\u00a0200,00")), {"thousands_separator": 1}),  # inside, a thousands separator
        (edited((1, 12, "1\u202f200,00")), {"thousands_separator": 1}),
        (edited((0, 12, "Crédit")), {}),  # the DGFiP folds é and è
        (edited((0, 12, "CREDIT")), {}),  # and case
        (edited((0, 12, "Crêdit")), {"header_name_folded": 1}),  # read, with a warning the DGFiP would not read it
        (reshaped(lambda rows: rows.append([""])), {"empty_line": 1}),  # empty lines: warnings, mid-file or at the end
        (edited((2, 16, "0,00")), {}),  # a zero Montantdevise needs no Idevise
    ],
)
def test_dgfip_decisions(monkeypatch, mode, data, counts):
    monkeypatch.setattr(Checker, "mode", mode)
    report = validate(data)
    assert report.counts == counts, report.to_text()
    assert report.valid == (not any(RULES[rule].level == "error" for rule in counts))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("data", "rule", "line"),
    [
        (edited((2, 12, "Z"), spec=FecSpec(layout="montant_sens")), "invalid_sens", 3),
        (edited((2, 11, ""), spec=FecSpec(layout="montant_sens")), None, None),  # empty Montant: 0 → zero_amounts
        (edited((2, 2, "")), "required_empty", 3),  # empty EcritureNum: its line, not its entry's balance
        (edited((2, 0, "")), "required_empty", 3),  # empty JournalCode
        (edited((2, 11, "1OO,00")), "invalid_amount", 3),
        (reshaped(lambda rows: rows[3].pop()), "column_count", 4),
    ],
)
def test_one_finding_per_mistake(monkeypatch, mode, data, rule, line):
    """An unreadable amount, Sens or entry key is reported once and left out of the balance."""
    monkeypatch.setattr(Checker, "mode", mode)
    report = validate(data)
    if rule is None:
        assert set(report.counts) == {"zero_amounts", "unbalanced_entry", "unbalanced_file"}
        return
    assert set(report.counts) == {rule}, report.to_text()
    assert report.errors[0].line == line


def test_an_unreadable_key_does_not_hide_other_entries_balance():
    data = two_entries(lambda rows: [rows[2].__setitem__(2, ""), rows[4].__setitem__(11, "7,01")])
    report = validate(data)
    assert set(report.counts) == {"required_empty"}  # entry 2 touches the unreadable line: unknown
    data = reshaped(lambda rows: [rows[2].__setitem__(2, ""), rows.extend(
        [[*rows[1][:2], "9", *rows[1][3:11], "1,00", "0,00", *rows[1][13:]]])])
    report = validate(data)
    assert report.counts.get("unbalanced_entry") == 1  # a later entry, not next to it, is still checked


def test_a_split_entry_counts_once_and_breaks_no_sequence():
    """Continuity is of the numbers used, not of their order in the file (issue #18)."""
    data = two_entries(lambda rows: rows.append(rows.pop(1)))  # AC/1, AC/2, AC/1 again
    report = validate(data)
    assert report.summary["entries"] == 2
    assert report.counts == {}


def test_a_line_rule_the_fast_path_does_not_decide_turns_it_off(monkeypatch):
    """A new `line` rule not yet in fec_fast.REFUSES: every line goes the detailed way, so nothing is missed."""
    from shared.fec import fast as fec_fast  # noqa: PLC0415

    monkeypatch.setattr(fec_fast, "REFUSES", REFUSES - {"account_number"})
    calls = []
    original = Checker.check
    monkeypatch.setattr(Checker, "check", lambda self, number, line: calls.append(number) or original(
        self, number, line))
    report = validate(BREAKERS["account_number"][0])
    assert report.counts == {"account_number": 1}
    assert calls == [2, 3, 4]  # every record read field by field


# Numbering as firms do it (issue #18): each scheme, clean and with one real gap, on every path.

JOURNALS = ("AC", "VT", "BQ", "OD")


def _number(shape: str, position: int, journal: str, counters: dict[str, int], year: str) -> str:
    """EcritureNum of the entry at `position` (0-based) in the file's numbering scheme."""
    key = {"file": "", "journal": journal, "year": year, "prefixed_journal": journal, "prefixed_year": year}[shape]
    counters[key] = counters.get(key, 0) + 1
    count = counters[key]
    if shape == "prefixed_journal":
        return f"{journal}{count:06d}"
    if shape == "prefixed_year":
        return f"{year}-{count:06d}"
    return str(count)


def numbered_file(shape: str, entries: int = 600, missing: int | None = None) -> tuple[bytes, list[str], list[int]]:
    """Entries of two lines, journals interleaved, dates in no order, ValidDate = EcritureDate, numbered
    by `shape`; the entry at `missing` is left out. Returns the file, each entry's JournalCode and
    EcritureNum joined by '/', and its first line."""
    spec = FecSpec(entries=[])
    rows = [spec.rows()[0]]
    counters: dict[str, int] = {}
    numbers, lines = [], []
    for position in range(entries):
        journal = JOURNALS[(position * 7) % 11 % 4]
        year = "2023" if position < entries // 2 else "2024"  # the file spans two years
        number = _number(shape, position, journal, counters, year)
        day = f"{year}{(position * 5) % 12 + 1:02d}{(position * 13) % 28 + 1:02d}"
        amount = cents(1000 + position)
        if position == missing:
            continue
        numbers.append(f"{journal}/{number}")
        lines.append(len(rows) + 1)
        for account, debit, credit in (("607000", amount, "0,00"), ("401000", "0,00", amount)):
            rows.append([journal, "Journal é", number, day, account, "Compte", "", "", f"P{position}", day,
                         "Libellé à payer", debit, credit, "", "", day, "", ""])
    return spec.render(rows), numbers, lines


SHAPES = {"file": "file", "journal": "journal", "year": "file_year", "prefixed_journal": "journal",
          "prefixed_year": "file"}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_numbering_scheme_is_recognised_and_clean_on_every_path(monkeypatch, shape):
    data, numbers, _ = numbered_file(shape)
    reports = []
    for mode in MODES:
        monkeypatch.setattr(Checker, "mode", mode)
        reports.append(validate(data, chunk=4096).to_dict())
    assert reports[1:] == reports[:-1]  # the same report on every path
    report = reports[0]
    assert report["counts"] == {}, report["warnings"]
    assert report["summary"]["numbering"]["scheme"] == SHAPES[shape]
    assert report["summary"]["entries"] == len(set(numbers))  # (JournalCode, EcritureNum): a year's reuse is one


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_one_real_gap_in_each_scheme_is_one_warning_naming_both_numbers(monkeypatch, shape):
    _, all_numbers, _ = numbered_file(shape)
    data, _, lines = numbered_file(shape, missing=457)
    gone = all_numbers[457].split("/")[1]
    reports = []
    for mode in MODES:
        monkeypatch.setattr(Checker, "mode", mode)
        reports.append(validate(data, chunk=4096))
    assert [r.to_dict() for r in reports[1:]] == [r.to_dict() for r in reports[:-1]]
    report = reports[0]
    assert report.counts == {"ecriturenum_gap": 1}, report.to_text()
    assert report.summary["numbering"]["scheme"] == SHAPES[shape]
    finding = report.warnings[0]
    prefix = gone.rstrip("0123456789")
    value = int(gone[len(prefix):])
    width = len(gone) - len(prefix)
    before, following = (f"{prefix}{value - 1:0{width}d}" if width > 1 else f"{prefix}{value - 1}",
                         f"{prefix}{value + 1:0{width}d}" if width > 1 else f"{prefix}{value + 1}")
    assert finding.value == following
    assert f"{following!r} follows {before!r}" in finding.message
    assert "1 number(s) missing" in finding.message
    journal = all_numbers[457].split("/")[0]
    after = next(position for position in range(458, len(all_numbers)) if all_numbers[position].endswith(
        f"/{following}") and (not shape.endswith("journal") or all_numbers[position].startswith(f"{journal}/")))
    assert finding.line == lines[after - 1]  # the first line of the entry after the hole


def test_a_file_numbered_over_the_file_keeps_the_batch_shortcut(monkeypatch):
    """Interleaved journals numbered 1, 2, 3... over the file are booked batch by batch, not run by run."""
    data, _, _ = numbered_file("file", entries=3000)
    whole = []
    original = EntryBook._book_in_sequence
    monkeypatch.setattr(EntryBook, "_book_in_sequence", lambda self, *args: whole.append(original(self, *args))
                        or whole[-1])
    report = validate(data, chunk=8192)
    assert report.summary["entries"] == 3000
    assert whole.count(True) > 4 * whole.count(False) > 0
    monkeypatch.setattr(EntryBook, "_book_in_sequence", lambda self, *args: False)
    assert validate(data, chunk=8192).to_dict() == report.to_dict()


def test_a_numbering_no_scheme_fits_gives_no_gap_warnings(monkeypatch):
    """Past MAX_RANGES holes in every scheme, the file follows none: its summary says so, no warning."""
    monkeypatch.setattr(fec_numbering, "MAX_RANGES", 50)
    spec = FecSpec(entries=[[("401000", 0, 500), ("607000", 500, 0)] for _ in range(400)])
    rows = spec.rows()
    for position in range(400):
        rows[1 + 2 * position][2] = rows[2 + 2 * position][2] = str(3 * position + 1)  # a hole after each
    report = validate(spec.render(rows), chunk=4096)
    assert report.summary["numbering"]["scheme"] == "none"
    assert report.counts == {}
    monkeypatch.setattr(fec_numbering, "MAX_RANGES", 500)
    assert validate(spec.render(rows), chunk=4096).counts == {"ecriturenum_gap": 399}



def test_a_file_over_two_years_that_no_scheme_fits_is_read_to_its_end_on_every_path(monkeypatch):
    """The yearly schemes split off at the second year, then every scheme is dropped: the batches
    after that still book (no year column is asked of a scheme that is gone)."""
    monkeypatch.setattr(fec_numbering, "MAX_RANGES", 50)
    spec = FecSpec(entries=[[("401000", 0, 500), ("607000", 500, 0)] for _ in range(400)])
    rows = spec.rows()
    for position in range(400):
        day = f"{2023 + position % 2}0{position % 9 + 1}15"
        for row in rows[1 + 2 * position:3 + 2 * position]:
            row[2], row[3], row[9], row[15] = str(3 * position + 1), day, day, day
    reports = []
    for mode in MODES:
        monkeypatch.setattr(Checker, "mode", mode)
        reports.append(validate(spec.render(rows), chunk=2048).to_dict())
    assert reports[1:] == reports[:-1]
    assert reports[0]["summary"]["numbering"]["scheme"] == "none"
    assert reports[0]["summary"]["records"] == 800
    assert reports[0]["counts"] == {}

# ValidDate (issue #18): warned where a reviewer can act on it.

def _validated(valid_dates: list[str]) -> bytes:
    spec = FecSpec(entries=[[("401000", 0, 500), ("607000", 500, 0)] for _ in valid_dates])
    rows = spec.rows()
    for position, valid in enumerate(valid_dates):
        rows[1 + 2 * position][15] = rows[2 + 2 * position][15] = valid
    return spec.render(rows)


@pytest.mark.parametrize("mode", MODES)
def test_validation_dates_going_backwards_warn_once_per_wrong_date(monkeypatch, mode):
    monkeypatch.setattr(Checker, "mode", mode)
    report = validate(_validated(["20250110", "20250110", "20291231", "20250112", "20250113", "20250111"]))
    assert report.counts == {"validdate_order": 2}  # entry 4 after the typo in entry 3, entry 6 after entry 5
    assert [finding.line for finding in report.warnings] == [8, 12]
    assert "'3'" in report.warnings[0].message


@pytest.mark.parametrize("mode", MODES)
def test_a_validdate_before_its_ecrituredate_is_one_warning_per_record(monkeypatch, mode):
    monkeypatch.setattr(Checker, "mode", mode)
    data = edited((2, 15, "20240101"))  # EcritureDate 20240202
    report = validate(data)
    assert report.counts == {"validdate_order": 1}
    assert report.warnings[0].line == 3
    assert "EcritureDate 20240202" in report.warnings[0].message


def test_validdate_copied_from_unsorted_entry_dates_is_not_warned():
    data, _, _ = numbered_file("file", entries=600)
    assert validate(data).counts == {}


def test_a_record_gets_one_validdate_warning_at_most():
    data = _validated(["20250110", "20240101"])  # entry 2: before its EcritureDate and before entry 1's
    report = validate(data)
    assert report.counts == {"validdate_order": 2}  # one for each of entry 2's two records
    assert [finding.line for finding in report.warnings] == [4, 5]


# The period the file name gives (issue #25): after the closing date, or more than 24 months before it.

def _dated(days: list[str], lines_per_entry: int = 2) -> bytes:
    lines = [("401000", 0, 500), ("607000", 500, 0)] if lines_per_entry == 2 else [
        ("401000", 0, 500), ("607000", 300, 0), ("445660", 200, 0)]
    spec = FecSpec(entries=[list(lines) for _ in days])
    rows = spec.rows()
    for position, day in enumerate(days):
        for row in rows[1 + lines_per_entry * position:1 + lines_per_entry * (position + 1)]:
            row[3] = row[9] = row[15] = day  # EcritureDate, PieceDate, ValidDate
    return spec.render(rows)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("days", "warned_lines"),
    [
        (["20240101", "20241231", "20250101"], [6]),  # one day after the closing date
        (["20221230", "20230615", "20241231"], [2]),  # 24 months and a day before it
        (["20221231", "20230101"], []),  # 24 months before it: a long first fiscal year, not warned
        ([f"2024{month:02d}15" for month in range(1, 13)], []),  # a clean 12-month file
    ],
)
def test_entries_outside_the_period_of_the_file_name_warn_once_each(monkeypatch, mode, days, warned_lines):
    monkeypatch.setattr(Checker, "mode", mode)
    report = validate(_dated(days))
    assert report.counts == ({"date_outside_period": len(warned_lines)} if warned_lines else {}), report.to_text()
    assert [finding.line for finding in report.warnings] == warned_lines
    assert report.valid
    assert report.summary["closing_date"] == "2024-12-31"
    for finding in report.warnings:
        assert (finding.details["closing"], finding.details["earliest"]) == ("20241231", "20221231")
        assert finding.details["side"] == ("after" if finding.value > "20241231" else "before")
        assert f"EcritureDate {finding.value} is not in the fiscal year the file name closes on 20241231" in (
            finding.message)


@pytest.mark.parametrize("mode", MODES)
def test_the_period_rule_warns_once_an_entry_and_is_counted_past_its_examples(monkeypatch, mode):
    """Three lines an entry, 30 entries after the closing date, across batch boundaries (small chunks):
    30 warnings counted, each at its entry's first line, 20 listed."""
    monkeypatch.setattr(Checker, "mode", mode)
    report = validate(_dated(["20250301"] * 30 + ["20240301"] * 5, lines_per_entry=3), chunk=211)
    assert report.counts == {"date_outside_period": 30}, report.to_text()
    assert [finding.line for finding in report.warnings] == [2 + 3 * n for n in range(20)]
    assert "date_outside_period: 30 in all, the first 20 listed" in report.to_text()


def test_the_period_needs_a_dated_file_name():
    data = _dated(["20190101", "20300101"])
    assert validate(data, name="export.txt").counts == {"file_name": 1}
    assert validate(data, name="export.txt").summary["closing_date"] is None
    assert validate(data, name="123456789FEC20241331.txt").counts == {}  # no such date: no period
    # A malformed SIREN (real exports have 10 digits) still names the closing date.
    assert validate(data, name="0000000001FEC20241231.txt").counts == {"file_name": 1, "date_outside_period": 2}


def test_a_real_export_closed_in_2022_with_january_2023_entries_is_warned():
    path = Path(__file__).parent / "fixtures" / "111111111FEC20221231.TXT"
    report = validate(path.read_bytes(), name=path.name)
    assert report.valid
    assert report.counts["date_outside_period"] == report.summary["entries"] == 2
    assert {finding.value[:6] for finding in report.warnings if finding.rule == "date_outside_period"} == {"202301"}


# Honest totals (issue #25): an unbalanced entry's journal, number, debit, credit, difference and lines.

@pytest.mark.parametrize("mode", MODES)
def test_an_unbalanced_entry_names_its_journal_and_number_apart_with_its_amounts_and_lines(monkeypatch, mode):
    monkeypatch.setattr(Checker, "mode", mode)
    spec = FecSpec(entries=[[("401000", 0, 12000), ("607000", 10000, 0), ("445660", 2000, 0)],
                            [("411000", 10000, 0), ("706000", 0, 9000)]])
    rows = spec.rows()
    for row in rows[1:]:
        row[0], row[2] = "INV", f"INV/2021/0000{row[2]}"  # the number holds the `/` the old message glued with
    report = validate(spec.render(rows))
    assert set(report.counts) == {"unbalanced_entry", "unbalanced_file"}
    (finding,) = [f for f in report.errors if f.rule == "unbalanced_entry"]
    assert (finding.line, finding.column, finding.value) == (5, "EcritureNum", "INV/2021/00002")
    assert finding.details == {"journal": "INV", "number": "INV/2021/00002", "debit": "100.00", "credit": "90.00",
                               "difference": "10.00", "line_count": 2, "lines": [5, 6]}
    assert finding.message == ("entry 'INV/2021/00002' of journal 'INV' is unbalanced: debit 100.00, credit 90.00,"
                               " difference 10.00; 2 lines: 5, 6")
    assert finding.to_dict()["details"] == finding.details


@pytest.mark.parametrize("mode", MODES)
def test_an_unbalanced_entry_spread_over_the_file_adds_every_part(monkeypatch, mode):
    """Entry 1's lines come in three runs, across batches; its report adds them all, lines in order."""
    monkeypatch.setattr(Checker, "mode", mode)
    spec = FecSpec(entries=[[("401000", 0, 500), ("607000", 500, 0)] for _ in range(60)])
    rows = spec.rows()
    first = rows[1]
    rows[2][11] = "4,00"  # entry 1's first run: debit 4, credit 5
    rows.insert(40, [*first[:11], "7,00", "0,00", *first[13:]])
    rows.append([*first[:11], "0,00", "1,00", *first[13:]])
    report = validate(spec.render(rows), chunk=300)
    (finding,) = [f for f in report.errors if f.rule == "unbalanced_entry"]
    assert finding.line == 2
    assert {key: finding.details[key] for key in ("debit", "credit", "difference", "lines", "line_count")} == {
        "debit": "11.00", "credit": "6.00", "difference": "5.00", "lines": [2, 3, 41, 123], "line_count": 4}


def test_counts_by_level_skips_a_rule_no_longer_in_the_registry():
    """A count stored by an older version (a validation reused from the record) may name a rule since
    removed: it is left out, never a KeyError in the flow."""
    from shared.fec.rules import counts_by_level  # noqa: PLC0415

    assert counts_by_level({"a_rule_since_removed": 2, "invalid_date": 1, "empty_line": 3}) == {
        "errors": {"invalid_date": 1}, "warnings": {"empty_line": 3}}
