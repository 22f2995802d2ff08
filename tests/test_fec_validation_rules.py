"""Every rule of the registry, broken once, is caught at its line by every path that can read it
(the column-wise fast path, the line-by-line fast path, the detailed path); and each decision taken
against or with the DGFiP's Test Compta Demat (docs/fec-validation.md) holds."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.fec.checks import Checker
from shared.fec.fast import REFUSES, decides_every_line_rule
from shared.fec.rules import RULES, rules_of
from shared.fec.validation import validate_stream
from tests.fec_factory import FecSpec

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
