"""Property-based: valid files in every layout, separator, encoding and line ending pass; breaking
one value makes exactly the expected rule fire at exactly the expected line."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.fec.validation import validate_stream
from tests.fec_factory import ENCODINGS, LAYOUTS, LINE_ENDINGS, SEPARATORS, FecSpec

ACCOUNTS = st.sampled_from(["401000", "411000", "512000", "607000", "706000", "445660", "445710"])
LABELS = st.text(
    alphabet=st.characters(codec="iso-8859-15", exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters="\t|"),
    min_size=1, max_size=30,
).filter(lambda text: text.strip())


@st.composite
def balanced_entry(draw) -> list[tuple[str, int, int]]:
    amounts = draw(st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=4))
    lines = [(draw(ACCOUNTS), amount, 0) for amount in amounts]
    lines.append((draw(ACCOUNTS), 0, sum(amounts)))
    return draw(st.permutations(lines))


@st.composite
def fec_specs(draw) -> FecSpec:
    return FecSpec(
        layout=draw(st.sampled_from(LAYOUTS)),
        separator=draw(st.sampled_from(SEPARATORS)),
        encoding=draw(st.sampled_from(ENCODINGS)),
        line_ending=draw(st.sampled_from(LINE_ENDINGS)),
        final_newline=draw(st.booleans()),
        entries=draw(st.lists(balanced_entry(), min_size=1, max_size=6)),
        label=draw(LABELS),
    )


def chunked(data: bytes, size: int):
    return [data[i:i + size] for i in range(0, len(data), size)]


PROPERTY_SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(spec=fec_specs(), chunk=st.integers(min_value=1, max_value=5000))
def test_valid_files_pass_in_every_layout_and_encoding(spec, chunk):
    report = validate_stream(chunked(spec.render(), chunk), file_name="123456789FEC20241231.txt")
    assert report.valid, report.to_text()
    assert report.summary["layout"] == spec.layout
    assert report.summary["records"] == sum(len(entry) for entry in spec.entries)
    assert report.summary["total_debit"] == report.summary["total_credit"]
    assert report.summary["entries"] == len(spec.entries)
    expected = {"line_ending_cr_cr_lf"} if spec.line_ending == "\r\r\n" else set()
    assert {finding.rule for finding in report.warnings} == expected


BREAKS = {
    "invalid_date": lambda row, layout: row.__setitem__(3, "20230229"),
    "required_empty": lambda row, layout: row.__setitem__(10, "   "),
    "column_count": lambda row, layout: row.append("x"),
    "decimal_point": lambda row, layout: row.__setitem__(11, "12.50"),
    "invalid_amount": lambda row, layout: row.__setitem__(11, "1O,00"),
}


@PROPERTY_SETTINGS
@given(spec=fec_specs(), rule=st.sampled_from(sorted(BREAKS)), data=st.data())
def test_breaking_one_value_fires_exactly_that_rule_at_that_line(spec, rule, data):
    rows = spec.rows()
    index = data.draw(st.integers(min_value=1, max_value=len(rows) - 1))
    BREAKS[rule](rows[index], spec.layout)
    report = validate_stream(chunked(spec.render(rows), 997), file_name="123456789FEC20241231.txt")
    assert {finding.rule for finding in report.errors} == {rule}  # one mistake, one finding: no balance error
    assert report.counts[rule] == 1
    assert next(f for f in report.errors if f.rule == rule).line == index + 1


@PROPERTY_SETTINGS
@given(spec=fec_specs(), data=st.data())
def test_an_unbalanced_entry_is_found_at_its_first_line(spec, data):
    entry = data.draw(st.integers(min_value=0, max_value=len(spec.entries) - 1))
    account, debit, credit = spec.entries[entry][0]
    spec.entries[entry][0] = (account, debit + 1 if debit else 0, credit + 1 if credit else 0)
    report = validate_stream([spec.render()], file_name="123456789FEC20241231.txt")
    assert {finding.rule for finding in report.errors} == {"unbalanced_entry", "unbalanced_file"}
    first_line = 2 + sum(len(lines) for lines in spec.entries[:entry])
    assert next(f for f in report.errors if f.rule == "unbalanced_entry").line == first_line


@PROPERTY_SETTINGS
@given(spec=fec_specs(), data=st.data())
def test_no_rule_warns_more_often_than_there_are_records(spec, data):
    """Shuffled entries, renumbered at random and dated at random: the warning budget holds."""
    rows = spec.rows()
    body = rows[1:]
    numbers = data.draw(st.lists(st.integers(min_value=0, max_value=50), min_size=len(body), max_size=len(body)))
    for row, number in zip(body, numbers, strict=True):
        row[2] = str(number)
        row[15] = f"2024{number % 12 + 1:02d}{number % 28 + 1:02d}"
    report = validate_stream(chunked(spec.render(rows), 997), file_name="123456789FEC20241231.txt")
    records = report.summary["records"]
    assert all(count <= records for count in report.counts.values()), (report.counts, records)
