"""Report names that always fit Azure's 1,024-character limit (a stable short form past it), and owed
reports tried a bounded number of times, then given up with one alerted event, one bad row never
holding up the others (shared/flows/verdict_reports.py). Azurite accepts names past 1,024
characters that Azure refuses, so the names' lengths are asserted, not left to the emulator."""

from __future__ import annotations

import json
import logging

import pytest
from azure.core.exceptions import HttpResponseError

from shared.flows.submit import submit_blob
from shared.flows.verdict_reports import MAX_BLOB_NAME_UNITS, REPORT_MAX_TRIES, report_blob_names
from shared.ledger import states
from shared.ledger.record import utf16_units
from shared.platform import telemetry
from tests.helpers import upload

EXACTLY_1024 = "DEMO001/" + "a" * (1024 - len("DEMO001/"))
PERCENTS = "DEMO001/" + "%" * 1000
LONGEST_UNCHANGED = "DEMO001/" + "b" * (1024 - len("DEMO001/") - len(".report.json"))


@pytest.mark.parametrize("name", [EXACTLY_1024, PERCENTS, "%" * 1000, "DEMO001/" + "\U0001f4c4" * 600,
                                  "DEMO001/" + "%." * 500, LONGEST_UNCHANGED + "c"])
def test_a_report_name_past_the_limit_gets_a_stable_short_form_under_the_files_folder(name):
    json_name, html_name = report_blob_names(name)
    for report in (json_name, html_name):
        assert utf16_units(report) <= MAX_BLOB_NAME_UNITS
    assert (json_name, html_name) == report_blob_names(name)  # stable
    assert json_name.endswith(".report.json")
    assert html_name == json_name.removesuffix(".json") + ".html"
    assert json_name.split("/")[0] == name.split("/")[0] or "/" not in name
    assert report_blob_names(name[:-1] + "z")[0] != json_name  # a neighbour never shares it
    assert "~" in json_name
    assert "%" not in json_name.rsplit("~", 1)[0][-2:]  # no escape cut in two


def test_a_name_that_fits_keeps_its_plain_report_name():
    json_name, _ = report_blob_names(LONGEST_UNCHANGED)
    assert json_name == LONGEST_UNCHANGED + ".report.json"
    assert len(json_name) == MAX_BLOB_NAME_UNITS


@pytest.mark.parametrize("name", [EXACTLY_1024, PERCENTS])
def test_a_file_with_a_long_name_gets_its_report_at_the_short_name(pipeline, loop_emulator, name):
    record = submit_blob(pipeline, upload(pipeline, name, b"not a FEC file\n"))
    assert record.state == states.REJECTED
    json_name, html_name = report_blob_names(name)
    container = pipeline.verdict_reports.container
    report = json.loads(container.get_blob_client(json_name).download_blob().readall())
    assert report["blob_name"] == name
    assert container.get_blob_client(html_name).exists()
    assert all(utf16_units(blob.name) <= MAX_BLOB_NAME_UNITS for blob in container.list_blobs())
    assert pipeline.verdict_reports.owed_count() == 0


def test_an_owed_report_that_always_fails_is_given_up_after_its_tries_and_never_holds_up_the_others(
    pipeline, loop_emulator, fec_bytes, monkeypatch, caplog
):
    caplog.set_level(logging.INFO, logger="fec_import")
    reports = pipeline.verdict_reports
    reports.container.delete_container()  # every report fails: each verdict owes one
    records = [submit_blob(pipeline, upload(pipeline, f"DEMO001/owed-{n}.txt", b"not a FEC file\n")) for n in range(4)]
    assert reports.owed_count() == 4
    reports.ensure()
    bad = min(records, key=reports.owed_row)  # the first row a tick reads
    tries: list[int] = []
    read = pipeline.ledger.get

    def refused_for_the_bad_one(partition: str, row: str):
        if (partition, row) == bad.keys:
            tries.append(1)
            raise HttpResponseError("storage refused this one, every time")
        return read(partition, row)

    monkeypatch.setattr(pipeline.ledger, "get", refused_for_the_bad_one)
    first = reports.retry_owed()
    assert (first["written"], first["failed"]) == (3, 1), first
    assert reports.owed_count() == 1  # the others were written behind it
    for _ in range(REPORT_MAX_TRIES + 2):
        reports.retry_owed()
    assert len(tries) == REPORT_MAX_TRIES
    assert reports.owed_count() == 0
    given_up = [r for r in caplog.records if getattr(r, "event_name", None) == telemetry.REPORT_GIVEN_UP]
    assert len(given_up) == 1
    assert given_up[0].custom_dimensions["blob"] == bad.blob
    assert given_up[0].custom_dimensions["tries"] == REPORT_MAX_TRIES
    assert given_up[0].levelno == logging.ERROR
