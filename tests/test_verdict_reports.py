"""The reports next to the files (shared/flows/verdict_reports.py), end to end through the local
host on Azurite and the Loop emulator: written at each verdict, newest version wins (also when two
writers race), retried by the timer when storage refused them, free of secrets, hostile names
escaped. Nothing mocked."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.flows.import_api import show_json
from shared.flows.operator_actions import resolve
from shared.flows.poll import check_import, row_of_message, schedule_due_checks
from shared.flows.report_page import render_report_html
from shared.flows.runtime import current_pipeline
from shared.flows.submit import submit_blob
from shared.flows.verdict_reports import (
    HTML_TYPE,
    JSON_TYPE,
    VERSION_KEY,
    report_blob_names,
)
from shared.language.wording import wording
from shared.ledger import states
from shared.ledger.record import ImportRecord
from shared.loop.errors import LoopOutcomeUnknownError
from shared.platform.clock import utcnow
from tests.helpers import run_host_until_final, run_together, upload, wait_until_final_at_loop

INVALID_LINE = 4  # the header is line 1


def broken(fec_bytes: bytes) -> bytes:
    """The valid test file with line 4's EcritureDate made impossible (the 32nd of December)."""
    lines = fec_bytes.decode("utf-8").split("\n")
    fields = lines[INVALID_LINE - 1].split("|")
    fields[3] = "20191232"
    lines[INVALID_LINE - 1] = "|".join(fields)
    return "\n".join(lines).encode("utf-8")


def without_reader_texts(report: dict) -> dict:
    """The JSON report without what it adds for the reader (the verdict's texts, each finding's text)."""
    out = {key: value for key, value in report.items() if key != "texts"}
    if out.get("report"):
        out["report"] = {**out["report"], **{
            kind: [{k: v for k, v in finding.items() if k != "text"} for finding in out["report"][kind] or []]
            for kind in ("errors", "warnings")}}
    return out


def report_of(name: str) -> tuple[dict, str, dict]:
    """The JSON report (parsed), the HTML page and the JSON blob's properties, for a blob name."""
    container = current_pipeline().verdict_reports.container
    json_name, html_name = report_blob_names(name)
    json_blob, html_blob = container.get_blob_client(json_name), container.get_blob_client(html_name)
    props = json_blob.get_blob_properties()
    assert props.content_settings.content_type == JSON_TYPE
    assert html_blob.get_blob_properties().content_settings.content_type == HTML_TYPE
    page = html_blob.download_blob().readall().decode("utf-8")
    return json.loads(json_blob.download_blob().readall()), page, props


def test_a_valid_file_gets_a_completed_report_with_its_request_id(host, pipeline_env, fec_bytes):
    pipeline = current_pipeline()
    upload(pipeline, "DEMO001/123456789FEC20241231.txt", fec_bytes)
    (record,) = run_host_until_final(host, count=1).values()
    report, page, props = report_of(record.blob_name)
    assert without_reader_texts(report) == show_json(pipeline, record.blob_name)  # `imports show --json`'s JSON
    assert report["texts"]["headline"] == "Importé dans Loop"  # and what the page says, in the reader's language
    assert (report["state"], report["loop_status"], report["request_id"]) == ("completed", 3, record.request_id)
    assert props.metadata[VERSION_KEY] == record.etag.strip('"')
    assert '<h1 id="verdict">Importé dans Loop</h1>' in page
    assert record.request_id in page
    # the trigger never fires on the reports container: the ledger holds the one dropped file only
    assert [r.blob_name for r in pipeline.ledger.all_records()] == [record.blob_name]
    assert pipeline.verdict_reports.owed_count() == 0


def test_an_invalid_file_gets_a_report_listing_its_errors_with_line_numbers(host, fec_bytes):
    pipeline = current_pipeline()
    upload(pipeline, "DEMO001/123456789FEC20231231.txt", broken(fec_bytes))
    (record,) = run_host_until_final(host, count=1).values()
    assert record.state == states.REJECTED
    report, page, _ = report_of(record.blob_name)
    (error,) = [e for e in report["report"]["errors"] if e["rule"] == "invalid_date"]
    assert (error["line"], error["column"], error["value"]) == (INVALID_LINE, "EcritureDate", "20191232")
    assert report["report"]["counts"]["invalid_date"] == 1
    assert '<h1 id="verdict">Refusé : non envoyé à Loop</h1>' in page
    assert "invalid_date ×1" in page  # the rule ids, in the technical details
    assert f"<tr><td>ligne {INVALID_LINE}</td><td>EcritureDate</td><td><code>20191232</code></td>" in page


def test_an_overwritten_blob_keeps_the_newer_versions_report(host, fec_bytes):
    pipeline = current_pipeline()
    name = "DEMO001/123456789FEC20241231.txt"
    upload(pipeline, name, fec_bytes)
    run_host_until_final(host, count=1)
    upload(pipeline, name, broken(fec_bytes))
    host.scan_blobs()
    host.wait_idle()
    older, newer = pipeline.ledger.versions_of(pipeline.settings.container, name)
    assert (older.state, newer.state) == (states.COMPLETED, states.REJECTED)
    assert older.modified_at <= newer.modified_at  # storage counts whole seconds: the claim time breaks ties
    pipeline.verdict_reports.write(pipeline.ledger.get(*older.keys), None)  # a late writer of the older version
    report, page, props = report_of(name)
    assert (report["etag"], report["state"]) == (newer.etag, "rejected")
    assert props.metadata[VERSION_KEY] == newer.etag.strip('"')
    assert "Refusé" in page


def test_loop_status_4_gets_a_failed_report(host, loop_emulator, fec_bytes):
    loop_emulator.set_faults({"final_status_by_dossier": {"DEMO002": 4}})
    upload(current_pipeline(), "DEMO002/123456789FEC20241231.txt", fec_bytes)
    (record,) = run_host_until_final(host, count=1).values()
    report, page, _ = report_of(record.blob_name)
    assert (report["state"], report["loop_status"]) == ("failed", 4)
    assert '<h1 id="verdict">Import en échec dans Loop</h1>' in page


def versions_of_one_name(name: str) -> tuple[ImportRecord, ImportRecord]:
    now = utcnow()
    older = ImportRecord("imports", name, '"0x1"', state=states.COMPLETED, modified_at=now, received_at=now,
                         updated_at=now + timedelta(minutes=5), request_id="11111111-1111-1111-1111-111111111111")
    newer = ImportRecord("imports", name, '"0x2"', state=states.REJECTED, modified_at=now + timedelta(seconds=1),
                         received_at=now, updated_at=now + timedelta(seconds=2), error="invalid_date x1")
    for record in (older, newer):
        record.add_history(record.state, record.error, record.updated_at)
    return older, newer


def test_two_versions_racing_leave_the_newer_report_every_time(pipeline):
    """20 rounds: the older and the newer version's reports written at once behind a barrier;
    the older one finishing last must never overwrite the newer one (ETag-guarded writes)."""
    reports = pipeline.verdict_reports
    for round_number in range(20):
        name = f"DEMO001/race-{round_number}.txt"
        older, newer = versions_of_one_name(name)
        results = run_together(2, lambda i, pair=(older, newer): reports.write(pair[i], None))
        assert results == [True, True], results
        json_name, html_name = report_blob_names(name)
        for blob_name in (json_name, html_name):
            props = reports.container.get_blob_client(blob_name).get_blob_properties()
            assert props.metadata[VERSION_KEY] == "0x2", (round_number, blob_name)
        stored = json.loads(reports.container.get_blob_client(json_name).download_blob().readall())
        assert stored["state"] == "rejected"


def test_two_first_verdicts_racing_create_first_and_leave_the_newer_report_every_time(pipeline):
    """The same race with each writer trying If-None-Match: * before any read (a first verdict): the
    loser's create is refused, it reads and decides, and the newer version's report stays."""
    reports = pipeline.verdict_reports
    for round_number in range(20):
        name = f"DEMO001/first-{round_number}.txt"
        older, newer = versions_of_one_name(name)
        results = run_together(2, lambda i, pair=(older, newer): reports.write(pair[i], None, likely_absent=True))
        assert results == [True, True], results
        for blob_name in report_blob_names(name):
            props = reports.container.get_blob_client(blob_name).get_blob_properties()
            assert props.metadata[VERSION_KEY] == "0x2", (round_number, blob_name)
    assert reports.owed_count() == 0


def test_a_report_storage_refused_is_written_by_the_next_timer_tick(host, fec_bytes):
    pipeline = current_pipeline()
    reports = pipeline.verdict_reports
    reports.container.delete_container()  # the report cannot be written: its container is gone
    upload(pipeline, "DEMO001/123456789FEC20231231.txt", broken(fec_bytes))
    host.scan_blobs()
    host.wait_idle()
    (record,) = pipeline.ledger.all_records()
    assert record.state == states.REJECTED  # the ledger is the truth, whatever happened to the report
    assert reports.owed_count() == 1
    reports.ensure()
    for timer in host.timer_functions:
        host.fire_timer(timer)
    report, _, _ = report_of(record.blob_name)
    assert report["state"] == "rejected"
    assert reports.owed_count() == 0



def stored_report_state(pipeline, name: str) -> str | None:
    """The state in the JSON report of a blob name, or None when there is no report."""
    blob = pipeline.verdict_reports.container.get_blob_client(report_blob_names(name)[0])
    if not blob.exists():
        return None
    return json.loads(blob.download_blob().readall())["state"]


def test_a_delivery_that_died_before_its_report_is_caught_up_by_the_redelivery(pipeline, fec_bytes):
    name = "DEMO001/123456789FEC20231231.txt"
    blob = upload(pipeline, name, broken(fec_bytes))
    observer, pipeline.ledger.observer = pipeline.ledger.observer, None  # dies right after the ledger write
    assert submit_blob(pipeline, blob).state == states.REJECTED
    assert stored_report_state(pipeline, name) is None
    pipeline.ledger.observer = observer
    submit_blob(pipeline, blob)  # the host delivers the blob again: the invocation never ended
    assert stored_report_state(pipeline, name) == "rejected"


def test_a_status_check_that_died_before_its_report_is_caught_up_by_the_row_it_left(
    pipeline, fec_bytes, loop_emulator, monkeypatch
):
    name = "DEMO001/123456789FEC20241231.txt"
    assert submit_blob(pipeline, upload(pipeline, name, fec_bytes)).state == states.PENDING
    wait_until_final_at_loop(loop_emulator)
    pipeline.clock.advance(timedelta(seconds=pipeline.settings.status_first_check_seconds + 1))
    sent: list[str] = []
    schedule_due_checks(pipeline, sent.append)
    (message,) = sent
    observer, pipeline.ledger.observer = pipeline.ledger.observer, None

    def died(row: str) -> None:
        raise RuntimeError("the process died before dropping the leased row")

    with monkeypatch.context() as patch:
        patch.setattr(pipeline.ledger.watch_index, "drop_row", died)
        with pytest.raises(RuntimeError):
            check_import(pipeline, row_of_message(message))
    (record,) = pipeline.ledger.all_records()
    assert record.state == states.COMPLETED  # the final write landed, its report did not
    assert stored_report_state(pipeline, name) is None
    pipeline.ledger.observer = observer
    assert check_import(pipeline, row_of_message(message)) == "unwatched"  # the row, found again later
    assert stored_report_state(pipeline, name) == "completed"

def test_after_a_verdict_only_checks_that_change_something_rewrite_the_report(pipeline, fec_bytes, monkeypatch):
    """An import called unknown, then resolved, is followed by checks: one that finds the same Loop
    status leaves both report blobs as they are; a new status or a new state rewrites them."""
    name = "DEMO001/123456789FEC20221231.txt"

    def no_answer(*_args, **_kwargs):
        raise LoopOutcomeUnknownError("the connection was reset after the request was sent")

    with monkeypatch.context() as patch:
        patch.setattr(pipeline.loop, "import_fec", no_answer)
        assert submit_blob(pipeline, upload(pipeline, name, fec_bytes)).state == states.UNKNOWN
    assert stored_report_state(pipeline, name) == "unknown"
    (record,) = pipeline.ledger.all_records()
    record = resolve(pipeline, record, "11111111-2222-3333-4444-555555555555")
    reports = [pipeline.verdict_reports.container.get_blob_client(n) for n in report_blob_names(name)]

    def etags() -> list[str]:
        return [blob.get_blob_properties().etag for blob in reports]

    def checked(transition=states.NOTE_CHECK) -> list[str]:
        nonlocal record
        record = pipeline.ledger.move(record, transition, note="Loop status 2")
        return etags()

    first = checked(states.RECORD_STATUS)
    assert checked() == first  # nothing new: no rewrite
    assert checked() == first
    flagged = checked(states.FLAG_STALE)
    assert flagged != first  # a flag the report shows
    assert checked() == flagged
    assert checked(states.RECORD_STATUS) != flagged  # the status moved
    assert stored_report_state(pipeline, name) == "pending"
    pipeline.ledger.move(record, states.COMPLETE, note="Loop status 3")
    assert stored_report_state(pipeline, name) == "completed"


def test_a_report_carries_no_secret_quoted_in_an_error(pipeline):
    from local.azurite import DEV_ACCOUNT_KEY  # noqa: PLC0415

    now = utcnow()
    leak = f"Loop said: https://a/b?sv=1&sig=LEAKEDSIG123&se=2 with AccountKey={DEV_ACCOUNT_KEY};"
    record = ImportRecord("imports", "DEMO001/leak.txt", '"0x9"', state=states.SUBMIT_FAILED, modified_at=now,
                          received_at=now, updated_at=now, error=leak)
    record.add_history(record.state, leak, now)
    assert pipeline.verdict_reports.write(record, None)
    json_name, html_name = report_blob_names(record.blob_name)
    for name in (json_name, html_name):
        text = pipeline.verdict_reports.container.get_blob_client(name).download_blob().readall().decode()
        assert "LEAKEDSIG123" not in text
        assert DEV_ACCOUNT_KEY not in text
        assert "sig=REDACTED" in text


def test_a_name_that_looks_like_a_secret_is_kept_and_a_urls_query_is_still_redacted(pipeline, capsys):
    """`export code=1.txt` is a name, not a secret: the report shows it as the dropper wrote it;
    in a URL (the deposit URI), the path keeps it and the query is redacted."""
    from shared.cli.imports import print_table  # noqa: PLC0415

    now = utcnow()
    name = "DEMO001/export code=1;sig=2 token=3 password=4.txt"
    uri = f"https://cegid.blob.core.windows.net/depot/{name}?sv=2024&sig=LEAKEDSIG123&se=2030"
    record = ImportRecord("imports", name, '"0x9"', state=states.SUBMIT_FAILED, modified_at=now,
                          received_at=now, updated_at=now, error=f"Loop could not read {uri}",
                          deposit_uri=uri, transfer_mode="deposit")
    assert pipeline.verdict_reports.write(record, None)
    json_name, html_name = report_blob_names(name)
    report, page = (pipeline.verdict_reports.container.get_blob_client(blob).download_blob().readall().decode()
                    for blob in (json_name, html_name))
    report = json.loads(report)
    assert (report["blob_name"], report["blob"]) == (name, f"imports/{name}")
    assert report["deposit_uri"] == f"https://cegid.blob.core.windows.net/depot/{name}?sv=2024&sig=REDACTED&se=2030"
    assert "export code=1;sig=2 token=3 password=4.txt" in page
    for text in (json.dumps(report), page):
        assert "LEAKEDSIG123" not in text
    print_table(("BLOB", "ERROR"), [(name, "AccountKey=abcdef;")])
    printed = capsys.readouterr().out
    assert name in printed
    assert "AccountKey=REDACTED" in printed


HOSTILE = "DEMO001/\"quoted' <script>alert(1)</script>.txt"


def test_a_hostile_blob_name_is_escaped_in_the_page(host, fec_bytes):
    pipeline = current_pipeline()
    upload(pipeline, HOSTILE, broken(fec_bytes))
    (record,) = run_host_until_final(host, count=1).values()
    report, page, _ = report_of(HOSTILE)
    assert report["blob_name"] == HOSTILE
    assert "<script>" not in page
    assert "&quot;quoted&#x27; &lt;script&gt;alert(1)&lt;/script&gt;.txt" in page
    assert record.state == states.REJECTED


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("DEMO001/a.txt", "DEMO001/a.txt.report.json"),
        ("DEMO001/../DEMO002/a.txt", "DEMO001/%2E%2E/DEMO002/a.txt.report.json"),
        ("DEMO001/./a.txt", "DEMO001/%2E/a.txt.report.json"),
        ("DEMO001\\..\\a.txt", "DEMO001%5C..%5Ca.txt.report.json"),
        ("../../a.txt", "%2E%2E/%2E%2E/a.txt.report.json"),
        ("DEMO001/..", "DEMO001/%2E%2E.report.json"),
        ("DEMO001/%2E%2E/a.txt", "DEMO001/%252E%252E/a.txt.report.json"),  # not the report of DEMO001/../a.txt
        ("DEMO001/x%5Cy.txt", "DEMO001/x%255Cy.txt.report.json"),  # not the report of DEMO001/x\\y.txt
    ],
)
def test_a_report_name_stays_under_the_files_own_prefix(name, expected):
    json_name, html_name = report_blob_names(name)
    assert json_name == expected
    assert html_name == expected.removesuffix(".json") + ".html"
    assert not any(segment in (".", "..") for segment in json_name.split("/"))
    assert json_name.split("/")[0] == expected.split("/")[0]


def test_a_dot_segment_name_lands_its_report_where_it_says(pipeline):
    """Storage resolves `..` in a URL path; the encoded name is stored as written, in its folder."""
    now = utcnow()
    record = ImportRecord("imports", "DEMO001/../DEMO002/a.txt", '"0x7"', state=states.REJECTED,
                          modified_at=now, received_at=now, updated_at=now, error="no dossier")
    record.add_history(record.state, record.error, now)
    assert pipeline.verdict_reports.write(record, None)
    names = sorted(blob.name for blob in pipeline.verdict_reports.container.list_blobs())
    assert names == ["DEMO001/%2E%2E/DEMO002/a.txt.report.html", "DEMO001/%2E%2E/DEMO002/a.txt.report.json"]


def test_the_page_escapes_every_value_and_folds_warnings():
    detail = {
        "blob": "c/<b>", "state": "rejected", "error": "<img src=x onerror=alert(1)>", "history": [],
        "report": {"errors": [{"rule": "invalid_date", "line": 3, "column": "EcritureDate", "value": "\"<x>",
                               "message": "bad <date>"}],
                   "warnings": [{"rule": "file_name", "line": None, "column": None, "value": None,
                                 "message": "name"}],
                   "counts": {"invalid_date": 41, "file_name": 1}, "summary": {}},
    }
    page = render_report_html(detail)
    for raw in ("<img", "<b>", "<x>"):
        assert raw not in page
    assert "40 autres du même type" in page
    assert '<details id="warnings"><summary>1 avertissement : importable, à vérifier' in page
    for external in ("http://", "https://", "<script", "<link", "<img"):
        assert external not in page  # self-contained: nothing fetched, nothing run


def test_the_page_says_how_many_unreadable_lines_its_totals_leave_out():
    """Honest totals (issue #25): the summary's lines_left_out, said under the totals; none said when none."""
    summary = {"records": 5, "entries": 2, "total_debit": "100.00", "total_credit": "1824.54", "lines_left_out": 3,
               "lines_left_out_first": [2, 7, 9]}
    detail = {"blob": "c/a.txt", "state": "rejected", "history": [],
              "report": {"errors": [], "warnings": [], "counts": {}, "summary": summary}}
    page = render_report_html(detail)
    assert "<dt>Non comptées dans les totaux</dt><dd>3 lignes illisibles non comptées (lignes 2, 7, 9)</dd>" in page
    english = render_report_html(detail, wording("en"))
    assert "<dt>Left out of the totals</dt><dd>3 unreadable lines not counted (lines 2, 7, 9)</dd>" in english
    summary["lines_left_out_first"] = [2]
    assert "3 lignes illisibles non comptées (lignes 2, …)" in render_report_html(detail)
    summary["lines_left_out"], summary["lines_left_out_first"] = 0, []
    assert "Non comptées" not in render_report_html(detail)


def stored_report(pipeline, name: str) -> tuple[dict, str]:
    """The JSON report (parsed) and the HTML page at a blob name's report, read from `pipeline`."""
    blobs = [pipeline.verdict_reports.container.get_blob_client(n) for n in report_blob_names(name)]
    report, page = (blob.download_blob().readall().decode("utf-8") for blob in blobs)
    return json.loads(report), page


def test_a_redrop_while_the_first_import_is_pending_shows_the_success_once_it_completes(
    pipeline, fec_bytes, loop_emulator
):
    """The same bytes dropped again under the same name while the first import is in Loop: the
    re-drop is a duplicate and its page (the newer version's) wins the name; when the first import
    completes, its own report loses to that page, which is written again from the duplicate's record
    and now says the file was already imported, and when."""
    name = "DEMO001/123456789FEC20241231.txt"
    first = submit_blob(pipeline, upload(pipeline, name, fec_bytes))
    assert first.state == states.PENDING
    assert submit_blob(pipeline, upload(pipeline, name, fec_bytes)).state == states.DUPLICATE
    report, page = stored_report(pipeline, name)
    assert report["texts"]["headline"] != "Déjà importé : rien n'a été renvoyé"  # the first is still in Loop
    wait_until_final_at_loop(loop_emulator)
    pipeline.clock.advance(timedelta(seconds=pipeline.settings.status_first_check_seconds + 1))
    sent: list[str] = []
    schedule_due_checks(pipeline, sent.append)
    (message,) = sent
    check_import(pipeline, row_of_message(message))
    completed = pipeline.ledger.get(*first.keys)
    assert completed.state == states.COMPLETED
    report, page = stored_report(pipeline, name)
    assert report["state"] == "duplicate"  # still the newer version's page
    assert report["earlier"]["state"] == "completed"
    assert report["texts"]["headline"] == "Déjà importé : rien n'a été renvoyé"
    moment = pipeline.verdict_reports.wording.moment(completed.finished_at.isoformat())
    assert f"Déjà importé le {moment}" in report["texts"]["earlier"]
    assert '<h1 id="verdict">Déjà importé : rien n&#x27;a été renvoyé</h1>' in page
    assert completed.request_id in page
    assert report == json.loads(pipeline.verdict_reports.bodies(pipeline.ledger.versions_of(
        pipeline.settings.container, name)[1])[0])  # what `imports report` prints


def test_an_empty_file_without_a_dossier_lists_both_problems(pipeline):
    name = "nodossier.txt"
    record = submit_blob(pipeline, upload(pipeline, name, b""))
    assert (record.state, record.code_ibs) == (states.REJECTED, None)
    assert record.error.endswith("; empty file (0 bytes)")
    report, page = stored_report(pipeline, name)
    assert report["texts"]["headline"] == "Refusé : aucun dossier"
    problems = page.split('<h2 id="errors">')[1].split("</ul>")[0]
    assert problems.startswith("2 problèmes à corriger")
    assert problems.index('id="dossier-problem"') < problems.index("Le fichier est vide (0 octet).")


def test_a_file_deleted_before_it_was_read_is_not_called_a_dossier_problem(pipeline):
    now = utcnow()
    record = ImportRecord("imports", "nodossier.txt", '"0x9"', state=states.REJECTED, modified_at=now,
                          received_at=now, updated_at=now, error="deleted before it was read")
    record.add_history(record.state, record.error, now)
    assert pipeline.verdict_reports.write(record, None)
    report, page = stored_report(pipeline, record.blob_name)
    assert report["texts"]["headline"] == "Refusé : non envoyé à Loop"
    assert report["texts"]["reason"] == "Le fichier a été supprimé avant d'avoir pu être lu : rien n'a été envoyé."
    assert 'id="dossier-problem"' not in page
    assert "deleted before" not in page.split('<details id="technical">')[0]  # English only in the details
