"""The Loop client against the emulator process over real HTTP, fault by fault."""

from __future__ import annotations

import time

import pytest

from local.azurite import free_port
from shared.loop.client import (
    LoopAuthError,
    LoopBadResponseError,
    LoopClient,
    LoopOutcomeUnknownError,
    LoopRejectedError,
    LoopUnavailableError,
    build_retry,
)
from tests.fixtures_loop import TEST_LOOP_API_KEY, TEST_LOOP_SUBSCRIPTION_KEY

URL = "https://acct.blob.core.windows.net/c/file.txt?sp=r&sig=SIGNATURE-SECRET"


@pytest.fixture
def client(loop_emulator):
    loop = LoopClient(
        loop_emulator.base_url, TEST_LOOP_API_KEY, TEST_LOOP_SUBSCRIPTION_KEY,
        connect_timeout=2, read_timeout=1.5, retry=build_retry(2, backoff_factor=0.05),
    )
    yield loop
    loop.close()


def import_posts(emulator):
    return [r for r in emulator.requests() if r["path"] == "/importFEC"]


def test_import_sends_both_headers_and_the_documented_body(client, loop_emulator):
    request_id = client.import_fec("DEMO001", URL)
    (posted,) = import_posts(loop_emulator)
    assert posted["auth"] == "ok"
    assert posted["body"] == {"codeIbs": "DEMO001", "URI": "", "URL": URL.replace("SIGNATURE-SECRET", "REDACTED")}
    assert [i["id"] for i in loop_emulator.imports()] == [request_id]


def test_status_on_both_paths(client, loop_emulator):
    request_id = client.import_fec("DEMO001", URL)
    assert client.get_import_status(request_id).status in (1, 2, 4)
    client.status_path = "/importStatus"
    status = client.get_import_status(request_id)
    assert status.code_ibs == "DEMO001"
    assert status.request_id == request_id


def test_error_body_is_a_rejection_with_loops_message(client):
    with pytest.raises(LoopRejectedError, match="Le dossier NOPE n'existe pas"):
        client.import_fec("NOPE", URL)


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_distinct(client, loop_emulator, status):
    loop_emulator.set_faults({"importFEC": [{"kind": "http", "status": status, "body": {"message": "denied"}}]})
    with pytest.raises(LoopAuthError):
        client.import_fec("DEMO001", URL)


def test_wrong_keys_are_refused_by_loop(loop_emulator):
    loop = LoopClient(loop_emulator.base_url, "wrong:key", "wrong", retry=build_retry(0))
    with pytest.raises(LoopAuthError, match="invalid subscription key"):
        loop.import_fec("DEMO001", URL)
    assert import_posts(loop_emulator)[0]["auth"] == "invalid"


def test_400_is_a_rejection(client, loop_emulator):
    loop_emulator.set_faults({"importFEC": [{"kind": "http", "status": 400, "body": {"error": {"message": "bad"}}}]})
    with pytest.raises(LoopRejectedError, match="bad"):
        client.import_fec("DEMO001", URL)


@pytest.mark.parametrize("status", [429, 503])
def test_busy_answers_are_retried_honouring_retry_after(client, loop_emulator, status):
    loop_emulator.set_faults({"importFEC": [{"kind": "http", "status": status, "retry_after": 1, "times": 2}]})
    started = time.monotonic()
    request_id = client.import_fec("DEMO001", URL)
    assert time.monotonic() - started >= 2.0
    assert len(import_posts(loop_emulator)) == 3
    assert [i["id"] for i in loop_emulator.imports()] == [request_id]


def test_busy_until_retries_run_out_is_unavailable(client, loop_emulator):
    loop_emulator.set_faults({"importFEC": [{"kind": "http", "status": 503, "retry_after": 0, "times": 5}]})
    with pytest.raises(LoopUnavailableError, match="503"):
        client.import_fec("DEMO001", URL)
    assert len(import_posts(loop_emulator)) == 3
    assert loop_emulator.imports() == []


def test_connection_refused_is_retried_then_unavailable():
    loop = LoopClient(f"http://127.0.0.1:{free_port()}", "k:s", "s", retry=build_retry(2, backoff_factor=0.01))
    with pytest.raises(LoopUnavailableError, match="unreachable"):
        loop.import_fec("DEMO001", URL)


def test_dns_failure_is_unavailable():
    loop = LoopClient("http://loop.invalid", "k:s", "s", retry=build_retry(1, backoff_factor=0.01))
    with pytest.raises(LoopUnavailableError):
        loop.import_fec("DEMO001", URL)


@pytest.mark.parametrize(
    ("fault", "created"),
    [
        ({"kind": "hang", "seconds": 3}, True),
        ({"kind": "reset"}, True),
        ({"kind": "http", "status": 500}, False),
        ({"kind": "http", "status": 502}, False),
        ({"kind": "raw", "status": 200, "text": "<html>gateway</html>"}, False),
        ({"kind": "json", "status": 200, "body": {"accountingImportRequestId": "not a uuid; drop table"}}, False),
        ({"kind": "large_body", "bytes": 10 * 1024 * 1024}, False),
    ],
)
def test_maybe_processed_is_unknown_and_never_retried(client, loop_emulator, fault, created):
    loop_emulator.set_faults({"importFEC": [fault]})
    with pytest.raises(LoopOutcomeUnknownError):
        client.import_fec("DEMO001", URL)
    assert len(import_posts(loop_emulator)) == 1
    assert len(loop_emulator.imports()) == (1 if created else 0)


def test_200_without_request_id_is_a_failure(client, loop_emulator):
    loop_emulator.set_faults({"importFEC": [{"kind": "json", "status": 200, "body": {}}]})
    with pytest.raises(LoopRejectedError, match="without accountingImportRequestId"):
        client.import_fec("DEMO001", URL)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"kind": "json", "status": 200, "body": {"status": 0}}, LoopBadResponseError),
        ({"kind": "json", "status": 200, "body": {"status": 9}}, LoopBadResponseError),
        ({"kind": "json", "status": 200, "body": {"status": "3"}}, None),
        ({"kind": "raw", "status": 200, "text": "{not json"}, LoopBadResponseError),
        ({"kind": "http", "status": 500}, LoopUnavailableError),
        ({"kind": "hang", "seconds": 3}, LoopUnavailableError),
    ],
)
def test_status_nonsense_is_an_error_for_that_call(client, loop_emulator, fault, error):
    request_id = client.import_fec("DEMO001", URL)
    loop_emulator.set_faults({"status": [fault]})
    if error is None:
        assert client.get_import_status(request_id).status == 3
    else:
        with pytest.raises(error):
            client.get_import_status(request_id)


@pytest.mark.parametrize("value", [3.7, 2.9, 3.0, "3.0", " 3", "03", True, 0, 5, -1, None, [3], {"code": 3}])
def test_only_the_integers_1_to_4_and_their_strings_are_statuses(client, loop_emulator, value):
    """`int()` read 3.7 as 3 (completed) and 2.9 as 2: a status is 1-4 as an integer or its string."""
    request_id = client.import_fec("DEMO001", URL)
    loop_emulator.set_faults({"status": [{"kind": "json", "status": 200, "body": {"status": value}}]})
    with pytest.raises(LoopBadResponseError, match="expected an integer 1 to 4"):
        client.get_import_status(request_id)


@pytest.mark.parametrize(("value", "code"), [(1, 1), (2, 2), (3, 3), (4, 4), ("1", 1), ("4", 4)])
def test_each_status_is_read_in_both_forms(client, loop_emulator, value, code):
    request_id = client.import_fec("DEMO001", URL)
    loop_emulator.set_faults({"status": [{"kind": "json", "status": 200, "body": {"status": value}}]})
    assert client.get_import_status(request_id).status == code


def test_unknown_request_id(client):
    with pytest.raises(LoopBadResponseError):
        client.get_import_status("00000000-0000-0000-0000-000000000000")


def test_errors_and_repr_never_carry_keys_or_sig(client, loop_emulator):
    loop_emulator.set_faults({"importFEC": [{"kind": "reset"}]})
    with pytest.raises(LoopOutcomeUnknownError) as caught:
        client.import_fec("DEMO001", URL)
    text = f"{caught.value!r} {caught.value} {client!r}"
    for secret in ("SIGNATURE-SECRET", TEST_LOOP_API_KEY, TEST_LOOP_SUBSCRIPTION_KEY):
        assert secret not in text


class _StallingBody:
    """A real HTTP server that sends its headers and part of a body, then stops sending."""

    def __init__(self) -> None:
        import socket  # noqa: PLC0415
        import threading  # noqa: PLC0415

        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                                   b'{"accountingImportRequestId": "')
                self.stop.wait(5)

    def close(self) -> None:
        self.stop.set()
        self.server.close()


@pytest.mark.parametrize("call", ["import", "status"])
def test_a_timeout_while_reading_the_body_is_one_of_the_clients_errors(call):
    server = _StallingBody()
    loop = LoopClient(f"http://127.0.0.1:{server.port}", TEST_LOOP_API_KEY, TEST_LOOP_SUBSCRIPTION_KEY,
                      connect_timeout=1, read_timeout=0.5, retry=build_retry(0))
    try:
        if call == "import":
            with pytest.raises(LoopOutcomeUnknownError, match="while reading Loop's answer"):
                loop.import_fec("DEMO001", URL)
        else:
            with pytest.raises(LoopUnavailableError, match="while reading the status answer"):
                loop.get_import_status("11111111-2222-3333-4444-555555555555")
    finally:
        loop.close()
        server.close()


def test_loop_error_messages_never_carry_the_keys_or_a_signature(client, loop_emulator):
    quoted = f"cannot read {URL}; x-apikey: {TEST_LOOP_API_KEY}; Ocp-Apim-Subscription-Key={TEST_LOOP_SUBSCRIPTION_KEY}"
    loop_emulator.set_faults({"importFEC": [{"kind": "error_body", "message": quoted}]})
    with pytest.raises(LoopRejectedError) as refused:
        client.import_fec("DEMO001", URL)
    text = f"{refused.value} {refused.value.message} {refused.value!r}"
    for secret in ("SIGNATURE-SECRET", TEST_LOOP_API_KEY, TEST_LOOP_API_KEY.split(":")[1], TEST_LOOP_SUBSCRIPTION_KEY):
        assert secret not in text
    assert "cannot read https://acct.blob.core.windows.net/c/file.txt?sp=r&sig=REDACTED" in text
