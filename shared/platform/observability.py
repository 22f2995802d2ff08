"""Where telemetry goes: Application Insights through OpenTelemetry, or the console only.

On Azure (host.json `"telemetryMode": "OpenTelemetry"`, app setting
`PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true`) the Python worker itself calls
`azure.monitor.opentelemetry.configure_azure_monitor(connection_string=..., logger_name=...)` before
it imports function_app.py, and attaches each invocation's trace context. `configure_telemetry`
then finds the SDK providers already set and leaves them alone (configuring twice would export
everything twice).

Anywhere else (the local host runner, `make run`, tests) `configure_telemetry` makes the same call
the worker makes, with the same settings, when APPLICATIONINSIGHTS_CONNECTION_STRING is set (in the
environment or local.settings.json): same distro, same exporters, same handler on the same logger.
Off Azure it also turns off what would reach the internet on its own: live metrics, statsbeat,
the SDK's OneSettings control plane, and offline retry files. Without a connection string nothing
is configured: events go to the console only, and one line says so.

What is sampled (README, "Telemetry: what is sampled and why"): every import's trace is kept
whole, and nothing else is created. `ImportSampler` is the decision: a span named like an
import's root (`import.submit`, `import.poll`) is always sampled, a span under a sampled span of
this process follows it, and any other span with no parent here (the storage SDK's blob listing,
queue receives, the timer's due-index queries, each under the host's invocation or nothing) is
dropped at creation: it costs nothing and spends no budget. The distro takes no sampler object, so
it is set on the provider after the distro (or the worker) built it, and on the tracers already
made (the instrumentations'). `OTEL_TRACES_SAMPLER=parentbased_always_on` (app setting in infra/,
local.settings.sample.json, local/settings.py) replaces the distro's default of 5 traces a second
for any tracer made before: it never drops a child of a kept span.

Export never blocks an import: spans and log records are queued by batch processors (bounded
queues, dropped when full) and sent from their own threads; metrics are read every 60 s
(OTEL_METRIC_EXPORT_INTERVAL) by a background reader.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry._logs import get_logger_provider
from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from shared.platform.redaction import redact_text

log = logging.getLogger(__name__)

CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
WORKER_SETTING = "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"
LOGGER_NAME_SETTING = "PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME"
# Set by App Service on every Azure Functions instance, never on a developer machine.
AZURE_MARKER = "WEBSITE_SITE_NAME"
# Off Azure, what the distro would otherwise send to Microsoft's endpoints by itself.
LOCAL_QUIET = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
}
# Cloud role name of a local run (on Azure the resource detector names the function app).
LOCAL_SERVICE_NAME = "fec-import-local"
CONSOLE_ONLY = "telemetry: console only (APPLICATIONINSIGHTS_CONNECTION_STRING is not set)"

# The distro's own sampler, for tracers made before ImportSampler is set (same value in infra/).
TRACES_SAMPLER_SETTINGS = {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}
# The root span of each import's trace: its submit (blob trigger), each status check (queue worker).
IMPORT_ROOT_SPANS = frozenset({"import.submit", "import.poll"})

_lock = threading.Lock()
_mode: str | None = None


class ImportSampler(Sampler):
    """Every import's trace kept whole, no other span created (see the module's docstring)."""

    def should_sample(  # noqa: PLR0917 - the SDK's Sampler signature
        self, parent_context: Context | None, trace_id: int, name: str, kind: SpanKind | None = None,
        attributes: Attributes = None, links: Sequence[Link] | None = None, trace_state: Any = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        # A sampled parent in this process is part of an import's trace; no parent here (or a
        # dropped one) and not an import's root: says nothing about an import.
        under_kept = parent.is_valid and not parent.is_remote and parent.trace_flags.sampled
        if name in IMPORT_ROOT_SPANS or under_kept:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, parent.trace_state)
        return SamplingResult(Decision.DROP, None, parent.trace_state)

    def get_description(self) -> str:
        return "ImportSampler{" + ",".join(sorted(IMPORT_ROOT_SPANS)) + "}"


def install_sampler(provider: Any) -> None:
    """Make ImportSampler the provider's sampler, also for the tracers it already made (the SDK
    caches tracers with the sampler of their making: the instrumentations' come first)."""
    sampler = ImportSampler()
    provider.sampler = sampler
    for made in dict(getattr(provider, "_tracers", {})).values():
        made.sampler = sampler


class RedactedLogFilter(logging.Filter):
    """Passes every record through `redact_text` before the exporting handler reads it: the
    message, and an exception's text (dropped from the record, kept redacted in the message, when
    it held a secret)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if record.exc_info and record.exc_info[1] is not None:
            stack = "".join(traceback.format_exception(*record.exc_info))
            if redact_text(stack) != stack:
                cleaned, record.exc_info, record.exc_text = f"{cleaned}\n{redact_text(stack)}", None, None
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def sdk_configured() -> bool:
    """True once an OpenTelemetry SDK tracer provider is global (the worker's, or ours)."""
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415 - the SDK only when asked

    return isinstance(trace.get_tracer_provider(), TracerProvider)


def on_azure(env: Mapping[str, str]) -> bool:
    return bool(env.get(AZURE_MARKER))


def configure_telemetry(env: Mapping[str, str] | None = None) -> str:
    """Configure export once per process; return the mode: `worker` (the Python worker configured
    it), `exporting` (configured here) or `console`."""
    global _mode  # noqa: PLW0603 - one telemetry configuration per process, like the SDK's providers
    with _lock:
        if _mode is None:
            _mode = _configure(dict(os.environ if env is None else env))
        return _mode


def _configure(env: dict[str, str]) -> str:
    if sdk_configured():
        mode = "worker"
    elif not env.get(CONNECTION_SETTING):
        log.info(CONSOLE_ONLY)
        return "console"
    else:
        _configure_azure_monitor(env)
        mode = "exporting"
    install_sampler(trace.get_tracer_provider())
    _redact_exported_logs(env.get(LOGGER_NAME_SETTING, ""))
    return mode


def _configure_azure_monitor(env: dict[str, str]) -> None:
    """The worker's call (its `initialize_azure_monitor`), made here; off Azure, quietly."""
    from azure.monitor.opentelemetry import configure_azure_monitor  # noqa: PLC0415 - 1 s import, only when used

    local = not on_azure(env)
    if local:
        for name, value in LOCAL_QUIET.items():
            os.environ.setdefault(name, value)
        os.environ.setdefault("OTEL_SERVICE_NAME", LOCAL_SERVICE_NAME)
    os.environ.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "azure_functions")
    for name, value in TRACES_SAMPLER_SETTINGS.items():
        os.environ.setdefault(name, env.get(name, value))
    configure_azure_monitor(
        connection_string=env[CONNECTION_SETTING],
        logger_name=env.get(LOGGER_NAME_SETTING, ""),
        enable_live_metrics=not local,
        disable_offline_storage=local,
    )
    log.info("telemetry: exporting to Application Insights (%s)", "local" if local else "Azure")


def _redact_exported_logs(logger_name: str) -> None:
    """Clean every record the OpenTelemetry handler exports with the one redaction: events are
    clean already; this covers the other loggers (libraries, the host runner's warnings)."""
    from opentelemetry.instrumentation.logging.handler import LoggingHandler  # noqa: PLC0415

    for handler in logging.getLogger(logger_name).handlers:
        if isinstance(handler, LoggingHandler) and not any(
            isinstance(existing, RedactedLogFilter) for existing in handler.filters
        ):
            handler.addFilter(RedactedLogFilter())


def flush(timeout_millis: int = 5_000) -> None:
    """Export what is queued now (end of a local run, tests). Bounded by `timeout_millis` each."""
    for provider in (trace.get_tracer_provider(), get_logger_provider(), metrics.get_meter_provider()):
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            force_flush(timeout_millis)
