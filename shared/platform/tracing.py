"""Spans of the pipeline: one trace per import, its steps as child spans, later polls linked to it.

Only the OpenTelemetry API is used here: without a configured SDK (no connection string) every span
is a non-recording no-op, so the pipeline pays nothing. Attribute values go through
`shared.platform.redaction.redact_text` and exceptions are recorded as their type and redacted message only
(the SDK's own `record_exception` would export the raw message and stack).

The W3C `traceparent` of the submit span is stored on the import record (`trace_parent`), so the
timer's poll spans, hours later and in another invocation, carry a link to the submit trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.platform.redaction import redact_field, redact_text

TRACER_NAME = "fec_import"
_PROPAGATOR = TraceContextTextMapPropagator()
AttributeValue = str | bool | int | float


def clean_attributes(attributes: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """Attributes an exporter accepts: None dropped, text redacted (but names: `blob`), anything else
    as text."""
    cleaned: dict[str, AttributeValue] = {}
    for name, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, bool | int | float):
            cleaned[name] = value
        else:
            cleaned[name] = redact_field(name, str(value))
    return cleaned


def without_query(url: str) -> str:
    """The URL without query string and fragment, where signed URLs carry their signature."""
    return urlsplit(url)._replace(query="", fragment="").geturl()


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


@contextmanager
def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, links: list[Link] | None = None,
         **attributes: Any) -> Iterator[Span]:
    """A child span of the current one; an exception marks it failed (type and redacted message)."""
    with tracer().start_as_current_span(
        name, kind=kind, links=links or [], attributes=clean_attributes(attributes),
        record_exception=False, set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as error:
            mark_failed(current, error)
            raise


def mark_failed(current: Span, error: BaseException) -> None:
    current.set_attribute("error.type", type(error).__name__)
    current.set_status(Status(StatusCode.ERROR, redact_text(f"{type(error).__name__}: {error}")[:500]))


def annotate(**attributes: Any) -> None:
    """Add attributes to the current span (no-op without one)."""
    trace.get_current_span().set_attributes(clean_attributes(attributes))


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, or None when nothing is traced."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def links_to(traceparent: str | None) -> list[Link]:
    """A link to the span a stored traceparent names (none if it is empty or malformed)."""
    if not traceparent:
        return []
    context = trace.get_current_span(_PROPAGATOR.extract({"traceparent": traceparent})).get_span_context()
    return [Link(context, {"link.kind": "submit"})] if context.is_valid else []


def http_dependency(operation: str, url: Callable[..., str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a Loop client method: one span for the call as ops see it (urllib3's retries
    included; the requests instrumentation adds each HTTP attempt as a child dependency) and its
    latency in `fec.loop.duration`, by operation and result (`ok` or the error's class name).

    `url(self, *args)` gives the URL called; it is exported without its query string."""
    from shared.platform import metrics  # noqa: PLC0415 - metrics imports this module's helpers

    def decorate(method: Callable[..., Any]) -> Callable[..., Any]:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            target = without_query(url(self, *args))
            with metrics.timed_loop_call(operation) as outcome, span(
                f"Loop {operation}", **{"loop.operation": operation, "loop.url": target},
            ) as current:
                try:
                    result = method(self, *args, **kwargs)
                except Exception as error:
                    outcome["result"] = type(error).__name__
                    current.set_attribute("loop.result", type(error).__name__)
                    status = getattr(error, "http_status", None)
                    if status is not None:
                        current.set_attribute("http.response.status_code", status)
                    raise
                current.set_attribute("loop.result", "ok")
                return result

        call.__name__, call.__doc__, call.__wrapped__ = method.__name__, method.__doc__, method  # type: ignore[attr-defined]
        return call

    return decorate
