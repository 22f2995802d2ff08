"""The read API (http_api/) served by the local host over real HTTP, on Azurite and the emulator:
with and without a key, unknown and bad names, a hostile name encoded in the URL."""

from __future__ import annotations

import http.client
import json
from urllib.parse import quote, urlsplit

import pytest

from local.host.http_server import LocalHttpServer, local_key, local_port
from shared.flows.import_api import show_json
from shared.flows.runtime import current_pipeline
from tests.helpers import run_host_until_final, upload

KEY = "test-function-key-0123456789"


@pytest.fixture
def api(host):
    server = LocalHttpServer(host.http_functions, KEY, port=0).start()
    yield host, server
    server.stop()


def get(server: LocalHttpServer, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict | list]:
    """GET a raw path (sent as written: no client-side normalisation of `..`)."""
    parts = urlsplit(server.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read().decode("utf-8")
        return response.status, response.getheader("Content-Type") or "", json.loads(body)
    finally:
        connection.close()


def with_key(path: str) -> str:
    return path + ("&" if "?" in path else "?") + f"code={KEY}"


HOSTILE = "DEMO001/\"quoted' <script>alert(1)</script>.txt"


def test_the_api_answers_the_clis_json_with_a_key_and_401_without(api, fec_bytes):
    host, server = api
    pipeline = current_pipeline()
    upload(pipeline, "DEMO001/123456789FEC20241231.txt", fec_bytes)
    run_host_until_final(host, count=1)
    path = "/api/imports/DEMO001/123456789FEC20241231.txt"
    status, content_type, body = get(server, path, {"x-functions-key": KEY})
    assert (status, content_type) == (200, "application/json; charset=utf-8")
    assert body == show_json(pipeline, "DEMO001/123456789FEC20241231.txt")
    assert body["state"] == "completed"
    assert "next_poll_at" not in body  # nothing is due on a finished import
    assert get(server, with_key(path))[0] == 200
    for headers, said in (({}, "a function key is required"), ({"x-functions-key": "wrong"}, "the function key is wrong")):
        status, _, error = get(server, path, headers)
        assert status == 401
        assert error["error"].startswith(said)
    assert get(server, path + "?code=wrong")[2]["error"].startswith("the function key is wrong")
    status, _, listed = get(server, with_key("/api/imports?state=completed"))
    assert status == 200
    assert [item["blob_name"] for item in listed["value"]] == ["DEMO001/123456789FEC20241231.txt"]
    assert "nextLink" not in listed
    assert "next_poll_at" not in listed["value"][0]
    assert get(server, "/api/imports?state=completed")[0] == 401


def test_unknown_and_bad_names_are_404_json_never_a_traceback(api):
    _, server = api
    for path in ("/api/imports/DEMO001/nothing.txt", "/api/imports/DEMO001/../etc/passwd",
                 "/api/imports/%2E%2E/%2E%2E/x", "/api/imports/a%5Cb", "/api/imports/x%00y", "/api/imports/"):
        status, content_type, body = get(server, with_key(path))
        assert (status, content_type) == (404, "application/json; charset=utf-8"), path
        assert set(body) == {"error", "status"}
        assert "Traceback" not in body["error"]
    assert get(server, with_key("/api/imports?state=bogus"))[0] == 400
    assert get(server, with_key("/api/imports?limit=0"))[0] == 400
    assert get(server, with_key("/api/nothing"))[0] == 404


def test_a_hostile_name_is_found_when_encoded_in_the_url(api, fec_bytes):
    host, server = api
    upload(current_pipeline(), HOSTILE, fec_bytes)
    run_host_until_final(host, count=1)
    status, _, body = get(server, with_key("/api/imports/" + quote(HOSTILE, safe="/")))
    assert status == 200
    assert body["blob_name"] == HOSTILE


# Names that look like `name=value` secrets: a name is not a secret, it is how the dropper knows the file.
SECRET_LOOKING_NAMES = ("DEMO001/export code=1.txt", "DEMO001/a token=x.txt", "DEMO001/b;sig=y.txt",
                        "DEMO001/password=1234.txt")


def test_names_that_look_like_secrets_are_shown_as_they_are(api, fec_bytes):
    host, server = api
    pipeline = current_pipeline()
    for extra, name in enumerate(SECRET_LOOKING_NAMES):
        upload(pipeline, name, fec_bytes + b"\r\n" * extra)
    run_host_until_final(host, count=len(SECRET_LOOKING_NAMES))
    for name in SECRET_LOOKING_NAMES:
        status, _, body = get(server, with_key("/api/imports/" + quote(name, safe="/")))
        assert status == 200
        assert (body["blob_name"], body["blob"]) == (name, f"{pipeline.settings.container}/{name}")
        assert "REDACTED" not in json.dumps(body)
    status, _, listed = get(server, with_key("/api/imports"))
    assert status == 200
    assert sorted(item["blob_name"] for item in listed["value"]) == sorted(SECRET_LOOKING_NAMES)
    assert "REDACTED" not in json.dumps(listed)


def test_the_key_and_port_come_from_settings_or_are_generated():
    assert local_key({"LOCAL_HTTP_FUNCTION_KEY": "given"}) == ("given", False)
    generated, was_generated = local_key({})
    assert was_generated
    assert len(generated) >= 32
    assert local_port({}) == 7071
    assert local_port({"LOCAL_HTTP_PORT": "0"}) == 0
    with pytest.raises(ValueError, match="LOCAL_HTTP_PORT"):
        local_port({"LOCAL_HTTP_PORT": "http"})


def test_make_run_prints_the_port_and_the_key_it_serves_with(capsys):
    from types import SimpleNamespace  # noqa: PLC0415

    from local.run import start_http  # noqa: PLC0415

    server = start_http(SimpleNamespace(http_functions=[]), {"LOCAL_HTTP_PORT": "0", "LOCAL_HTTP_FUNCTION_KEY": KEY})
    try:
        out = capsys.readouterr().out
        port = server.server.server_address[1]
        assert f"HTTP functions on http://127.0.0.1:{port}/api/ (port {port})" in out
        assert f"function key (from LOCAL_HTTP_FUNCTION_KEY): {KEY}" in out
    finally:
        server.stop()


@pytest.mark.parametrize("length", ["abc", "-5", str(2 * 1024 * 1024)])
def test_a_bad_content_length_is_a_400_json_and_the_connection_closes(api, length):
    _, server = api
    status, content_type, body = get(server, with_key("/api/imports"), headers={"Content-Length": length})
    assert status == 400
    assert content_type.startswith("application/json")
    assert "Content-Length" in body["error"]


def test_a_body_sent_with_a_refused_request_does_not_become_the_next_request(api):
    """Keep-alive: the body of a 401 is read, so the next request on the connection is answered."""
    _, server = api
    parts = urlsplit(server.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", "/api/imports", body=b"GET /api/imports?code=x HTTP/1.1\r\n\r\n")
        first = connection.getresponse()
        first.read()
        connection.request("GET", with_key("/api/imports"))
        second = connection.getresponse()
        assert (first.status, second.status) == (401, 200)
        assert json.loads(second.read()) == {"value": []}
    finally:
        connection.close()


def test_a_duplicates_error_keeps_the_names_it_quotes(api, fec_bytes):
    """A duplicate's reason names its own file and the earlier import's: names, never redacted, in
    the API's JSON, the report's JSON and the history, while a secret in it would still go."""
    from shared.flows.verdict_reports import report_blob_names  # noqa: PLC0415

    host, server = api
    pipeline = current_pipeline()
    first, copy = "DEMO001/export code=1.txt", "DEMO001/copy sig=2.txt"
    upload(pipeline, first, fec_bytes)
    run_host_until_final(host, count=1)
    upload(pipeline, copy, fec_bytes)
    records = run_host_until_final(host, count=2)
    assert str(records[copy].state) == "duplicate"
    said = f"same content as {pipeline.settings.container}/{first} (request id {records[first].request_id});"
    status, _, body = get(server, with_key("/api/imports/" + quote(copy, safe="/")))
    assert status == 200
    assert body["error"].startswith(said), body["error"]
    assert body["history"][-1]["note"].startswith(said)
    json_name, _ = report_blob_names(copy)
    report = json.loads(pipeline.verdict_reports.container.get_blob_client(json_name).download_blob().readall())
    assert report["error"].startswith(said), report["error"]
