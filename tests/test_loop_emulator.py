"""The Loop emulator itself, over real HTTP, downloading from a real Azurite."""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from azure.storage.blob import BlobSasPermissions, generate_blob_sas

from local.azurite import DEV_ACCOUNT_KEY
from local.loop_emulator.process import start_emulator_process
from tests.fixtures_loop import TEST_LOOP_API_KEY, TEST_LOOP_SUBSCRIPTION_KEY
from tests.helpers import unique_name

HEADERS = {"x-apikey": TEST_LOOP_API_KEY, "Ocp-Apim-Subscription-Key": TEST_LOOP_SUBSCRIPTION_KEY}


@pytest.fixture
def signed_url(blob_service):
    container = unique_name("emu")
    blob_service.create_container(container)

    def make(data: bytes, expiry: datetime | None = None) -> str:
        blob = blob_service.get_blob_client(container, f"f{time.monotonic_ns()}.txt")
        blob.upload_blob(data)
        token = generate_blob_sas(
            blob_service.account_name, container, blob.blob_name, account_key=DEV_ACCOUNT_KEY,
            permission=BlobSasPermissions(read=True), expiry=expiry or datetime.now(UTC) + timedelta(hours=1),
        )
        return f"{blob.url}?{token}"

    return make


def post(emulator, body, headers=HEADERS):
    return requests.post(f"{emulator.base_url}/importFEC", json=body, headers=headers, timeout=10)


def status(emulator, request_id, path="/getImportStatus"):
    return requests.get(f"{emulator.base_url}{path}", params={"accountingImportRequestId": request_id},
                        headers=HEADERS, timeout=10)


def final_status(emulator, request_id, timeout=10.0):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        value = status(emulator, request_id).json()["status"]
        if not seen or seen[-1] != value:
            seen.append(value)
        if value in (3, 4):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"no final status: {seen}")


@pytest.mark.parametrize(
    ("headers", "message"),
    [({}, "missing subscription key"), ({"x-apikey": "a:b", "Ocp-Apim-Subscription-Key": "c"}, "invalid")],
)
def test_both_keys_are_required(loop_emulator, headers, message):
    response = post(loop_emulator, {"codeIbs": "DEMO001", "URI": "", "URL": "https://x"}, headers)
    assert response.status_code == 401
    assert message in response.json()["message"]
    assert status(loop_emulator, "x").status_code == 404
    assert requests.get(f"{loop_emulator.base_url}/getImportStatus", timeout=5).status_code == 401


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"URI": "", "URL": "https://x"}, "codeIbs"),
        ({"codeIbs": "DEMO001", "URI": "", "URL": ""}, "renseignez URI ou URL"),
        ({"codeIbs": "DEMO001", "URI": "guid/f.txt", "URL": "https://x"}, "Ambiguité sur le chemin d'accès"),
        ({"codeIbs": "NOPE", "URI": "", "URL": "https://x"}, "Le dossier NOPE n'existe pas sur le domaine."),
    ],
)
def test_documented_error_bodies_are_http_200(loop_emulator, body, fragment):
    response = post(loop_emulator, body)
    assert response.status_code == 200
    error = response.json()["error"]
    assert fragment in error["message"]
    assert error["instanceId"]
    assert loop_emulator.imports() == []


def test_a_valid_file_goes_1_2_3_and_both_status_paths_answer(loop_emulator, signed_url, fec_bytes):
    data = fec_bytes
    request_id = post(loop_emulator, {"codeIbs": "DEMO001", "URI": "", "URL": signed_url(data)}).json()[
        "accountingImportRequestId"]
    assert final_status(loop_emulator, request_id) == [1, 2, 3]
    body = status(loop_emulator, request_id, "/importStatus").json()
    assert set(body) == {"_id", "id", "creationDate", "lastUpdate", "codeIBS", "domain", "status", "__v"}
    assert (body["id"], body["codeIBS"], body["status"]) == (request_id, "DEMO001", 3)
    (record,) = loop_emulator.imports()
    assert record["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("case", ["not fec", "expired sas", "tampered sig"])
def test_bad_downloads_and_non_fec_files_end_in_4(loop_emulator, signed_url, fec_bytes, case):
    data = fec_bytes
    if case == "not fec":
        url = signed_url(b"this is not an accounting file\n")
    elif case == "expired sas":
        url = signed_url(data, expiry=datetime.now(UTC) - timedelta(minutes=1))
    else:
        url = signed_url(data).replace("sig=", "sig=AAAA")
    request_id = post(loop_emulator, {"codeIbs": "DEMO001", "URI": "", "URL": url}).json()["accountingImportRequestId"]
    assert final_status(loop_emulator, request_id)[-1] == 4
    assert loop_emulator.imports()[0]["failure"]


def test_the_request_log_never_holds_keys_or_signatures(loop_emulator, signed_url):
    url = signed_url(b"x")
    signature = url.split("sig=")[1].split("&")[0]
    post(loop_emulator, {"codeIbs": "DEMO001", "URI": "", "URL": url})
    logged = json.dumps(loop_emulator.requests()) + json.dumps(loop_emulator.imports())
    assert loop_emulator.requests()[0]["auth"] == "ok"
    for secret in (signature, TEST_LOOP_API_KEY, TEST_LOOP_SUBSCRIPTION_KEY):
        assert secret not in logged


def test_transient_failures_are_reproducible_with_a_seed(loop_emulator):
    def run() -> list[int]:
        loop_emulator.reset()
        loop_emulator.set_faults({"transient_rate": 0.3, "seed": 11})
        body = {"codeIbs": "DEMO001", "URI": "", "URL": "http://127.0.0.1:1/x"}
        return [post(loop_emulator, body).status_code for _ in range(30)]

    first = run()
    assert first == run()
    assert 0 < first.count(503) < 30
    assert len(loop_emulator.imports()) == first.count(200)


def test_faults_can_be_set_by_environment_at_start():
    faults = {"importFEC": [{"kind": "error_body", "message": "Erreur injectée"}], "final_status": 4}
    emulator = start_emulator_process(env={**os.environ, "LOOP_EMULATOR_FAULTS": json.dumps(faults),
                                           "LOOP_EMULATOR_API_KEY": TEST_LOOP_API_KEY,
                                           "LOOP_EMULATOR_SUBSCRIPTION_KEY": TEST_LOOP_SUBSCRIPTION_KEY})
    try:
        response = post(emulator, {"codeIbs": "DEMO001", "URI": "", "URL": "https://x"})
        assert response.json()["error"]["message"] == "Erreur injectée"
    finally:
        emulator.stop()


def test_seeded_imports_finish_at_their_own_time_and_every_call_takes_the_latency(loop_emulator):
    ids = loop_emulator.seed(3, (0.4, 0.8))
    loop_emulator.set_faults({"latency_ms": 150})
    headers = {"x-apikey": TEST_LOOP_API_KEY, "Ocp-Apim-Subscription-Key": TEST_LOOP_SUBSCRIPTION_KEY}

    def status(request_id: str) -> tuple[int, float]:
        started = time.monotonic()
        answer = requests.get(f"{loop_emulator.base_url}/getImportStatus", headers=headers, timeout=5,
                              params={"accountingImportRequestId": request_id})
        return answer.json()["status"], time.monotonic() - started

    early = [status(request_id) for request_id in ids]
    assert {code for code, _ in early} <= {1, 2}
    assert min(seconds for _, seconds in early) >= 0.15
    time.sleep(0.9)
    assert {status(request_id)[0] for request_id in ids} == {3}
    finished = {item["id"]: item["finished_at"] for item in loop_emulator.imports()}
    assert all(finished[request_id] <= time.time() for request_id in ids)
