import logging

from shared import telemetry


def test_redact_text_hides_sig_and_keys_and_keeps_the_rest():
    url = "https://acct.blob.core.windows.net/c/a%20b.txt?sv=2024&sp=r&sig=abc%2Bdef%3D&se=2026"
    redacted = telemetry.redact_text(f"GET {url} failed; code=hostkey1")
    assert "abc" not in redacted
    assert "hostkey1" not in redacted
    assert "sig=REDACTED&se=2026" in redacted
    assert redacted.startswith("GET https://acct.blob.core.windows.net/c/a%20b.txt?sv=2024&sp=r&")


def test_emit_has_fixed_dimensions_and_redacts_reasons(caplog):
    caplog.set_level(logging.INFO, logger="fec_import")
    telemetry.emit(
        telemetry.REJECTED,
        {"blob": "c/x.txt", "etag": "0x1", "codeIbs": "DEMO001", "reason": "download of ...&sig=SECRET1 failed"},
    )
    (record,) = caplog.records
    assert record.getMessage().startswith("import.rejected blob=c/x.txt etag=0x1 codeIbs=DEMO001")
    assert "SECRET1" not in record.getMessage()
    dims = record.custom_dimensions
    assert set(dims) == {"event", *telemetry.DIMENSIONS}
    assert dims["requestId"] is None
