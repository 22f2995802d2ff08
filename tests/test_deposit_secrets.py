"""No deposit URL signature anywhere: logs (urllib3 at DEBUG included), ledger rows, exceptions, CLI
output, whatever happens to the deposit, the upload or the POST, and when Loop quotes the URL back."""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from shared.cli.main import main as cli_main
from shared.flows.deposit import DepositError
from shared.flows.submit import SubmitRetryableError, submit_blob
from shared.platform.redaction import RedactingFilter, protect_logger, redact_text
from tests import deposit_fixtures
from tests.helpers import upload

deposit_emulator = deposit_fixtures.deposit_emulator
loop_emulator = deposit_fixtures.loop_emulator
pipeline_env = deposit_fixtures.pipeline_env


def test_no_deposit_signature_in_any_log_record_exception_or_output(
    pipeline, pipeline_env, loop_emulator, fec_bytes, caplog, capsys, monkeypatch
):
    caplog.set_level(logging.DEBUG)
    signatures: list[str] = []
    quote_back = {"on": False}
    real = pipeline.loop.get_file_url_deposit

    def recording(filename: str):
        target = real(filename)
        signatures.append(parse_qs(urlsplit(target.upload_url).query)["sig"][0])
        if quote_back["on"]:  # Loop quoting the deposit URL back in its refusal
            message = f"Fichier introuvable : {target.upload_url}"
            loop_emulator.set_faults({"importFEC": [{"kind": "error_body", "message": message}]})
        return target

    monkeypatch.setattr(pipeline.loop, "get_file_url_deposit", recording)
    problems: list[str] = []

    def attempt(name: str, payload: bytes) -> None:
        try:
            submit_blob(pipeline, upload(pipeline, name, payload))
        except (DepositError, SubmitRetryableError) as error:
            problems.append(f"{error!r} {error}")

    attempt("DEMO001/ok.txt", fec_bytes)
    for number, kind in enumerate(("expired", "read_only", "bad_signature", "missing_container")):
        loop_emulator.set_faults({"upload": [{"kind": kind}]})
        attempt(f"DEMO001/{kind}.txt", fec_bytes + b"\n" * (number + 1))
    loop_emulator.set_faults({"importFEC": [{"kind": "reset"}]})
    attempt("DEMO001/reset.txt", fec_bytes + b" ")
    loop_emulator.set_faults({"importFEC": [{"kind": "http", "status": 503, "retry_after": 0, "times": 5}]})
    attempt("DEMO001/busy.txt", fec_bytes + b"  ")
    loop_emulator.set_faults({"deposit_answer": "uri"})  # the signed URL in `uri`: stored without it
    attempt("DEMO001/uri-only.txt", fec_bytes + b"   ")
    loop_emulator.set_faults({"deposit_answer": "both"})
    quote_back["on"] = True
    attempt("DEMO001/quoted.txt", fec_bytes + b"    ")
    quote_back["on"] = False
    for name, value in pipeline_env.items():
        monkeypatch.setenv(name, value)
    cli_main(["imports", "list", "--json"])
    for name in ("ok", "quoted", "uri-only", "expired"):
        cli_main(["imports", "show", f"DEMO001/{name}.txt"])
        cli_main(["imports", "show", f"DEMO001/{name}.txt", "--json"])

    assert len(signatures) >= 9
    assert len(problems) == 5
    logged = "\n".join(
        f"{record.getMessage()} {getattr(record, 'custom_dimensions', '')} {record.exc_text or ''}"
        for record in caplog.records
    )
    ledger_rows = "\n".join(json.dumps(dict(entity), default=str) for entity in pipeline.ledger.table.list_entities())
    printed = capsys.readouterr()
    places = {"logs": logged, "ledger": ledger_rows, "errors": "\n".join(problems),
              "cli output": printed.out + printed.err}
    assert "PUT /" in logged, "urllib3's request lines were captured (DEBUG), and checked"
    assert "Fichier introuvable" in ledger_rows
    assert "deposit URI  " in printed.out
    for place, text in places.items():
        assert not re.search(r"sig(=|%3D)(?!REDACTED)", text, re.IGNORECASE), f"an unredacted sig= is in the {place}"
        for signature in signatures:  # decoded, and as the URL carries it (its trailing '=' as %3D)
            for form in {signature, quote(signature, safe="/"), quote(signature, safe="")}:
                if form in text:
                    pytest.fail(f"a deposit URL signature ({signature[:4]}...) is in the {place}")


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("https://b.s3.amazonaws.com/f?X-Amz-Credential=AKIA1%2F2024&X-Amz-Signature=0a1b2c3d4e", "X-Amz-Signature=REDACTED"),
        ("https://storage.googleapis.com/b/f?X-Goog-Signature=9f8e7d6c5b", "X-Goog-Signature=REDACTED"),
        ("https://upload.example/f?expires=1&signature=abcdef123456", "signature=REDACTED"),
        ("http://127.0.0.1:10000/devstoreaccount1/d/f?sv=2025-01-05&sig=Zm9vYmFy%3D", "sig=REDACTED"),
    ],
)
def test_signed_urls_of_every_kind_are_redacted(text, kept):
    cleaned = redact_text(text)
    assert kept in cleaned
    assert text.rsplit("=", 1)[1] not in cleaned


def test_a_protected_loggers_records_are_cleaned_before_any_handler(caplog):
    caplog.set_level(logging.DEBUG)
    protect_logger("tests.deposit.urls")
    protect_logger("tests.deposit.urls")  # once is enough; twice adds nothing
    logger = logging.getLogger("tests.deposit.urls")
    assert sum(isinstance(f, RedactingFilter) for f in logger.filters) == 1
    logger.debug('%s "PUT %s HTTP/1.1" 201', "http://h:1", "/a/b?sv=1&sig=c2VjcmV0c2ln")
    assert "sig=REDACTED" in caplog.text
    assert "c2VjcmV0c2ln" not in caplog.text
