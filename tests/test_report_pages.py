"""The page next to each file, as an accountant reads it (issue 25): each verdict rendered by the
app under the local host (Azurite, the Loop emulator), opened in headless Chromium, read back in
French (the default) and in English (REPORT_LANGUAGE=en): the headline, a dd/mm/yyyy date, an amount
written the language's way, and on a duplicate the earlier import's request id and a link to its
report. A file without a dossier is validated anyway and lists every problem, the dossier first."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from shared.flows.runtime import current_pipeline
from shared.flows.verdict_reports import report_blob_names
from shared.ledger import states
from shared.ledger.record import ImportRecord
from shared.platform.clock import utcnow
from tests.helpers import run_host_until_final, upload
from tests.test_report_chromium import chromium, run_chromium  # noqa: F401 - the fixture
from tests.test_verdict_reports import INVALID_LINE, broken

HEADLINES = {
    "fr": {"completed": "Importé dans Loop", "rejected": "Refusé : non envoyé à Loop",
           "already": "Déjà importé : rien n'a été renvoyé", "no_dossier": "Refusé : aucun dossier",
           "unknown": "Résultat inconnu", "failed": "Import en échec dans Loop"},
    "en": {"completed": "Imported into Loop", "rejected": "Refused: not sent to Loop",
           "already": "Already imported: not sent again", "no_dossier": "Refused: no dossier",
           "unknown": "Outcome unknown", "failed": "Import failed in Loop"},
}
DATE = {"fr": re.compile(r"\d\d/\d\d/\d{4} à \d\d:\d\d"), "en": re.compile(r"\d\d/\d\d/\d{4} at \d\d:\d\d")}
AMOUNT = {"fr": re.compile(r"\d,\d\d(\u00a0|&nbsp;)€"), "en": re.compile(r"€\d[\d,]*\.\d\d")}
HOSTILE = "DEMO001/100% «été» \"q' <script>alert(1)</script>.txt"


@pytest.fixture(params=["fr", "en"])
def language(request) -> str:
    return request.param


@pytest.fixture
def host_env(pipeline_env, language):
    return {**pipeline_env, "REPORT_LANGUAGE": language}


def dom_of(name: str, chromium: str, tmp_path: Path) -> str:  # noqa: F811 - the fixture's value
    """The page at `name`'s report, as Chromium built it."""
    _, html_name = report_blob_names(name)
    page = tmp_path / "page.html"
    page.write_bytes(current_pipeline().verdict_reports.container.get_blob_client(html_name).download_blob().readall())
    return run_chromium(chromium, tmp_path, "--dump-dom", page.as_uri())


def headline(dom: str) -> str:
    found = re.search(r'<h1 id="verdict">([^<]*)</h1>', dom)
    assert found is not None, dom[:500]
    return found.group(1).replace("&#x27;", "'").replace("&#39;", "'")


def reads_like_an_accountant(dom: str, language: str, *, amounts: bool = True) -> None:
    assert DATE[language].search(dom), dom
    if amounts:
        assert AMOUNT[language].search(dom), dom
    assert "Détails techniques" in dom if language == "fr" else "Technical details" in dom
    assert '<details id="technical">' in dom


def test_a_valid_file_reads_imported(host, fec_bytes, chromium, tmp_path, language):  # noqa: F811
    upload(current_pipeline(), "DEMO001/123456789FEC20241231.txt", fec_bytes)
    (record,) = run_host_until_final(host, count=1).values()
    dom = dom_of(record.blob_name, chromium, tmp_path)
    assert headline(dom) == HEADLINES[language]["completed"]
    reads_like_an_accountant(dom, language)
    assert record.request_id in dom


def test_an_invalid_file_reads_refused_with_its_errors(host, fec_bytes, chromium, tmp_path, language):  # noqa: F811
    upload(current_pipeline(), "DEMO001/123456789FEC20231231.txt", broken(fec_bytes))
    (record,) = run_host_until_final(host, count=1).values()
    dom = dom_of(record.blob_name, chromium, tmp_path)
    assert headline(dom) == HEADLINES[language]["rejected"]
    reads_like_an_accountant(dom, language)
    where = "ligne" if language == "fr" else "line"
    assert f"<td>{where} {INVALID_LINE}</td><td>EcritureDate</td>" in dom


def test_a_duplicate_of_a_completed_import_names_it_and_links_its_report(host, fec_bytes, chromium, tmp_path,  # noqa: F811
                                                                        language):
    pipeline = current_pipeline()
    upload(pipeline, "DEMO001/first.txt", fec_bytes)
    (first,) = run_host_until_final(host, count=1).values()
    upload(pipeline, "DEMO001/second.txt", fec_bytes)
    records = run_host_until_final(host, count=2)
    assert records["DEMO001/second.txt"].state == states.DUPLICATE
    dom = dom_of("DEMO001/second.txt", chromium, tmp_path)
    assert headline(dom) == HEADLINES[language]["already"]
    reads_like_an_accountant(dom, language)
    earlier = re.search(r'<p id="earlier">([^<]*)<a id="earlier-report" href="([^"]*)"', dom)
    assert earlier is not None, dom
    assert first.request_id in earlier.group(1)
    assert ("déjà importé le" if language == "fr" else "already imported on") in earlier.group(1).lower()
    assert ("terminé" if language == "fr" else "completed") in earlier.group(1)
    assert earlier.group(2) == "first.txt.report.html"  # beside this page, in the same folder


def test_a_redrop_under_the_same_name_keeps_the_success_visible(host, fec_bytes, chromium, tmp_path,  # noqa: F811
                                                                language):
    pipeline = current_pipeline()
    name = "DEMO001/123456789FEC20241231.txt"
    upload(pipeline, name, fec_bytes)
    (first,) = run_host_until_final(host, count=1).values()
    upload(pipeline, name, fec_bytes)
    host.scan_blobs()
    host.wait_idle()
    older, newer = pipeline.ledger.versions_of(pipeline.settings.container, name)
    assert (older.state, newer.state) == (states.COMPLETED, states.DUPLICATE)
    dom = dom_of(name, chromium, tmp_path)
    assert headline(dom) == HEADLINES[language]["already"]
    earlier = re.search(r'<p id="earlier">([^<]*)</p>', dom)
    assert earlier is not None, dom
    assert first.request_id in earlier.group(1)  # the success stays on the page at this name
    assert 'id="earlier-report"' not in dom  # no link to itself: the earlier page was this one
    reads_like_an_accountant(dom, language)
    closing = "Clôture de l'exercice" if language == "fr" else "Fiscal year closes on"
    assert f"{closing}</dt><dd>31/12/2024" in dom.replace("&#x27;", "'")  # from the file's name


def test_a_file_without_a_dossier_lists_every_problem_the_dossier_first(host, fec_bytes, chromium, tmp_path,  # noqa: F811
                                                                       language):
    pipeline = current_pipeline()
    upload(pipeline, "nodossier.txt", broken(fec_bytes))
    (record,) = run_host_until_final(host, count=1).values()
    assert record.state == states.REJECTED
    assert "no dossier" in record.error
    assert "invalid_date" in record.error  # validated anyway
    dom = dom_of("nodossier.txt", chromium, tmp_path)
    assert headline(dom) == HEADLINES[language]["no_dossier"]
    reads_like_an_accountant(dom, language)
    dossier, first_error = dom.find('id="dossier-problem"'), dom.find("EcritureDate</td>")
    assert 0 < dossier < first_error
    assert "set blob metadata codeibs" not in dom.split('<details id="technical">')[0]  # jargon only in details
    assert ("dossier portant le code du dossier Loop" if language == "fr" else "folder named after its Loop dossier") \
        in dom


def test_loop_status_4_reads_failed_in_loop(host, loop_emulator, fec_bytes, chromium, tmp_path, language):  # noqa: F811
    loop_emulator.set_faults({"final_status_by_dossier": {"DEMO002": 4}})
    upload(current_pipeline(), "DEMO002/123456789FEC20241231.txt", fec_bytes)
    (record,) = run_host_until_final(host, count=1).values()
    dom = dom_of(record.blob_name, chromium, tmp_path)
    assert headline(dom) == HEADLINES[language]["failed"]
    reads_like_an_accountant(dom, language)


def test_an_unknown_outcome_reads_do_not_drop_again(host, chromium, tmp_path, language):  # noqa: F811
    pipeline = current_pipeline()
    now = utcnow()
    record = ImportRecord(pipeline.settings.container, "DEMO001/lost.txt", '"0x9"', state=states.UNKNOWN,
                          code_ibs="DEMO001", modified_at=now, received_at=now - timedelta(minutes=20),
                          updated_at=now, error="no answer from Loop to importFEC")
    record.add_history(record.state, record.error, now)
    assert pipeline.verdict_reports.write(record, None)
    dom = dom_of(record.blob_name, chromium, tmp_path)
    assert headline(dom) == HEADLINES[language]["unknown"]
    reads_like_an_accountant(dom, language, amounts=False)
    assert ("Ne déposez pas à nouveau" if language == "fr" else "Do not drop the file again") in dom


def test_a_hostile_name_is_text_in_both_languages(host, fec_bytes, chromium, tmp_path, language):  # noqa: F811
    upload(current_pipeline(), HOSTILE, broken(fec_bytes))
    run_host_until_final(host, count=1)
    dom = dom_of(HOSTILE, chromium, tmp_path)
    assert "<script" not in dom
    assert "100% «été» \"q' &lt;script&gt;alert(1)&lt;/script&gt;.txt" in dom.replace("&quot;", '"').replace(
        "&#x27;", "'")
    assert headline(dom) == HEADLINES[language]["rejected"]


def test_loops_refusal_of_an_unknown_dossier_reads_in_plain_words(host, fec_bytes, chromium, tmp_path,  # noqa: F811
                                                                  language):
    upload(current_pipeline(), "DEMO999/123456789FEC20241231.txt", fec_bytes)
    (record,) = run_host_until_final(host, count=1).values()
    assert record.state == states.SUBMIT_FAILED
    dom = dom_of(record.blob_name, chromium, tmp_path).replace("&#x27;", "'").replace("&#39;", "'")
    verdict = dom.split('<dl id="facts">', 1)[0]
    plain = ("Loop indique que le dossier DEMO999 n'existe pas sur le domaine du cabinet" if language == "fr"
             else "Loop says the dossier DEMO999 does not exist on your firm's domain")
    assert plain in verdict
    assert "n'existe pas sur le domaine." not in verdict  # Loop's own words only in the technical details


@pytest.mark.parametrize(
    ("here", "there", "link"),
    [
        ("DEMO001/b.txt", "DEMO001/a.txt", "a.txt.report.html"),
        ("DEMO002/b.txt", "DEMO001/a.txt", "../DEMO001/a.txt.report.html"),
        ("b.txt", "DEMO001/100% «é» a.txt", "DEMO001/100%2525%20%C2%AB%C3%A9%C2%BB%20a.txt.report.html"),
        ("DEMO001/b.txt", "DEMO001/x#y?.txt", "x%23y%3F.txt.report.html"),
    ],
)
def test_the_link_to_the_earlier_report_reaches_its_blob(here, there, link):
    """Relative to this page; the earlier report's name quoted, so `%25` in it stays `%25` once decoded."""
    from shared.flows.report_page import report_link  # noqa: PLC0415

    assert report_link(report_blob_names(here)[1], report_blob_names(there)[1]) == link
