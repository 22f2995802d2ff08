"""The platform every other package stands on: settings read and checked at start, storage and
SAS, the clock, the one backoff policy, secret redaction, and telemetry (events, traces, metrics).

May import: nothing else of `shared` (the standard library, the Azure SDKs, OpenTelemetry).
"""
