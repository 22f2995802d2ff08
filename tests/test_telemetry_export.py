"""What Application Insights would receive, proven with the real exporter: the app runs in its own
process as under `make run` (tests/export_scenario.py), with APPLICATIONINSIGHTS_CONNECTION_STRING
pointing its IngestionEndpoint at a local stand-in (tests/telemetry_ingestion.py), files dropped
through the local host runner and the Loop emulator over HTTP. Assertions are on the envelopes
that left the process."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from local.azurite import Azurite
from shared.platform import observability
from tests.fixtures_loop import TEST_LOOP_API_KEY, TEST_LOOP_SUBSCRIPTION_KEY
from tests.helpers import PROJECT_ROOT, environment_for_test
from tests.telemetry_ingestion import BlackHole, Ingestion, connection_string

VALID = "DEMO001/123456789FEC20241231.txt"
BROKEN = "DEMO001/123456789FEC20231231.txt"
NO_DOSSIER = "542107651FEC20210502.txt"
DOCS = PROJECT_ROOT / "docs"
MONITORING_BICEP = PROJECT_ROOT / "infra" / "modules" / "monitoring.bicep"


def scenario_env(azurite: Azurite, emulator_url: str, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("APPLICATIONINSIGHTS", "OTEL"))}
    env.update(environment_for_test(azurite.connection_string, emulator_url))
    env.update(extra)  # the sampling is the app's own decision (shared/platform/observability.py)
    return env


def run_scenario(env: dict[str, str], drops: list[tuple[Path, str, str | None]], *, flush: bool = True,
                 timeout: float = 60) -> tuple[dict[str, Any], str]:
    config = {"drops": [[str(path), name, dossier] for path, name, dossier in drops], "flush": flush,
              "timeout": timeout}
    done = subprocess.run([sys.executable, "-m", "tests.export_scenario", json.dumps(config)], check=False,
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout + 60)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout


@pytest.fixture(scope="module")
def files(tmp_path_factory, fec_bytes) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("export")
    valid, broken = folder / "valid.txt", folder / "broken.txt"
    valid.write_bytes(fec_bytes)
    broken.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    return {"valid": valid, "broken": broken}


@pytest.fixture(scope="module")
def exported(azurite, loop_emulator_process, files) -> Iterator[tuple[Ingestion, dict[str, Any], list[dict]]]:
    """One run with telemetry on: a valid file to Loop status 3, an unreadable one, one without a
    dossier. Yields the stand-in, the scenario's result and the requests the emulator received."""
    loop_emulator_process.reset()
    ingestion = Ingestion()
    env = scenario_env(azurite, loop_emulator_process.base_url,
                       APPLICATIONINSIGHTS_CONNECTION_STRING=connection_string(ingestion.port))
    drops = [(files["valid"], VALID, None), (files["broken"], BROKEN, None), (files["valid"], NO_DOSSIER, None)]
    result, _ = run_scenario(env, drops)
    yield ingestion, result, loop_emulator_process.requests()
    ingestion.stop()


def props(envelope: dict[str, Any]) -> dict[str, str]:
    return envelope["data"]["baseData"].get("properties") or {}


def events(ingestion: Ingestion, blob_name: str | None = None) -> list[dict[str, Any]]:
    found = [e for e in ingestion.of_type("MessageData") if props(e).get("event", "").startswith("import.")]
    return [e for e in found if blob_name is None or props(e).get("blob", "").endswith("/" + blob_name)]


def spans(ingestion: Ingestion) -> list[dict[str, Any]]:
    return [*ingestion.of_type("RemoteDependencyData"), *ingestion.of_type("RequestData")]


def operation_id(envelope: dict[str, Any]) -> str:
    return envelope["tags"]["ai.operation.id"]


def metric_points(ingestion: Ingestion, name: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
    found = []
    for envelope in ingestion.of_type("MetricData"):
        for point in envelope["data"]["baseData"]["metrics"]:
            if point["name"] == name:
                found.append((point, props(envelope)))
    return found


def test_every_import_ended_and_nothing_reached_beyond_this_machine(exported):
    ingestion, result, _ = exported
    assert result["mode"] == "exporting"
    assert {name: r["state"] for name, r in result["records"].items()} == {
        VALID: "completed", BROKEN: "rejected", NO_DOSSIER: "rejected",
    }
    assert result["blocked"] == []
    assert ingestion.paths
    assert all(path.endswith("/v2.1/track") for path in ingestion.paths)


def test_each_event_is_a_trace_record_with_its_fields_as_custom_dimensions(exported):
    ingestion, result, _ = exported
    valid = events(ingestion, VALID)
    names = [props(e)["event"] for e in valid]
    for expected in ("import.received", "import.validated", "import.submitting", "import.submitted",
                     "import.completed"):
        assert expected in names
    completed = next(props(e) for e in valid if props(e)["event"] == "import.completed")
    record = result["records"][VALID]
    assert completed["blob"].endswith("/" + VALID)
    assert completed["etag"] == record["etag"]
    assert completed["codeIbs"] == "DEMO001"
    assert completed["requestId"] == record["request_id"]
    assert completed["state"] == "completed"
    assert completed["loopStatus"] == "3"
    message = next(e for e in valid if props(e)["event"] == "import.completed")["data"]["baseData"]["message"]
    assert message.startswith("import.completed blob=")
    (rejected,) = [props(e) for e in events(ingestion, BROKEN) if props(e)["event"] == "import.rejected"]
    assert "not_text" in rejected["reason"]
    assert json.loads(rejected["rules"]) == {"errors": {"not_text": 1}, "warnings": {}}
    validated = next(props(e) for e in valid if props(e)["event"] == "import.validated")
    assert validated["warnings"].isdigit()
    assert json.loads(validated["rules"])["errors"] == {}
    assert sum(json.loads(validated["rules"])["warnings"].values()) == int(validated["warnings"])


def test_one_import_is_one_trace_with_a_span_per_step(exported):
    ingestion, result, _ = exported
    stored = result["records"][VALID]["trace_parent"]
    trace_id = stored.split("-")[1]
    in_trace = [s for s in spans(ingestion) if operation_id(s) == trace_id]
    names = {s["data"]["baseData"]["name"] for s in in_trace}
    steps = {"import.submit", "import.claim", "import.resolve_dossier", "import.snapshot", "import.validate",
             "import.sign", "Loop importFEC"}
    assert steps <= names
    submit = next(s for s in in_trace if s["data"]["baseData"]["name"] == "import.submit")
    assert props(submit)["blob"].endswith("/" + VALID)
    assert props(submit)["state"] == "pending"
    assert props(submit)["size"].isdigit()
    events_in_trace = {props(e)["event"] for e in events(ingestion, VALID) if operation_id(e) == trace_id}
    assert {"import.received", "import.validated", "import.submitted"} <= events_in_trace


def test_the_loop_calls_are_dependencies_without_secrets(exported):
    ingestion, _, emulator_requests = exported
    http = [s for s in ingestion.of_type("RemoteDependencyData") if s["data"]["baseData"].get("type") == "HTTP"]
    loop_urls = [s["data"]["baseData"]["data"] for s in http if "/importFEC" in s["data"]["baseData"]["data"]]
    assert loop_urls, [s["data"]["baseData"]["name"] for s in http]
    assert all("?" not in url for url in loop_urls)
    status_calls = [s for s in http if "/getImportStatus" in s["data"]["baseData"]["data"]]
    assert status_calls
    logical = [s for s in spans(ingestion) if s["data"]["baseData"]["name"] == "Loop importFEC"]
    assert props(logical[0])["loop.result"] == "ok"
    assert props(logical[0])["loop.url"].endswith("/importFEC")
    sent_sas = [r["body"]["URL"] for r in emulator_requests if r["path"] == "/importFEC"]
    assert sent_sas
    assert "sig=" in sent_sas[0]


def test_nothing_exported_carries_a_key_an_account_key_or_a_sas_signature(exported, azurite):
    ingestion, _, emulator_requests = exported
    everything = b"\n".join(ingestion.raw).decode()
    account_key = re.search(r"AccountKey=([^;]+)", azurite.connection_string).group(1)
    signatures = [parse_qs(urlsplit(r["body"]["URL"]).query)["sig"][0]
                  for r in emulator_requests if r["path"] == "/importFEC"]
    signatures = [sig for sig in signatures if sig != "REDACTED"]  # the emulator may keep them redacted
    secrets = [TEST_LOOP_API_KEY, *TEST_LOOP_API_KEY.split(":"), TEST_LOOP_SUBSCRIPTION_KEY, account_key, *signatures]
    for secret in secrets:
        assert secret not in everything
    assert not re.search(r"sig=(?!REDACTED)[^&\s\"]+", everything)


def test_the_poll_of_an_import_is_a_span_linked_to_its_submit_trace(exported):
    ingestion, result, _ = exported
    submit_trace = result["records"][VALID]["trace_parent"].split("-")[1]
    polls = [s for s in spans(ingestion) if s["data"]["baseData"]["name"] == "import.poll"
             and props(s).get("blob", "").endswith("/" + VALID)]
    assert polls
    for poll in polls:
        assert operation_id(poll) != submit_trace
        links = json.loads(props(poll)["_MS.links"])
        assert {"operation_Id": submit_trace}.items() <= links[0].items()


def test_metrics_count_outcomes_and_time_validation_loop_and_ticks(exported):
    ingestion, _, _ = exported
    outcomes = {attrs["outcome"]: point["value"] for point, attrs in metric_points(ingestion, "fec.imports")}
    assert outcomes == {"completed": 1, "rejected": 2}
    assert metric_points(ingestion, "fec.validation.duration")
    assert metric_points(ingestion, "fec.validation.throughput")
    loop = {(a["operation"], a["result"]) for _, a in metric_points(ingestion, "fec.loop.duration")}
    assert {("importFEC", "ok"), ("getImportStatus", "ok")} <= loop
    assert metric_points(ingestion, "fec.poll.tick.duration")
    (pending, _), *_ = metric_points(ingestion, "fec.imports.pending")
    assert pending["value"] >= 0
    assert metric_points(ingestion, "fec.imports.pending.oldest_age")


def kql_blocks() -> list[tuple[str, str]]:
    """(where, query) for every KQL query in docs/ and in the monitoring template."""
    found = []
    for path in sorted(DOCS.rglob("*.md")):
        for block in re.findall(r"```kusto\n(.*?)```", path.read_text(), re.DOTALL):
            found.append((path.name, block))
    if MONITORING_BICEP.exists():
        for block in re.findall(r"'''(.*?)'''", MONITORING_BICEP.read_text(), re.DOTALL):
            found.append((MONITORING_BICEP.name, block))
    return found


def test_every_name_the_kql_uses_is_one_the_envelopes_carry(exported):
    ingestion, _, _ = exported
    blocks = kql_blocks()
    assert len(blocks) >= 8, "the runbooks and the monitoring template hold the queries"
    dimensions = {key for e in ingestion.envelopes for key in props(e)}
    metric_names = {p["name"] for e in ingestion.of_type("MetricData") for p in e["data"]["baseData"]["metrics"]}
    span_names = {s["data"]["baseData"]["name"] for s in spans(ingestion)}
    event_names = {props(e)["event"] for e in events(ingestion)}
    for where, query in blocks:
        for name in re.findall(r"customDimensions(?:\.|\[['\"])([A-Za-z_.]+)", query):
            assert name in dimensions, f"{where}: customDimensions.{name} is in no envelope"
        for name in re.findall(r"name\s*(?:==|in\s*\()\s*['\"](fec\.[a-z_.]+)['\"]", query):
            assert name in metric_names, f"{where}: metric {name} is not exported"
        for name in re.findall(r"['\"](import\.[a-z_]+)['\"]", query):
            known = name in span_names or name in event_names or name in _ALL_EVENTS
            assert known, f"{where}: {name} is neither an event nor a span"


_ALL_EVENTS = {value for name, value in vars(importlib.import_module("shared.platform.telemetry")).items()
               if name.isupper() and isinstance(value, str) and value.startswith("import.")}


def test_without_a_connection_string_the_console_only_line_and_no_exporter(azurite, loop_emulator_process, files):
    loop_emulator_process.reset()
    env = scenario_env(azurite, loop_emulator_process.base_url)
    result, output = run_scenario(env, [(files["valid"], VALID, None)])
    assert result["mode"] == "console"
    assert result["records"][VALID]["state"] == "completed"
    assert result["records"][VALID]["trace_parent"] is None
    assert output.count(observability.CONSOLE_ONLY) == 1
    assert "import.completed blob=" in output
    assert result["blocked"] == []


@pytest.mark.parametrize("kind", ["black_hole", "refused"])
def test_an_unreachable_ingestion_endpoint_neither_slows_nor_fails_an_import(
    azurite, loop_emulator_process, files, kind
):
    loop_emulator_process.reset()
    baseline, _ = run_scenario(scenario_env(azurite, loop_emulator_process.base_url),
                               [(files["valid"], VALID, None)], flush=False)
    hole = BlackHole()
    port = hole.port
    if kind == "refused":
        hole.stop()
    try:
        loop_emulator_process.reset()
        env = scenario_env(azurite, loop_emulator_process.base_url,
                           APPLICATIONINSIGHTS_CONNECTION_STRING=connection_string(port))
        result, _ = run_scenario(env, [(files["valid"], VALID, None), (files["broken"], BROKEN, None)], flush=False)
    finally:
        hole.stop()
    assert result["mode"] == "exporting"
    assert {r["state"] for r in result["records"].values()} == {"completed", "rejected"}
    assert result["elapsed"] < baseline["elapsed"] + 3.0, (result["elapsed"], baseline["elapsed"])
    assert result["blocked"] == []


PEAK_FILES = 30


def test_at_a_peak_every_imports_trace_and_its_loop_call_arrive(azurite, loop_emulator_process, tmp_path, fec_bytes):
    """30 files dropped at once while the host polls, with the app's own sampling decision (no
    OTEL_TRACES_SAMPLER from the test): each file's `import.submit` trace and its `Loop importFEC`
    dependency arrive, and each status check's with its `Loop getImportStatus`; no other span is
    created. The distro's default (5 traces a second, spent on the storage SDK's listing and queue
    spans too) dropped 28 of the 30."""
    loop_emulator_process.reset()
    ingestion = Ingestion()
    try:
        env = scenario_env(azurite, loop_emulator_process.base_url,
                           APPLICATIONINSIGHTS_CONNECTION_STRING=connection_string(ingestion.port))
        drops = []
        for index in range(PEAK_FILES):
            path = tmp_path / f"peak{index}.txt"
            path.write_bytes(fec_bytes + b"\r\n" * index)
            drops.append((path, f"DEMO001/peak/{index:02d}/123456789FEC20241231.txt", None))
        result, _ = run_scenario(env, drops, timeout=120)
        assert len(result["records"]) == PEAK_FILES
        by_trace = {}
        for span in spans(ingestion):
            by_trace.setdefault(operation_id(span), []).append(span["data"]["baseData"]["name"])
        missing = []
        for name, record in result["records"].items():
            names = by_trace.get(record["trace_parent"].split("-")[1], [])
            if "import.submit" not in names or "Loop importFEC" not in names:
                missing.append(name)
        assert not missing, f"{len(missing)} of {PEAK_FILES} imports' traces incomplete"
        polls = [names for names in by_trace.values() if "import.poll" in names]
        assert len(polls) >= PEAK_FILES
        assert all("Loop getImportStatus" in names for names in polls)
        # Nothing else was created: the host's listing, queue receives and the ticks' queries
        # say nothing about an import.
        background = {name for names in by_trace.values() if not {"import.submit", "import.poll"} & set(names)
                      for name in names}
        assert background == set()
    finally:
        ingestion.stop()
