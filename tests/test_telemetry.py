"""Events as structured records, spans and their stored context, in process (no exporter: see
tests/test_telemetry_export.py for what leaves the process)."""

import json
import logging
import re

from opentelemetry.sdk.trace import TracerProvider

from shared.platform import observability, telemetry, tracing
from shared.platform.redaction import register_secret


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


def test_the_fields_are_the_records_own_attributes_as_the_exporter_reads_them(caplog):
    """The OpenTelemetry handler exports `vars(record)` minus the standard LogRecord fields: those
    are the event's fields, flat, typed, redacted; the in-process views are slots, not exported."""
    register_secret("SuperSecretLoopKey42")
    caplog.set_level(logging.INFO, logger="fec_import")
    telemetry.emit(
        telemetry.REJECTED,
        {"blob": "c/x.txt", "etag": "0x1", "state": "rejected", "loopStatus": 4,
         "reason": "Loop said SuperSecretLoopKey42 is wrong"},
        rules={"errors": {"invalid_date": 2}, "warnings": {"file_name": 1}}, warnings=1,
    )
    (record,) = caplog.records
    standard = {*logging.makeLogRecord({}).__dict__, "message", "asctime"}  # the last two: set by formatting
    exported = {k: v for k, v in vars(record).items() if k not in standard}
    assert exported == {
        "event": "import.rejected", "blob": "c/x.txt", "etag": "0x1", "state": "rejected", "loopStatus": 4,
        "reason": "Loop said REDACTED is wrong", "rules": '{"errors":{"invalid_date":2},"warnings":{"file_name":1}}',
        "warnings": 1,
    }
    rules = {"errors": {"invalid_date": 2}, "warnings": {"file_name": 1}}
    assert json.loads(exported["rules"]) == rules
    assert record.custom_dimensions["rules"] == rules
    console = dict(re.findall(r'(\w+)=(".*?"|\S+)', record.getMessage()))
    assert json.loads(console["rules"]) == rules  # the console line's value is the same JSON
    assert record.event_name == "import.rejected"


def test_a_blob_name_is_a_name_never_redacted_in_events_or_spans(caplog):
    """What ops look a file up by (`customDimensions.blob`) is the name the dropper gave."""
    caplog.set_level(logging.INFO, logger="fec_import")
    name = "c/export code=1;sig=2 token=3.txt"
    telemetry.emit(telemetry.RECEIVED, {"blob": name, "reason": "quoted c/x.txt?sig=SECRET1"})
    (record,) = caplog.records
    assert record.blob == name
    assert f'blob="{name}"' in record.getMessage()
    assert "SECRET1" not in record.getMessage()
    assert tracing.clean_attributes({"blob": name, "loop.url": "https://x/a?sig=SECRET1"}) == {
        "blob": name, "loop.url": "https://x/a?sig=REDACTED"}


def test_a_silenced_logger_still_counts_but_builds_no_record(caplog):
    caplog.set_level(logging.ERROR, logger="fec_import")
    telemetry.emit(telemetry.STATUS_CHANGED, {"blob": "c/x.txt"})
    assert caplog.records == []


def test_without_an_sdk_spans_are_no_ops_and_there_is_no_context_to_store():
    assert not observability.sdk_configured()
    with tracing.span("import.submit", blob="c/x.txt") as current:
        assert not current.is_recording()
        assert tracing.current_traceparent() is None
    assert tracing.links_to(None) == []
    assert tracing.links_to("not a traceparent") == []


def test_a_stored_traceparent_becomes_a_link_to_the_same_span():
    provider = TracerProvider()
    with provider.get_tracer("test").start_as_current_span("submit") as submit:
        stored = tracing.current_traceparent()
    (link,) = tracing.links_to(stored)
    assert link.context.trace_id == submit.get_span_context().trace_id
    assert link.context.span_id == submit.get_span_context().span_id


def test_attributes_are_cleaned_for_export():
    register_secret("AnotherSecretValue99")
    cleaned = tracing.clean_attributes({"a": None, "b": 3, "c": "x AnotherSecretValue99 y", "d": ("t",), "e": True})
    assert cleaned == {"b": 3, "c": "x REDACTED y", "d": "('t',)", "e": True}
    assert tracing.without_query("https://h/p/importFEC?sig=abc&x=1#f") == "https://h/p/importFEC"


def test_the_export_filter_cleans_other_loggers_records_and_their_exceptions():
    register_secret("ThirdSecretValue77")
    try:
        raise RuntimeError("GET https://a/b?sig=ThirdSecretValue77 failed")
    except RuntimeError as error:
        record = logging.LogRecord("urllib3", logging.WARNING, __file__, 1, "retrying %s", ("x?sig=abc",),
                                   (type(error), error, error.__traceback__))
    assert observability.RedactedLogFilter().filter(record)
    assert record.exc_info is None
    assert "ThirdSecretValue77" not in record.getMessage()
    assert "sig=abc" not in record.getMessage()
    assert "RuntimeError" in record.getMessage()


def test_no_connection_string_means_console_only_with_one_line(caplog, monkeypatch):
    monkeypatch.setattr(observability, "_mode", None)
    caplog.set_level(logging.INFO, logger="shared.platform.observability")
    assert observability.configure_telemetry({}) == "console"
    assert observability.configure_telemetry({}) == "console"
    assert [r.getMessage() for r in caplog.records] == [observability.CONSOLE_ONLY]
    assert not observability.sdk_configured()


def test_the_sampler_keeps_every_import_trace_and_creates_no_other_span():
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF  # noqa: PLC0415
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context  # noqa: PLC0415

    provider = TracerProvider(sampler=ALWAYS_OFF)
    made_before = provider.get_tracer("an instrumentation")  # holds the sampler it was made with
    observability.install_sampler(provider)
    tracer = provider.get_tracer("test")
    host_invocation = set_span_in_context(NonRecordingSpan(SpanContext(
        0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))))
    for name in ("BlobContainerClient.list_blobs", "QueueClient.receive_messages", "TableClient.query_entities"):
        assert not tracer.start_span(name).is_recording()
        assert not tracer.start_span(name, context=host_invocation).is_recording()
    for root in ("import.submit", "import.poll"):
        with tracer.start_as_current_span(root, context=host_invocation) as kept:
            assert kept.is_recording()
            assert made_before.start_span("POST /importFEC").is_recording()
            with tracer.start_as_current_span("Loop importFEC") as child:
                assert child.is_recording()
                assert tracer.start_span("TableClient.update_entity").is_recording()
