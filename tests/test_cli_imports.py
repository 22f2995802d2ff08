"""`python -m shared imports ...` against a real ledger."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from shared.cli.main import main
from shared.fec.validation import validate_stream
from shared.flows.import_views import REPORT_KEYS
from shared.flows.submit import submit_blob
from shared.flows.verdict_reports import report_blob_names
from shared.ledger import states
from tests.helpers import PROJECT_ROOT, run_host_until_final, upload


@pytest.fixture
def cli_env(pipeline_env, monkeypatch):
    for name, value in pipeline_env.items():
        monkeypatch.setenv(name, value)
    return pipeline_env


@pytest.fixture
def two_imports(pipeline, loop_emulator, fec_bytes, cli_env):
    data = fec_bytes
    sent = submit_blob(pipeline, upload(pipeline, "DEMO001/sent.txt", data))
    rejected = submit_blob(pipeline, upload(pipeline, "nodossier.txt", data))
    return sent, rejected


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_shows_every_import_with_its_columns(two_imports, capsys):
    sent, _ = two_imports
    code, out, _ = run_cli(capsys, "imports", "list")
    assert code == 0
    header, *rows = out.strip().splitlines()
    assert header.split() == ["BLOB", "ETAG", "CODEIBS", "REQUEST", "ID", "STATE", "LOOP", "SUBMITTED", "UPDATED", "ERROR"]
    assert any("DEMO001/sent.txt" in row and sent.request_id in row and "pending" in row for row in rows)
    assert any("nodossier.txt" in row and "rejected" in row and "no dossier" in row for row in rows)


def test_list_marks_a_cut_error_and_leaves_a_short_one_whole(pipeline, loop_emulator, fec_bytes, cli_env, capsys):
    long_message = "Le fichier est refusé: " + "détail " * 30 + "FIN"
    loop_emulator.set_faults({"importFEC": [{"kind": "error_body", "message": long_message}]})
    submit_blob(pipeline, upload(pipeline, "DEMO001/long.txt", fec_bytes))
    whole_message = "Refusé en entier " + "x" * 63  # exactly 80 characters: shown whole
    loop_emulator.set_faults({"importFEC": [{"kind": "error_body", "message": whole_message}]})
    submit_blob(pipeline, upload(pipeline, "DEMO001/whole.txt", fec_bytes + b"\r\n"))
    _, out, _ = run_cli(capsys, "imports", "list")
    (long_row,) = [row for row in out.splitlines() if "DEMO001/long.txt" in row]
    assert long_row[long_row.index("Le fichier"):] == long_message[:79] + "…"
    (whole_row,) = [row for row in out.splitlines() if "DEMO001/whole.txt" in row]
    assert whole_row.endswith(whole_message)


def test_list_filters_by_status_as_json(two_imports, capsys):
    code, out, _ = run_cli(capsys, "imports", "list", "--status", "rejected", "--json")
    assert code == 0
    (item,) = json.loads(out)
    assert item["blob_name"] == "nodossier.txt"
    assert item["state"] == states.REJECTED
    assert set(item) >= {"blob", "etag", "code_ibs", "request_id", "loop_status", "loop_status_label",
                         "submitted_at", "updated_at", "error"}


def test_show_by_request_id_and_by_name(two_imports, capsys):
    sent, _ = two_imports
    code, out, _ = run_cli(capsys, "imports", "show", sent.request_id)
    assert code == 0
    assert f"request id   {sent.request_id}" in out
    assert "validation   valid" in out
    code, out, _ = run_cli(capsys, "imports", "show", "DEMO001/sent.txt", "--json")
    assert json.loads(out)["history"][0]["state"] == states.RECEIVED


def test_show_of_a_rejected_file_prints_its_report(pipeline, loop_emulator, fec_bytes, cli_env, capsys):
    broken = fec_bytes.replace(b"|20240202|401000", b"|20241332|401000", 1)
    submit_blob(pipeline, upload(pipeline, "DEMO001/broken.txt", broken))
    code, out, _ = run_cli(capsys, "imports", "show", "DEMO001/broken.txt")
    assert code == 0
    assert "validation   INVALID" in out
    assert "invalid_date: line 2: EcritureDate 20241332 is not a date" in out


def test_cancel_and_resubmit_from_the_command_line(two_imports, loop_emulator, capsys):
    code, out, _ = run_cli(capsys, "imports", "cancel", "DEMO001/sent.txt")
    assert (code, out.strip()) == (0, f"{two_imports[0].blob}: cancelled")
    code, out, _ = run_cli(capsys, "imports", "resubmit", "DEMO001/sent.txt")
    assert code == 0
    assert "pending" in out
    assert len([r for r in loop_emulator.requests() if r["path"] == "/importFEC"]) == 2


def test_resubmit_without_dossier_says_what_to_do(two_imports, capsys):
    code, _, err = run_cli(capsys, "imports", "resubmit", "nodossier.txt")
    assert code == 1
    assert "give one with --dossier" in err


def test_errors_are_one_line_with_exit_codes(pipeline, cli_env, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no local.settings.json to fall back on
    code, _, err = run_cli(capsys, "imports", "show", "missing.txt")
    assert (code, err.strip()) == (1, "error: no import found for 'missing.txt' (give a blob name or a Loop request id)")
    monkeypatch.delenv("AzureWebJobsStorage")
    code, _, err = run_cli(capsys, "imports", "list")
    assert code == 2
    assert "AzureWebJobsStorage is not set" in err
    assert run_cli(capsys, "imports", "frobnicate")[0] == 2
    from local.azurite import free_port  # noqa: PLC0415

    monkeypatch.setenv("AzureWebJobsStorage", cli_env["AzureWebJobsStorage"].replace(
        cli_env["AzureWebJobsStorage"].split("TableEndpoint=http://127.0.0.1:")[1].split("/")[0], str(free_port())))
    code, _, err = run_cli(capsys, "imports", "list")
    assert code == 2
    assert "is Azurite running?" in err


def test_python_dash_m_shared_runs(pipeline, cli_env):
    result = subprocess.run(
        [sys.executable, "-m", "shared", "imports", "list", "--json"], cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize("command", [["imports", "list"], ["imports", "show", "DEMO001/a.txt"]])
def test_a_read_only_command_on_an_account_without_tables_says_so_and_creates_nothing(
    cli_env, table_service, blob_service, capsys, command
):
    tables_before = {table.name for table in table_service.list_tables()}
    containers_before = {container.name for container in blob_service.list_containers()}
    code, out, err = run_cli(capsys, *command)
    assert code == 2
    assert out == ""
    assert err.startswith(f"error: table '{cli_env['IMPORT_LEDGER_TABLE']}' does not exist at http://127.0.0.1:")
    assert "start the app once" in err
    assert len(err.strip().splitlines()) == 1
    assert {table.name for table in table_service.list_tables()} == tables_before
    assert {container.name for container in blob_service.list_containers()} == containers_before


def test_show_of_a_clean_file_prints_the_report_its_record_holds_without_a_report_blob(
    pipeline, loop_emulator, fec_bytes, cli_env, capsys
):
    """A file validated without a finding stores no report blob: `imports show` rebuilds the same
    report (errors, warnings, counts, summary) from the record, as the validator gives it."""
    record = submit_blob(pipeline, upload(pipeline, "DEMO001/123456789FEC20241231.txt", fec_bytes))
    assert record.report_blob is None
    assert list(pipeline.reports.container.list_blobs()) == []
    full = validate_stream(iter([fec_bytes]), file_name="123456789FEC20241231.txt").to_dict()
    code, out, _ = run_cli(capsys, "imports", "show", "DEMO001/123456789FEC20241231.txt", "--json")
    assert code == 0
    assert json.loads(out)["report"] == json.loads(json.dumps({key: full[key] for key in REPORT_KEYS}))
    code, out, _ = run_cli(capsys, "imports", "show", "DEMO001/123456789FEC20241231.txt")
    summary = full["summary"]
    assert (f"validation   valid; records={summary['records']} entries={summary['entries']} "
            f"debit={summary['total_debit']} credit={summary['total_credit']}") in out


# `imports report` (issue #25): the report beside the file, without Azure tools.

def _stored_report(pipeline, blob_name: str) -> tuple[bytes, bytes]:
    container = pipeline.verdict_reports.container
    return tuple(container.get_blob_client(name).download_blob().readall() for name in report_blob_names(blob_name))


def test_report_gives_the_page_and_json_beside_the_file_by_name_and_by_request_id(host, fec_bytes, capsysbinary,
                                                                                  tmp_path):
    from shared.flows.runtime import current_pipeline  # noqa: PLC0415

    pipeline = current_pipeline()
    name = "DEMO001/100% été 'x'.txt"  # a `%`: its report is stored as `100%25 été...`
    upload(pipeline, name, fec_bytes)
    (record,) = run_host_until_final(host, count=1).values()
    assert record.state == states.COMPLETED
    stored_json, stored_html = _stored_report(pipeline, name)

    def report(*args: str) -> tuple[int, bytes]:
        code = main(["imports", "report", *args])
        return code, capsysbinary.readouterr().out

    assert report(name) == (0, stored_html)  # HTML by default
    assert report(name, "--html") == (0, stored_html)
    assert report(record.request_id, "--json") == (0, stored_json)
    assert report(f"{pipeline.settings.container}/{name}", "--json") == (0, stored_json)
    code, out = report(record.request_id, "-o", str(tmp_path / "page.html"))
    assert code == 0
    assert (tmp_path / "page.html").read_bytes() == stored_html
    assert out.decode().strip() == f"{record.blob}: completed, report written to {tmp_path / 'page.html'}"
    assert report(name, "--json", "-o", str(tmp_path / "report.json"))[0] == 0
    assert (tmp_path / "report.json").read_bytes() == stored_json
    assert json.loads(stored_json)["request_id"] == record.request_id


def test_report_of_an_unknown_import_or_with_both_formats_fails_clearly(pipeline, cli_env, capsys, tmp_path):
    code, out, err = run_cli(capsys, "imports", "report", "missing.txt")
    assert (code, out) == (1, "")
    assert err.strip() == "error: no import found for 'missing.txt' (give a blob name or a Loop request id)"
    assert run_cli(capsys, "imports", "report", "missing.txt", "--html", "--json")[0] == 2


def test_report_of_a_rejected_file_runs_as_a_command_and_writes_the_page(pipeline, loop_emulator, fec_bytes,
                                                                         cli_env, tmp_path):
    record = submit_blob(pipeline, upload(pipeline, "nodossier.txt", fec_bytes))
    assert record.state == states.REJECTED
    target = tmp_path / "nodossier.html"
    result = subprocess.run(
        [sys.executable, "-m", "shared", "imports", "report", "nodossier.txt", "-o", str(target)], cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == _stored_report(pipeline, "nodossier.txt")[1]
    assert '<h1 id="verdict">' in target.read_text(encoding="utf-8")


def test_show_says_how_many_unreadable_lines_the_totals_leave_out(pipeline, loop_emulator, fec_bytes, cli_env, capsys):
    lines = fec_bytes.decode("utf-8").split("\n")
    fields = lines[1].split("|")
    fields[11] = "12O,00"  # line 2's Debit: unreadable
    lines[1] = "|".join(fields)
    submit_blob(pipeline, upload(pipeline, "DEMO001/unreadable.txt", "\n".join(lines).encode("utf-8")))
    code, out, _ = run_cli(capsys, "imports", "show", "DEMO001/unreadable.txt")
    assert code == 0
    assert "validation   INVALID; records=" in out
    assert " left_out=1\n" in out
    code, out, _ = run_cli(capsys, "imports", "show", "DEMO001/unreadable.txt", "--json")
    assert json.loads(out)["report"]["summary"]["lines_left_out_first"] == [2]
