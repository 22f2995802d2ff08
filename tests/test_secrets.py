"""Whole flows with distinctive fake keys: no log record, exception message or ledger field may
carry the Loop keys, the storage account key or any SAS signature."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs, urlsplit

import pytest

from local.azurite import DEV_ACCOUNT_KEY
from shared.cli.main import main as cli_main
from shared.flows.poll import poll_imports
from shared.flows.submit import SubmitRetryableError, submit_blob
from tests.fixtures_loop import TEST_LOOP_API_KEY, TEST_LOOP_SUBSCRIPTION_KEY
from tests.helpers import upload, wait_until_final_at_loop


def test_no_secret_anywhere_after_every_kind_of_flow(
    pipeline, pipeline_env, loop_emulator, fec_bytes, caplog, capsys, monkeypatch
):
    caplog.set_level(logging.DEBUG)
    data = fec_bytes
    signatures: list[str] = []
    original_sign = pipeline.signer.sign

    quote_back = {"on": False}

    def recording_sign(*args, **kwargs):
        signed = original_sign(*args, **kwargs)
        signatures.append(parse_qs(urlsplit(signed.url).query)["sig"][0])
        if quote_back["on"]:  # Loop (or a gateway) quotes the URL and our headers back in its error
            message = (f"Impossible de télécharger {signed.url} (x-apikey: {TEST_LOOP_API_KEY}, "
                       f"Ocp-Apim-Subscription-Key: {TEST_LOOP_SUBSCRIPTION_KEY})")
            loop_emulator.set_faults({"importFEC": [{"kind": "error_body", "message": message}]})
        return signed

    monkeypatch.setattr(pipeline.signer, "sign", recording_sign)
    problems: list[str] = []

    def attempt(name: str, payload: bytes, **metadata: str) -> None:
        try:
            submit_blob(pipeline, upload(pipeline, name, payload, **metadata))
        except SubmitRetryableError as error:
            problems.append(f"{error!r} {error}")

    attempt("DEMO001/ok.txt", data)
    loop_emulator.set_faults({"importFEC": [{"kind": "reset"}]})
    attempt("DEMO001/reset.txt", data + b"\r\n")
    loop_emulator.set_faults({"importFEC": [{"kind": "http", "status": 401}]})
    attempt("DEMO001/auth.txt", data + b"\r\n\r\n")
    loop_emulator.set_faults({"importFEC": [{"kind": "http", "status": 503, "retry_after": 0, "times": 5}]})
    attempt("DEMO001/busy.txt", data + b"\r\n\r\n\r\n")
    attempt("DEMO999/unknown-dossier.txt", data + b" ")
    attempt("nodossier.txt", data)
    quote_back["on"] = True
    attempt("DEMO001/quoted.txt", data + b"\r\n\r\n\r\n\r\n")
    quote_back["on"] = False
    wait_until_final_at_loop(loop_emulator)
    loop_emulator.set_faults({"status": [{"kind": "http", "status": 500}]})
    poll_imports(pipeline)
    poll_imports(pipeline)
    for name, value in pipeline_env.items():
        monkeypatch.setenv(name, value)
    cli_main(["imports", "list", "--json"])
    cli_main(["imports", "show", "DEMO001/ok.txt", "--json"])
    cli_main(["imports", "show", "DEMO001/quoted.txt"])

    assert len(signatures) >= 4
    secrets = [TEST_LOOP_API_KEY, TEST_LOOP_SUBSCRIPTION_KEY, TEST_LOOP_API_KEY.split(":")[1], DEV_ACCOUNT_KEY,
               *signatures]
    logged = "\n".join(
        f"{record.getMessage()} {getattr(record, 'custom_dimensions', '')} {record.exc_text or ''}"
        for record in caplog.records
    )
    ledger_rows = "\n".join(json.dumps(dict(entity), default=str) for entity in pipeline.ledger.table.list_entities())
    printed = capsys.readouterr()
    emulator_log = json.dumps(loop_emulator.requests())
    places = {
        "logs": logged, "ledger": ledger_rows, "errors": "\n".join(problems),
        "cli output": printed.out + printed.err, "emulator request log": emulator_log,
    }
    assert "import.submitted" in logged
    assert "import.auth_failed" in logged
    assert "Impossible de t" in ledger_rows
    assert "sig=REDACTED" in ledger_rows
    assert "Impossible de télécharger" in printed.out
    for place, text in places.items():
        for secret in secrets:
            if secret in text:
                pytest.fail(f"a secret ({len(secret)} characters, starting {secret[:3]!r}) is in the {place}")


def test_a_failure_quoting_a_signature_or_a_key_is_stored_and_shown_without_it(pipeline, pipeline_env, fec_bytes,
                                                                              capsys, monkeypatch):
    """Not only Loop's errors: whatever fails before the POST is written on the record, cleaned first."""
    from local.azurite import DEV_ACCOUNT_KEY  # noqa: PLC0415

    def signing_fails(*_args, **_kwargs):
        raise RuntimeError(f"cannot sign https://a/b?sv=1&sig=LEAKEDSIG123&se=2 with AccountKey={DEV_ACCOUNT_KEY};")

    monkeypatch.setattr(pipeline.signer, "sign", signing_fails)
    with pytest.raises(RuntimeError):
        submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    rows = "\n".join(json.dumps(dict(entity), default=str) for entity in pipeline.ledger.table.list_entities())
    for name, value in pipeline_env.items():
        monkeypatch.setenv(name, value)
    cli_main(["imports", "show", "DEMO001/a.txt"])
    shown = capsys.readouterr().out
    assert "cannot sign https://a/b?sv=1&sig=REDACTED&se=2" in rows
    for text in (rows, shown):
        assert "LEAKEDSIG123" not in text
        assert DEV_ACCOUNT_KEY not in text


# --- Loop's error quoting a secret in any shape, anywhere in a long message -------------------------

SIGNATURE = "Zq9SigValueK3yWq8Lm%2Bz8"
MESSAGE_LIMIT = 500


def _at_the_cut(secret: str, kept: int, before: str = "", after: str = "") -> str:
    """A message longer than the limit whose cut falls after `kept` characters of `secret`."""
    head = before + secret
    filler = "x" * (MESSAGE_LIMIT - len(before) - kept)
    return filler + head + after + " " + "y" * 40


def _fragments(secret: str, around: str, size: int = 6) -> set[str]:
    """Every piece of `size` characters of the secret, but those the text around it holds anyway
    (`subscription` is in the header's name too)."""
    rest = around.replace(secret, " ")
    return {secret[i:i + size] for i in range(len(secret) - size + 1)} - {
        piece for piece in (rest[i:i + size] for i in range(len(rest))) if len(piece) == size}


PLACEMENTS = {
    "json sig": f'Impossible de lire le fichier: {{"sv": "2024", "sig": "{SIGNATURE}", "se": "2030"}}',
    "json sig quoted in json": f'reponse: "{{\\"sig\\": \\"{SIGNATURE}\\"}}"',
    "repr sig": f"params {{'sig': '{SIGNATURE}'}}",
    "json x-apikey": f'headers: {{"x-apikey": "{TEST_LOOP_API_KEY}", "Accept": "application/json"}}',
    "json subscription key": f'{{"Ocp-Apim-Subscription-Key": "{TEST_LOOP_SUBSCRIPTION_KEY}"}}',
    "header subscription key": f"Ocp-Apim-Subscription-Key: {TEST_LOOP_SUBSCRIPTION_KEY}\r\nHost: loop",
    "header x-apikey": f"x-apikey: {TEST_LOOP_API_KEY}; refused",
    "query sig": f"https://acct.blob.core.windows.net/c/f.txt?sv=1&sig={SIGNATURE}&se=2 unreadable",
    # The cut at 500 characters falls inside the secret: 17 of the key's 18 characters, 18 of the
    # subscription key's 22, most of a quoted signature were kept when the cut came first.
    "key part at the cut": _at_the_cut(TEST_LOOP_API_KEY.split(":")[0], 17),
    "subscription key at the cut": _at_the_cut(TEST_LOOP_SUBSCRIPTION_KEY, 18),
    "json sig at the cut": _at_the_cut(SIGNATURE, 15, before='{"sig": "', after='"}'),
    "header key at the cut": _at_the_cut(TEST_LOOP_SUBSCRIPTION_KEY, 10, before="Ocp-Apim-Subscription-Key: "),
}


@pytest.mark.parametrize("placement", list(PLACEMENTS))
def test_a_secret_quoted_by_loop_in_any_shape_is_never_stored_even_in_part(
    pipeline, pipeline_env, loop_emulator, fec_bytes, capsys, monkeypatch, placement
):
    message = PLACEMENTS[placement]
    loop_emulator.set_faults({"importFEC": [{"kind": "error_body", "message": message}]})
    record = submit_blob(pipeline, upload(pipeline, "DEMO001/quoted.txt", fec_bytes))
    rows = "\n".join(json.dumps(dict(entity), default=str) for entity in pipeline.ledger.table.list_entities())
    for name, value in pipeline_env.items():
        monkeypatch.setenv(name, value)
    cli_main(["imports", "show", "DEMO001/quoted.txt", "--json"])
    shown = capsys.readouterr().out
    assert "REDACTED" in (record.error or "")
    secrets = [SIGNATURE, *TEST_LOOP_API_KEY.split(":"), TEST_LOOP_SUBSCRIPTION_KEY]
    for place, text in {"record": record.error, "ledger": rows, "cli": shown}.items():
        for secret in secrets:
            leaked = sorted(fragment for fragment in _fragments(secret, message) if fragment in text)
            assert not leaked, f"{len(leaked)} pieces of a secret ({len(secret)} characters) in the {place}"


def test_a_short_name_never_keeps_a_piece_of_a_secret_and_a_name_holding_one_is_kept_whole():
    """A text about `DEMO001/F` quotes its last segment, `F`, which a signature may hold: the
    signature is redacted whole, in a URL and in JSON. A name that holds `code=` or `sig=` is kept
    as the dropper wrote it, and a secret after it still goes."""
    from shared.flows.import_views import names_of  # noqa: PLC0415
    from shared.ledger.record import ImportRecord  # noqa: PLC0415
    from shared.platform.redaction import redact_text_keeping  # noqa: PLC0415

    short = names_of(ImportRecord("imports", "DEMO001/F", '"0x1"'))
    assert redact_text_keeping("https://a/b?sv=1&sig=AbFcdEFgh123%3D&se=2 for F", short) == (
        "https://a/b?sv=1&sig=REDACTED&se=2 for F")
    assert redact_text_keeping('{"sig": "xyzFabc123456", "file": "F"}', short) == (
        '{"sig": "REDACTED", "file": "F"}')
    assert redact_text_keeping("Authorization: BearerF123456", short) == "Authorization: REDACTED"
    name = "DEMO001/export code=1;sig=2.txt"
    kept = names_of(ImportRecord("imports", name, '"0x1"'))
    assert redact_text_keeping(f"'{name}' is not named <SIREN>FEC<AAAAMMJJ>; sig=LEAKED123", kept) == (
        f"'{name}' is not named <SIREN>FEC<AAAAMMJJ>; sig=REDACTED")
    assert redact_text_keeping(f"same content as imports/{name} (request 1)", kept) == (
        f"same content as imports/{name} (request 1)")
