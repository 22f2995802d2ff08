"""getFileUrlDeposit and importFEC by URI in the Loop client: every failure one of its errors (a body
cut mid-read included), answers read tolerantly, and the plain-HTTP upload path against a real
server. The emulator process over HTTP; nothing mocked."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from shared.flows.deposit import DepositError, HashingReader, is_azure_blob_sas, upload
from shared.loop.client import (
    LoopAuthError,
    LoopClient,
    LoopRejectedError,
    LoopUnavailableError,
    build_retry,
    parse_deposit_answer,
)
from tests import deposit_fixtures
from tests.fixtures_loop import TEST_LOOP_API_KEY, TEST_LOOP_SUBSCRIPTION_KEY
from tests.helpers import unique_name
from tests.test_loop_client import _StallingBody

deposit_emulator = deposit_fixtures.deposit_emulator
loop_emulator = deposit_fixtures.loop_emulator


@pytest.fixture
def client(loop_emulator) -> Iterator[LoopClient]:
    loop = LoopClient(loop_emulator.base_url, TEST_LOOP_API_KEY, TEST_LOOP_SUBSCRIPTION_KEY, connect_timeout=1,
                      read_timeout=1, retry=build_retry(1, backoff_factor=0.01))
    yield loop
    loop.close()


@pytest.mark.parametrize(
    ("fault", "error", "fragment"),
    [
        ({"kind": "http", "status": 503, "retry_after": 0, "times": 2}, LoopUnavailableError, "busy"),
        ({"kind": "http", "status": 502}, LoopUnavailableError, "HTTP 502"),
        ({"kind": "reset"}, LoopUnavailableError, "getFileUrlDeposit failed"),
        ({"kind": "hang", "seconds": 2}, LoopUnavailableError, "getFileUrlDeposit failed"),
        ({"kind": "http", "status": 403}, LoopAuthError, "fault"),
        ({"kind": "http", "status": 400, "body": {"message": "filename invalide"}}, LoopRejectedError,
         "filename invalide"),
        ({"kind": "error_body", "message": "Dossier inconnu"}, LoopRejectedError, "Dossier inconnu"),
        ({"kind": "large_body", "bytes": 200_000}, LoopRejectedError, "unreadable"),
    ],
)
def test_every_failure_of_the_deposit_call_is_one_of_the_clients_errors(client, loop_emulator, fault, error,
                                                                        fragment):
    loop_emulator.set_faults({"getFileUrlDeposit": [fault]})
    with pytest.raises(error, match=fragment):
        client.get_file_url_deposit("a.txt")


def test_a_body_cut_while_reading_the_deposit_answer_is_unavailable():
    server = _StallingBody()
    loop = LoopClient(f"http://127.0.0.1:{server.port}", TEST_LOOP_API_KEY, TEST_LOOP_SUBSCRIPTION_KEY,
                      connect_timeout=1, read_timeout=0.5, retry=build_retry(0))
    try:
        with pytest.raises(LoopUnavailableError, match="while reading Loop's answer to getFileUrlDeposit"):
            loop.get_file_url_deposit("a.txt")
    finally:
        loop.close()
        server.close()


def test_the_emulators_answer_is_a_write_only_sas_and_a_uri(client, loop_emulator):
    target = client.get_file_url_deposit("123456789FEC20241231.txt")
    assert is_azure_blob_sas(target.upload_url)
    assert "sp=cw" in target.upload_url
    assert target.uri.startswith("loop-deposit:")
    assert "sig=" not in repr(target)
    (call,) = [r for r in loop_emulator.requests() if r["path"] == "/getFileUrlDeposit"]
    assert call["query"] == {"filename": "123456789FEC20241231.txt"}


@pytest.mark.parametrize(
    ("body", "upload_url", "uri"),
    [
        ({"depositUrl": "https://d.example/f?sig=s1", "uri": "cegid://f"}, "https://d.example/f?sig=s1", "cegid://f"),
        ({"DepositURL": "https://d.example/f?sig=s1"}, "https://d.example/f?sig=s1", "https://d.example/f"),
        ({"uri": "https://d.example/f?sig=s1"}, "https://d.example/f?sig=s1", "https://d.example/f?sig=s1"),
        ({"data": {"depositUrl": "https://d.example/f?x=1", "URI": "u1"}}, "https://d.example/f?x=1", "u1"),
        ("https://d.example/f?sig=s1", "https://d.example/f?sig=s1", "https://d.example/f"),
    ],
    ids=["both", "url-any-case", "uri-only", "wrapped", "bare"],
)
def test_deposit_answers_are_read_tolerantly(body, upload_url, uri):
    target = parse_deposit_answer(body)
    assert (target.upload_url, target.uri) == (upload_url, uri)
    assert "s1" not in target.shown_uri


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"uri": "cegid://f"}, "no deposit URL (fields: uri)"),
        ({}, "no deposit URL (fields: none)"),
        ({"error": {"message": "Service indisponible"}}, "Service indisponible"),
        (None, "a JSON NoneType"),
        ("pas une URL", "text, not a deposit URL"),
    ],
)
def test_an_answer_without_a_usable_url_is_a_rejection_naming_what_came(body, fragment):
    with pytest.raises(LoopRejectedError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_deposit_answer(body)


def test_import_takes_exactly_one_of_url_and_uri(client, loop_emulator):
    for arguments in ({}, {"file_url": "https://x/y", "uri": "u"}):
        with pytest.raises(ValueError, match="exactly one"):
            client.import_fec("DEMO001", **arguments)
    assert [r for r in loop_emulator.requests() if r["path"] == "/importFEC"] == []


class _PutRecorder(BaseHTTPRequestHandler):
    """A real HTTP server taking PUTs: records the headers and the body's hash and size."""

    received: ClassVar[list[dict]] = []
    status = 201

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_PUT(self) -> None:
        digest, size, left = hashlib.sha256(), 0, int(self.headers.get("Content-Length") or 0)
        while left:
            data = self.rfile.read(min(left, 65536))
            digest.update(data)
            size += len(data)
            left -= len(data)
        self.received.append({"headers": dict(self.headers), "size": size, "sha256": digest.hexdigest()})
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def put_server() -> Iterator[ThreadingHTTPServer]:
    _PutRecorder.received, _PutRecorder.status = [], 201
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PutRecorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _snapshot_reader(blob_service, data: bytes, chunk: int) -> HashingReader:
    container = blob_service.get_container_client(unique_name("put"))
    container.create_container()
    blob = container.get_blob_client("f.txt")
    blob.upload_blob(data, overwrite=True)
    return HashingReader(blob.download_blob(max_concurrency=1), chunk)


def test_a_deposit_url_that_is_not_azure_gets_one_streamed_put_with_its_length(blob_service, put_server):
    data = bytes(range(256)) * 1000  # 256,000 bytes, 4 chunks of 64 KiB
    reader = _snapshot_reader(blob_service, data, 64 * 1024)
    url = f"http://127.0.0.1:{put_server.server_port}/deposit/f.txt?X-Amz-Signature=abc123"
    upload(url, reader, len(data), 64 * 1024, (2, 5))
    (put,) = _PutRecorder.received
    assert (put["size"], put["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert put["headers"]["Content-Length"] == str(len(data))
    assert "Transfer-Encoding" not in put["headers"]
    assert "x-apikey" not in {name.lower() for name in put["headers"]}
    assert reader.sha256 == hashlib.sha256(data).hexdigest()


def test_a_refused_plain_put_is_a_deposit_error_without_the_url(blob_service, put_server):
    _PutRecorder.status = 403
    reader = _snapshot_reader(blob_service, b"x" * 1000, 64 * 1024)
    url = f"http://127.0.0.1:{put_server.server_port}/deposit/f.txt?X-Amz-Signature=abc123"
    with pytest.raises(DepositError) as refused:
        upload(url, reader, 1000, 64 * 1024, (2, 5))
    assert str(refused.value) == "upload to the deposit URL failed: HTTP 403"
