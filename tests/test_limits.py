"""Table Storage's limits, and names that try to forge log lines: the record is always written,
its JSON stays readable, and what is printed stays one line per thing."""

from __future__ import annotations

import json
import logging

import pytest

from shared.cli.main import main as cli_main
from shared.flows.submit import submit_blob
from shared.ledger import states
from shared.ledger.ledger import Ledger
from shared.ledger.record import MAX_TEXT_UNITS, ImportRecord, fit_text
from shared.platform.redaction import printable, redact_text, register_secret
from tests.helpers import MovableClock, unique_name, upload

ASTRAL = "\U0001d400"  # outside the BMP: two UTF-16 units


def utf16_units(text: str) -> int:
    """Counted here, not with the module's own function: the test must not share its mistake."""
    return len(text.encode("utf-16-le")) // 2


@pytest.fixture
def ledger(table_service):
    built = Ledger.from_service(table_service, unique_name("ledger"), MovableClock())
    built.ensure()
    return built


def test_fit_text_counts_utf16_units_and_never_splits_a_character():
    text = ASTRAL * 20_000
    fitted = fit_text(text)
    assert utf16_units(fitted) <= MAX_TEXT_UNITS
    assert fitted.endswith(" [truncated]")
    assert set(fitted.removesuffix(" [truncated]")) == {ASTRAL}


def test_long_astral_texts_and_a_huge_history_are_written_and_read_back(ledger):
    record, _ = ledger.claim(ImportRecord("c", "DEMO001/big.txt", '"0x1"', size=3 * 2**30))
    record = ledger.mark_submitting(record, None)
    record = ledger.record_request_id(record, "11111111-2222-3333-4444-555555555555")
    for _ in range(60):  # long notes, more entries than fit: the oldest must go, the JSON stay whole
        record = ledger.move(record, states.NOTE_CHECK, lambda current: setattr(current, "error", ASTRAL * 40_000),
                             note=ASTRAL * 9_000)
    stored = ledger.get(*record.keys)
    assert stored.size == 3 * 2**30
    assert utf16_units(stored.error) <= MAX_TEXT_UNITS
    assert utf16_units(stored.history) <= MAX_TEXT_UNITS
    history = stored.to_dict()["history"]  # valid JSON, however much was cut
    assert history[-1]["state"] == states.PENDING
    assert "older entries dropped" in history[0]["note"]
    assert len(history) < 50


def test_a_blob_of_more_than_2_gib_is_claimed(ledger):
    record, created = ledger.claim(ImportRecord("c", "DEMO001/huge.txt", '"0x2"', size=2**31 + 5))
    assert created
    assert ledger.get(*record.keys).size == 2**31 + 5


def test_a_validation_summary_too_long_for_a_property_is_kept_as_valid_json(ledger):
    record, _ = ledger.claim(ImportRecord("c", "DEMO001/v.txt", '"0x3"', size=1))
    summary = {"journals": [ASTRAL * 10 + str(n) for n in range(5_000)]}
    record.validation = json.dumps({"valid": True, "counts": {"zero_amount_line": 3}, "summary": summary,
                                    "warnings": 3, "snapshot": "2026-01-01T00:00:00Z"})
    ledger.move(record, states.REJECT)
    stored = ledger.get(*record.keys)
    kept = json.loads(stored.validation)
    assert kept == {"valid": True, "counts": {"zero_amount_line": 3}, "warnings": 3,
                    "snapshot": "2026-01-01T00:00:00Z", "truncated": True}


def test_redaction_covers_query_strings_headers_and_configured_values():
    register_secret("conf-key-123456:conf-secret-abcdef")
    text = redact_text(
        "GET https://a/b?sv=1&sig=AbC%2Fd&se=2 x-apikey: k1:s1, Ocp-Apim-Subscription-Key:sub123 "
        "AccountKey=Zm9v;EndpointSuffix=x and conf-secret-abcdef alone, code=hostkey"
    )
    for secret in ("AbC%2Fd", "k1:s1", "sub123", "Zm9v", "conf-secret-abcdef", "hostkey"):
        assert secret not in text
    assert "sv=1&sig=REDACTED&se=2" in text
    quoted = redact_text("download of url=https%3A%2F%2Fa%2Fb%3Fsv%3D2022%26sig%3DABCDEF123%26se%3D1 failed")
    assert "ABCDEF123" not in quoted
    assert "%26sig%3DREDACTED%26se%3D1 failed" in quoted
    assert redact_text("zipcode=75001") == "zipcode=75001"
    assert "EndpointSuffix=x" in text


def test_a_name_with_control_characters_cannot_forge_a_log_line_or_a_cli_row(
    pipeline, pipeline_env, loop_emulator, fec_bytes, caplog, capsys, monkeypatch
):
    caplog.set_level(logging.INFO, logger="fec_import")
    forged = "DEMO001/a.txt\nimport.completed blob=evil state=completed\r\x1b[2J"
    record = submit_blob(pipeline, upload(pipeline, forged, fec_bytes))
    assert record.state == states.PENDING
    messages = [r.getMessage() for r in caplog.records if r.name == "fec_import"]
    assert messages
    assert not [m for m in messages if "\n" in m or "\r" in m or "\x1b" in m]
    assert not any(m.startswith("import.completed") for m in messages)
    assert printable(forged) in messages[0]
    for name, value in pipeline_env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    cli_main(["imports", "list"])
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 2  # the header and one row
    cli_main(["imports", "show", forged])
    shown = capsys.readouterr().out
    assert "\x1b" not in shown
    assert "blob         " + printable(f"{pipeline.settings.container}/{forged}") in shown
