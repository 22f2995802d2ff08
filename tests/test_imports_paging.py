"""The paged read side (shared.flows.import_listing, GET /api/imports, `imports list`) and the lookups
by request id, on Azurite: order across pages while imports are written, every filter, request
counts that do not grow with the ledger, bad input and forged tokens answered 400."""

from __future__ import annotations

import base64
import json
import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from local.request_counting import RequestCounter, counted_pipeline, counting_scope
from shared.flows.import_api import get_import, list_imports, show_json
from shared.flows.import_listing import ListQuery, PageTokenError, list_page, make_token
from shared.flows.operator_actions import find_import, resolve, resubmit
from shared.flows.submit import submit_blob
from shared.ledger import states
from shared.ledger.record import ImportRecord
from shared.loop.client import LoopOutcomeUnknownError
from shared.platform.settings import load_settings
from tests.helpers import MovableClock, upload

BASE = "https://app.example/api/imports"


def seed(pipeline, count: int, *, prefix: str = "s", code: str = "DEMO001", every: int = 3) -> list[ImportRecord]:
    """`count` claimed imports one second apart, newest last; one in `every` rejected."""
    records = []
    for n in range(count):
        pipeline.clock.advance(timedelta(seconds=1))
        claimed = ImportRecord(pipeline.settings.container, f"{code}/{prefix}{n}.txt", f"0x{n:08X}", code_ibs=code,
                               next_poll_at=pipeline.clock() + timedelta(minutes=5))
        record, _ = pipeline.ledger.claim(claimed)
        if n % every == 0:
            record = pipeline.ledger.finish(record, states.REJECT, "empty file (0 bytes)")
        records.append(record)
    return records


def pages(pipeline, query: ListQuery, limit: int, between=None) -> list[list[str]]:
    """Every page's blob names, following the tokens; `between()` runs before each next page."""
    names, token = [], None
    while True:
        page = list_page(pipeline, query, limit, token)
        names.append([record.blob_name for record in page.records])
        token = page.next_token
        if token is None:
            return names
        if between is not None:
            between()


def test_pages_come_newest_first_without_repeats_or_gaps_while_imports_are_written(pipeline):
    seeded = seed(pipeline, 23)
    written = []

    def more() -> None:  # new imports, and state changes of listed ones, between pages
        written.extend(seed(pipeline, 2, prefix=f"new{len(written)}-"))
        listed = pipeline.ledger.get(*seeded[len(written)].keys)
        if listed.state == states.RECEIVED:
            pipeline.ledger.finish(listed, states.CANCEL, "cancelled by an operator")

    got = pages(pipeline, ListQuery(), 5, more)
    flat = [name for page in got for name in page]
    assert flat == [record.blob_name for record in reversed(seeded)]  # all of them, newest first, once
    assert [len(page) for page in got] == [5, 5, 5, 5, 3]
    assert written  # imports were written meanwhile: newer than the first page, so on none of them


def test_concurrent_writers_never_cause_a_repeat_or_a_gap(pipeline):
    seeded = seed(pipeline, 40, every=1000)
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            claimed = ImportRecord(pipeline.settings.container, f"DEMO001/live{n}.txt", f"0x{n:08X}",
                                   code_ibs="DEMO001")
            pipeline.ledger.claim(claimed)
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        flat = [name for page in pages(pipeline, ListQuery(until=seeded[-1].received_at + timedelta(microseconds=1)),
                                         7) for name in page]
    finally:
        stop.set()
        thread.join()
    assert flat == [record.blob_name for record in reversed(seeded)]


def test_every_filter_and_their_combination(pipeline):
    first = seed(pipeline, 9, code="DEMO001")
    second = seed(pipeline, 6, code="DEMO002", prefix="t")
    everything = [*first, *second]

    def names(**filters) -> set[str]:
        return {name for page in pages(pipeline, ListQuery(**filters), 4) for name in page}

    def expected(keep) -> set[str]:
        return {record.blob_name for record in everything if keep(record)}

    assert names() == expected(lambda r: True)
    assert names(state=states.REJECTED) == expected(lambda r: r.state == states.REJECTED)
    assert names(state=states.RECEIVED) == expected(lambda r: r.state == states.RECEIVED)
    assert names(code_ibs="DEMO002") == expected(lambda r: r.code_ibs == "DEMO002")
    assert names(code_ibs="DEMO002", state=states.REJECTED) == expected(
        lambda r: r.code_ibs == "DEMO002" and r.state == states.REJECTED)
    since, until = first[4].received_at, second[2].received_at
    assert names(since=since) == expected(lambda r: r.received_at >= since)
    assert names(until=until) == expected(lambda r: r.received_at < until)
    assert names(since=since, until=until, code_ibs="DEMO001") == expected(
        lambda r: since <= r.received_at < until and r.code_ibs == "DEMO001")
    assert names(state=states.COMPLETED) == set()


def test_an_import_being_posted_is_listed_as_submitting(pipeline, loop_emulator, fec_bytes, monkeypatch):
    seen = {}

    def answer_later(*_args, **_kwargs):
        seen["submitting"] = [r.blob_name for r in list_page(pipeline, ListQuery(state=states.SUBMITTING)).records]
        seen["received"] = [r.blob_name for r in list_page(pipeline, ListQuery(state=states.RECEIVED)).records]
        raise LoopOutcomeUnknownError("no answer")

    monkeypatch.setattr(pipeline.loop, "import_fec", answer_later)
    submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    assert seen == {"submitting": ["DEMO001/a.txt"], "received": []}
    assert [r.blob_name for r in list_page(pipeline, ListQuery(state=states.UNKNOWN)).records] == ["DEMO001/a.txt"]


@pytest.fixture
def counted(pipeline_env):
    counter = RequestCounter()
    built = counted_pipeline(load_settings(pipeline_env), counter, clock=MovableClock())
    built.ensure_resources()
    return built, counter


def requests_of(counter: RequestCounter, action) -> int:
    counter.reset()
    with counting_scope("read"):
        action()
    return counter.total("read", "table")


@pytest.mark.parametrize("size", [50, 500])
def test_a_page_and_a_lookup_cost_the_same_requests_at_any_ledger_size(counted, size):
    pipeline, counter = counted
    seeded = seed(pipeline, size, every=2)
    with_id = pipeline.ledger.get(*seeded[0].keys)  # rejected: a final one, given a request id by an operator
    with_id.request_id = "0A1B2C3D-0000-4000-8000-00000000ABCD".lower()
    pipeline.ledger.listing.write(with_id)
    limit = 20
    first = list_page(pipeline, ListQuery(), limit)
    assert requests_of(counter, lambda: list_page(pipeline, ListQuery(), limit)) == 1 + limit
    assert requests_of(counter, lambda: list_page(pipeline, ListQuery(), limit, first.next_token)) == 1 + limit
    rejected = ListQuery(state=states.REJECTED, code_ibs="DEMO001")
    assert requests_of(counter, lambda: list_page(pipeline, rejected, limit)) == 1 + limit
    assert requests_of(counter, lambda: find_import(pipeline, seeded[-1].blob_name)) == 1
    assert requests_of(counter, lambda: find_import(pipeline, "0A1B2C3D-0000-4000-8000-00000000ABCD")) <= 3
    assert find_import(pipeline, "0a1b2c3d-0000-4000-8000-00000000abcd").keys == seeded[0].keys


def test_bad_limits_filters_and_tokens_are_400_json(pipeline):
    seed(pipeline, 5, code="DEMO001")
    seed(pipeline, 5, code="DEMO002", prefix="t")
    first = list_imports(pipeline, {"codeIbs": "DEMO001", "limit": "2"}, BASE)
    assert first[0] == 200
    link = first[1]["nextLink"]
    assert link.startswith(BASE + "?")
    assert "code=" not in link
    token = parse_qs(urlsplit(link).query)["$skipToken"][0]
    second = list_imports(pipeline, {"codeIbs": "DEMO001", "limit": "2", "$skipToken": token}, BASE)
    assert second[0] == 200
    assert {item["code_ibs"] for item in second[1]["value"]} == {"DEMO001"}

    def forged(**changes) -> str:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        body.update(changes)
        return base64.urlsafe_b64encode(json.dumps(body).encode()).decode()

    bad = [
        {"limit": "0"}, {"limit": "1001"}, {"limit": "ten"}, {"limit": "-1"}, {"state": "bogus"},
        {"codeIbs": "../x"}, {"since": "yesterday"}, {"since": "2026-02-01", "until": "2026-01-01"},
        {"codeIbs": "DEMO001", "$skipToken": "not-a-token"},
        {"codeIbs": "DEMO002", "$skipToken": token},  # the other dossier's pages with this token: refused
        {"$skipToken": token},  # the filter dropped
        {"codeIbs": "DEMO001", "$skipToken": forged(v=0)},
        {"codeIbs": "DEMO001", "$skipToken": forged(q={"codeIbs": "DEMO002"})},
        {"codeIbs": "DEMO001", "$skipToken": forged(k="due|x")},
        {"codeIbs": "DEMO001", "$skipToken": forged(k="list|abcdefghijklmnop|p|r")},
        {"codeIbs": "DEMO001", "$skipToken": forged(i="yes")},
        {"codeIbs": "DEMO001", "$skipToken": base64.urlsafe_b64encode(b"[1,2]").decode()},
        {"requestId": "not a guid"}, {"requestId": "0a1b2c3d-0000-4000-8000-00000000abcd", "state": "pending"},
    ]
    for params in bad:
        status, body = list_imports(pipeline, params, BASE)
        assert status == 400, params
        assert set(body) == {"error", "status"}, params
        assert "Traceback" not in body["error"]
    pipeline.clock.advance(timedelta(hours=25))
    stale = list_imports(pipeline, {"codeIbs": "DEMO001", "limit": "2", "$skipToken": token}, BASE)
    assert stale[0] == 400
    assert "stale" in stale[1]["error"]
    with pytest.raises(PageTokenError):
        list_page(pipeline, ListQuery(code_ibs="DEMO001"), 2,
                  make_token("list|9999999999999999|p|r", True, ListQuery(code_ibs="DEMO002"), pipeline.clock()))


def test_the_last_page_has_no_next_link_and_an_empty_ledger_one_empty_page(pipeline):
    assert list_imports(pipeline, {}, BASE) == (200, {"value": []})
    seed(pipeline, 4)
    status, body = list_imports(pipeline, {"limit": "4"}, BASE)
    assert status == 200
    assert len(body["value"]) == 4
    assert "nextLink" not in body
    status, body = list_imports(pipeline, {"limit": "3"}, BASE)
    assert "nextLink" in body


def test_a_request_id_is_found_after_each_path_that_sets_one_in_any_case(pipeline, loop_emulator, fec_bytes,
                                                                          monkeypatch):
    sent = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))  # submit
    assert find_import(pipeline, sent.request_id.upper()).keys == sent.keys
    pipeline.ledger.finish(pipeline.ledger.get(*sent.keys), states.CANCEL, "cancelled by an operator")
    again = resubmit(pipeline, find_import(pipeline, "DEMO001/a.txt"))  # resubmit
    assert again.request_id != sent.request_id
    for request_id in (sent.request_id, again.request_id.upper()):
        assert find_import(pipeline, request_id).keys == sent.keys
    original = pipeline.loop.import_fec
    monkeypatch.setattr(pipeline.loop, "import_fec", lambda *a, **k: (_ for _ in ()).throw(
        LoopOutcomeUnknownError("no answer")))
    unknown = submit_blob(pipeline, upload(pipeline, "DEMO001/b.txt", fec_bytes.replace(b"Facture", b"Facture b")))
    assert unknown.state == states.UNKNOWN
    monkeypatch.setattr(pipeline.loop, "import_fec", original)
    resolved = resolve(pipeline, unknown, "DEADBEEF-0000-4000-8000-00000000CAFE")  # resolve
    assert resolved.request_id == "DEADBEEF-0000-4000-8000-00000000CAFE"  # as given: what Loop is asked about
    assert pipeline.ledger.listing.find_request("deadbeef-0000-4000-8000-00000000cafe") == unknown.keys
    assert find_import(pipeline, "DeadBeef-0000-4000-8000-00000000Cafe").keys == unknown.keys
    status, body = list_imports(pipeline, {"requestId": "DEADBEEF-0000-4000-8000-00000000CAFE"}, BASE)
    assert status == 200
    assert [item["blob_name"] for item in body["value"]] == ["DEMO001/b.txt"]
    assert get_import(pipeline, "DEADBEEF-0000-4000-8000-00000000CAFE")[1]["blob_name"] == "DEMO001/b.txt"


def test_a_blob_named_like_another_imports_request_id_resolves_to_the_blob(pipeline, loop_emulator, fec_bytes):
    sent = submit_blob(pipeline, upload(pipeline, "DEMO001/a.txt", fec_bytes))
    namesake = upload(pipeline, sent.request_id, fec_bytes.replace(b"Facture", b"Facture n"))
    submit_blob(pipeline, namesake)  # rejected: no dossier at the root
    status, body = get_import(pipeline, sent.request_id)
    assert status == 200
    assert body["blob_name"] == sent.request_id
    assert show_json(pipeline, sent.request_id)["blob_name"] == sent.request_id
    status, body = list_imports(pipeline, {"requestId": sent.request_id}, BASE)
    assert [item["blob_name"] for item in body["value"]] == ["DEMO001/a.txt"]
    assert list_imports(pipeline, {"requestId": "11111111-2222-4333-8444-555555555555"}, BASE) == (200, {"value": []})


def test_a_token_outside_its_querys_range_is_refused(pipeline):
    seeded = seed(pipeline, 3)
    query = ListQuery(code_ibs="DEMO001", since=seeded[1].received_at)
    for key in ("list|9999999999999998|p|r", "list|", "rid|x"):
        with pytest.raises(PageTokenError):
            list_page(pipeline, query, 2, make_token(key, False, query, pipeline.clock()))


def test_the_cli_pages_with_limit_all_and_next(pipeline, monkeypatch, pipeline_env, capsys):
    from shared.cli.main import main  # noqa: PLC0415

    for name, value in pipeline_env.items():
        monkeypatch.setenv(name, value)
    seeded = seed(pipeline, 7, every=2)
    newest_first = [record.blob_name for record in reversed(seeded)]

    def listed(*args: str) -> tuple[list[str], str]:
        assert main(["imports", "list", "--json", *args]) == 0
        out = capsys.readouterr()
        return [item["blob_name"] for item in json.loads(out.out)], out.err

    names, note = listed("--limit", "3")
    assert names == newest_first[:3]
    token = note.split("--next ", 1)[1].split()[0]
    assert listed("--limit", "3", "--next", token)[0] == newest_first[3:6]
    assert listed("--all") == (newest_first, "")
    assert listed("--all", "--status", "rejected")[0] == [r.blob_name for r in reversed(seeded) if r.state == "rejected"]
    assert main(["imports", "list", "--limit", "2", "--next", token, "--dossier", "DEMO002"]) == 1
    assert "other filters" in capsys.readouterr().err
    with_id = pipeline.ledger.get(*seeded[1].keys)
    with_id.request_id = "0a1b2c3d-0000-4000-8000-00000000abcd"
    pipeline.ledger.listing.write(with_id)
    assert main(["imports", "show", "--request-id", "0A1B2C3D-0000-4000-8000-00000000ABCD", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["blob_name"] == seeded[1].blob_name
    assert main(["imports", "show", "--request-id", "11111111-2222-4333-8444-555555555555"]) == 1


def test_reindex_lists_and_finds_the_imports_of_a_ledger_written_before_the_index(pipeline):
    seeded = seed(pipeline, 5, every=1000)
    with_id = pipeline.ledger.get(*seeded[2].keys)
    with_id.request_id = "0a1b2c3d-0000-4000-8000-00000000abcd"
    pipeline.ledger.store.replace(with_id)
    for row in pipeline.ledger.table.query_entities("PartitionKey eq 'due' and RowKey gt ':'"):
        pipeline.ledger.table.delete_entity(row["PartitionKey"], row["RowKey"])  # a ledger of before
    assert list_page(pipeline, ListQuery()).records == []
    assert pipeline.ledger.reindex() == 5
    assert [r.blob_name for r in list_page(pipeline, ListQuery()).records] == [r.blob_name for r in reversed(seeded)]
    assert find_import(pipeline, "0A1B2C3D-0000-4000-8000-00000000ABCD").keys == seeded[2].keys
