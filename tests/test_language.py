"""The language layer (shared/language/): the French catalogue compiles, matches its source, covers
every text a dropper reads, and every rule renders in each language with no placeholder left."""

from __future__ import annotations

import string
from html import unescape
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from shared.fec.rules import EMPTY_FILE, ONLY_EMPTY_LINES, RULES
from shared.fec.validation import validate_path
from shared.language.texts import validation_text
from shared.language.wording import LANGUAGES, catalogue_path, leftover_placeholder, translations, wording
from shared.platform.settings import SettingsError, load_settings
from tests.helpers import PROJECT_ROOT

KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}
FRENCH = wording("fr")
ENGLISH = wording("en")
SAMPLES = {"column": "Debit", "value": "1 200,00", "debit": "1724.54", "credit": "1814.54", "amount": "-10.00",
           "detail": EMPTY_FILE, "fixed": "1200,00", "found": ";"}


def catalogue(language: str = "fr"):
    with catalogue_path(language).open("rb") as source:
        return read_po(source, locale=language)


def marked_texts() -> set[str | tuple[str, str]]:
    """Every text marked for the catalogue in shared/, as Babel's extractor finds it."""
    found = set()
    for _, _, message, _, _ in extract_from_dir(PROJECT_ROOT / "shared", [("**.py", "python")], keywords=KEYWORDS):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


def every_message_id() -> set[str | tuple[str, str]]:
    return {*(rule.message for rule in RULES.values()), EMPTY_FILE, ONLY_EMPTY_LINES, *marked_texts()}


def test_the_compiled_catalogue_says_what_its_source_says():
    compiled = translations("fr")
    checked = 0
    for message in catalogue():
        if not message.id:
            continue
        if message.pluralizable:
            singular, plural = message.id
            assert compiled.ngettext(singular, plural, 1) == message.string[0]
            assert compiled.ngettext(singular, plural, 2) == message.string[1]
        else:
            assert compiled.gettext(message.id) == message.string, message.id
        checked += 1
    assert checked > len(RULES)


def test_no_text_a_dropper_reads_lacks_its_french():
    known = {message.id if isinstance(message.id, str) else tuple(message.id): message for message in catalogue()
             if message.id}
    missing = [text for text in every_message_id() if text not in known]
    assert not missing, f"add these to {catalogue_path('fr')} (docs/translations.md): {missing}"
    empty = [key for key, message in known.items()
             if message.fuzzy or not (message.string if isinstance(message.string, str) else all(message.string))]
    assert not empty, f"untranslated or fuzzy in the catalogue: {empty}"


def test_the_extractor_finds_the_texts_of_the_pages():
    """A guard on the guard: if the marking changed (a renamed `_`), the coverage test would pass empty."""
    texts = marked_texts()
    assert "dd/MM/yyyy 'at' HH:mm" in texts
    assert ("{n} entry", "{n} entries") in texts


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_every_rule_renders_in_every_language_with_no_placeholder_left(rule_id, language):
    rule = RULES[rule_id]
    names = {name for _, name, _, _ in string.Formatter().parse(rule.message) if name}
    params = {name: SAMPLES.get(name, "7") for name in names}
    w = wording(language)
    text = w.format_rule(rule_id, params)
    assert text
    assert leftover_placeholder(text) is None, text
    if language == "fr" and rule.message != "{detail}":
        assert text != rule.message.format(**params), f"{rule_id} is not translated"


def test_amounts_and_dates_are_written_for_an_accountant():
    assert FRENCH.amount("1724.54") == "1\u202f724,54\u00a0€"
    assert FRENCH.moment("2026-12-04T19:19:35.368400+00:00") == "04/12/2026 à 20:19"
    assert ENGLISH.moment("2026-12-04T19:19:35.368400+00:00") == "04/12/2026 at 20:19"
    assert FRENCH.period("2023-01-01", "2023-12-31") == "du 01/01/2023 au 31/12/2023"
    assert FRENCH.ngettext("{n} entry", "{n} entries", 1) == "1 écriture"
    assert FRENCH.ngettext("{n} entry", "{n} entries", 2) == "2 écritures"
    assert ENGLISH.ngettext("{n} entry", "{n} entries", 1) == "1 entry"


def test_a_message_with_an_obvious_fix_says_it():
    finding = {"rule": "thousands_separator", "column": "Debit", "value": "1 200,00", "details": {"fixed": "1200,00"}}
    assert FRENCH.rule_message(finding) == "Debit « 1 200,00 » contient un séparateur de milliers : écrivez 1200,00"
    header = {"rule": "header_separator", "line": 1, "value": "JournalCode;JournalLib", "details": {"found": ";"}}
    assert "trouvé « ; »" in FRENCH.rule_message(header)
    assert "| ou une tabulation" in FRENCH.rule_message(header)


def test_a_finding_stored_before_its_parameters_were_kept_shows_its_english_message():
    old = {"rule": "unbalanced_file", "line": None, "message": "total debit 1.00 != total credit 2.00"}
    assert FRENCH.rule_message(old) == "total debit 1.00 != total credit 2.00"


def test_the_validate_text_is_french_by_default_and_english_on_request(tmp_path):
    path = tmp_path / "123456789FEC20231231.txt"
    path.write_bytes((PROJECT_ROOT / "tests" / "fixtures" / "542107651FEC20210502.txt").read_bytes())
    report = validate_path(path).to_dict()
    assert "3 lignes, 1 écriture, débit 1\u202f724,54\u00a0€" in validation_text(FRENCH, report)
    assert "3 lines, 1 entry, debit €1,724.54" in validation_text(ENGLISH, report)


@pytest.mark.parametrize("value", ["de", "FR-fr", "french"])
def test_an_unknown_report_language_stops_the_start_with_its_name(value):
    with pytest.raises(SettingsError, match=r"REPORT_LANGUAGE must be one of fr, en, got '" + value.lower()):
        load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "REPORT_LANGUAGE": value},
                      require_loop=False)


def test_an_unknown_time_zone_stops_the_start():
    with pytest.raises(SettingsError, match="REPORT_TIMEZONE must be an IANA time zone"):
        load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "REPORT_TIMEZONE": "Paris/Nowhere"},
                      require_loop=False)


def test_the_languages_default_to_french_in_paris():
    settings = load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}, require_loop=False)
    assert (settings.report_language, settings.report_timezone) == ("fr", "Europe/Paris")
    english = load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "REPORT_LANGUAGE": "EN"},
                            require_loop=False)
    assert english.report_language == "en"


def test_the_catalogue_is_the_only_source():
    """No compiled .mo is committed next to the .po: it could disagree with it."""
    assert not list(Path(catalogue_path("fr")).parent.glob("*.mo"))


# Every verdict, in each language: the page and the JSON texts, no placeholder left.

SUMMARY = {"records": 3, "entries": 1, "total_debit": "1724.54", "total_credit": "1724.54",
           "first_date": "2021-05-02", "last_date": "2021-05-02", "journals": ["INV"]}
ERRORS = [{"rule": "thousands_separator", "line": 18, "column": "Debit", "value": "1 200,00",
           "message": "Debit '1 200,00' has a thousands separator: write '1200,00'", "details": {"fixed": "1200,00"}}]
LOOP_REFUSALS = {
    "Le dossier DEMO999 n'existe pas sur le domaine.": ("n'existe pas sur le domaine du cabinet", "DEMO999"),
    "collaborator x does not have access to the folder": ("la clé d'API n'est pas activée", "Loop Hub"),
    "Ambiguité sur le chemin d'accès au fichier : renseignez URI ou URL, pas les deux.":
        ("à la fois une URI et une URL", "administrateur"),
}


def sample_detail(state: str, **extra) -> dict:
    detail = {"blob": "api-import-ecrit/DEMO001/542107651FEC20210502.txt", "state": state, "code_ibs": "DEMO001",
              "etag": '"0x1"', "request_id": "r-1", "received_at": "2026-12-04T19:19:35.368400+00:00",
              "updated_at": "2026-12-04T19:20:00+00:00", "history": [
                  {"at": "2026-12-04T19:19:35+00:00", "state": state, "note": "n"}],
              "report": {"valid": state != "rejected", "errors": ERRORS if state == "rejected" else [],
                         "warnings": [], "counts": {"thousands_separator": 1} if state == "rejected" else {},
                         "summary": SUMMARY}}
    return {**detail, **extra}


def every_verdict() -> list[dict]:
    from shared.ledger.states import ImportState  # noqa: PLC0415

    earlier = {"blob": "api-import-ecrit/DEMO001/a.txt", "blob_name": "DEMO001/a.txt", "state": "completed",
               "request_id": "r-0", "finished_at": "2026-12-04T19:19:35+00:00", "report_link": "a.txt.report.html"}
    details = [sample_detail(str(state)) for state in ImportState]
    details.append(sample_detail("duplicate", earlier=earlier))
    details.append(sample_detail("duplicate", earlier={**earlier, "state": "pending", "finished_at": None}))
    details.append(sample_detail("rejected", code_ibs=None, error="no dossier: set blob metadata codeibs, drop the "
                                 "file under <codeIbs>/, or name it <SIREN>FEC<AAAAMMJJ> with the SIREN in the table"))
    details.append(sample_detail("rejected", code_ibs=None, error="no dossier: SIREN 542107651 is not in the dossier "
                                 "table; invalid FEC file (thousands_separator x1)"))
    details.append(sample_detail("rejected", code_ibs=None, error="metadata codeibs 'DEMO 1' is not a plausible "
                                 "dossier code (1 to 32 letters, digits, '-' or '_')"))
    details.append(sample_detail("rejected", error="empty file (0 bytes)", report=None))
    details.append(sample_detail("rejected", code_ibs=None, report=None, error="no dossier: SIREN 542107651 is not in "
                                 "the dossier table; empty file (0 bytes)"))
    details += [sample_detail("submit_failed", error=message) for message in LOOP_REFUSALS]
    details.append(sample_detail("submit_failed", error="Loop refused the keys (HTTP 401)"))
    details.append(sample_detail("submit_failed", error="Erreur interne 42 chez Loop"))
    details.append(sample_detail("submit_failed", error="gave up after 8 attempts; last: ServiceRequestError: x"))
    return details


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_verdict_renders_in_every_language_with_no_placeholder_left(language):
    from shared.flows.report_page import render_report_html, translated_report  # noqa: PLC0415

    w = wording(language)
    for detail in every_verdict():
        page = render_report_html(detail, w)
        body = page.split("</style>", 1)[1]
        assert leftover_placeholder(body) is None, (detail["state"], leftover_placeholder(body))
        texts = translated_report(detail, w)["texts"]
        for key, text in texts.items():
            for said in text if isinstance(text, list) else [text]:
                assert leftover_placeholder(said) is None, (detail["state"], key, said)
        assert DATE_SHOWN[language] in body
        if language == "fr":
            english = render_report_html(detail, ENGLISH)
            assert texts["headline"] not in english, texts["headline"]


DATE_SHOWN = {"fr": "04/12/2026 à 20:19", "en": "04/12/2026 at 20:19"}


@pytest.mark.parametrize(("message", "expected"), LOOP_REFUSALS.items())
def test_each_known_loop_refusal_gets_its_plain_explanation_and_fix(message, expected):
    from shared.flows.report_page import render_report_html  # noqa: PLC0415

    page = render_report_html(sample_detail("submit_failed", error=message), FRENCH)
    verdict = unescape(page.split('<dl id="facts">', 1)[0])
    for words in expected:
        assert words in verdict, verdict


def test_an_unknown_loop_refusal_is_shown_as_loop_wrote_it():
    from shared.flows.report_page import render_report_html  # noqa: PLC0415

    page = render_report_html(sample_detail("submit_failed", error="Erreur interne 42 chez Loop"), FRENCH)
    assert "Message de Loop : Erreur interne 42 chez Loop" in page.split('<dl id="facts">', 1)[0]


def test_an_empty_file_says_so_instead_of_pointing_at_errors_not_listed():
    from shared.flows.report_page import render_report_html  # noqa: PLC0415

    page = unescape(render_report_html(sample_detail("rejected", error="empty file (0 bytes)", report=None), FRENCH))
    verdict = page.split('<dl id="facts">', 1)[0]
    assert "Le fichier est vide (0 octet)." in verdict
    assert "Exportez à nouveau le FEC" in verdict
    assert "Corrigez les erreurs ci-dessous" not in verdict


def test_date_rules_write_their_dates_as_days_and_counted_lines_with_their_plural():
    outside = {"rule": "date_outside_period", "value": "20220401", "details": {"closing": "20241231",
                                                                             "earliest": "20230101"}}
    assert FRENCH.rule_message(outside).startswith("la date d'écriture 01/04/2022 est hors de l'exercice")
    assert ENGLISH.rule_message(outside).startswith("EcritureDate 01/04/2022 is not in the fiscal year")
    piece = {"rule": "piece_after_entry", "value": "20230105", "details": {"entry_date": "20230104"}}
    assert "la date de pièce 05/01/2023 est postérieure à la date d'écriture 04/01/2023" in FRENCH.rule_message(piece)
    invalid = {"rule": "invalid_date", "column": "EcritureDate", "value": "20191232"}
    assert "20191232" in FRENCH.rule_message(invalid)  # not a day: shown as written
    for count, lines, french, english in ((1, [5], "1 ligne : 5", "1 line: 5"),
                                          (3, [5, 6, 7], "3 lignes : 5, 6, 7", "3 lines: 5, 6, 7")):
        entry = {"rule": "unbalanced_entry", "value": "7", "details": {
            "journal": "VT", "number": "7", "debit": "10.00", "credit": "0.00", "difference": "10.00",
            "line_count": count, "lines": lines}}
        assert french in FRENCH.rule_message(entry), FRENCH.rule_message(entry)
        assert english in ENGLISH.rule_message(entry), ENGLISH.rule_message(entry)


GAVE_UP = "gave up after 8 attempts; last: ServiceRequestError: Connection refused"


@pytest.mark.parametrize("language", LANGUAGES)
def test_running_out_of_attempts_is_not_blamed_on_loop(language):
    from shared.flows.report_page import render_report_html  # noqa: PLC0415

    page = unescape(render_report_html(sample_detail("submit_failed", error=GAVE_UP), wording(language)))
    verdict = page.split('<dl id="facts">', 1)[0]
    reason = verdict.split('<p id="reason">', 1)[1].split("</p>", 1)[0]
    assert "Message de Loop" not in reason, reason
    assert "Loop's message" not in reason, reason
    assert ("8 tentatives" if language == "fr" else "8 attempts") in reason, reason
