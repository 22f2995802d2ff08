"""SAS signing against a real Azurite, which checks signatures, permissions and expiry."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from azure.storage.blob import BlobServiceClient

from local.azurite import DEV_ACCOUNT_KEY
from shared.platform.sas import SasSigner
from tests.helpers import unique_name

NAMES = ["plain.txt", "DEMO001/dir/with space #1 %41 ?x+y é.txt", "x" * 1000]


@pytest.fixture
def container(blob_service):
    name = unique_name("sas")
    blob_service.create_container(name)
    return name


@pytest.mark.parametrize("blob_name", NAMES)
def test_signed_url_reads_exactly_the_snapshot(blob_service, container, blob_name):
    blob = blob_service.get_blob_client(container, blob_name)
    blob.upload_blob(b"version one", overwrite=True)
    snapshot = blob.create_snapshot()["snapshot"]
    blob.upload_blob(b"version two", overwrite=True)
    signed = SasSigner(blob_service, ttl_hours=24).sign(container, blob_name, snapshot=snapshot)
    response = requests.get(signed.url, timeout=10)
    assert response.status_code == 200
    assert response.content == b"version one"
    assert "sig=" not in repr(signed)


def test_signed_url_is_read_only_with_24h_and_15min_skew(blob_service, container):
    blob_service.get_blob_client(container, "a.txt").upload_blob(b"x")
    now = datetime.now(UTC).replace(microsecond=0)
    signed = SasSigner(blob_service, ttl_hours=24, clock=lambda: now).sign(container, "a.txt")
    query = parse_qs(urlsplit(signed.url).query)
    assert query["sp"] == ["r"]
    assert signed.expires_at == now + timedelta(hours=24)
    start = datetime.fromisoformat(query["st"][0].replace("Z", "+00:00"))
    assert now - start == timedelta(minutes=15)
    write = requests.put(signed.url, data=b"y", headers={"x-ms-blob-type": "BlockBlob"}, timeout=10)
    assert write.status_code == 403


def test_expired_and_tampered_signatures_are_refused(blob_service, container):
    blob_service.get_blob_client(container, "a.txt").upload_blob(b"x")
    past = datetime.now(UTC) - timedelta(days=2)
    expired = SasSigner(blob_service, ttl_hours=24, clock=lambda: past).sign(container, "a.txt")
    assert requests.get(expired.url, timeout=10).status_code == 403
    good = SasSigner(blob_service, ttl_hours=24).sign(container, "a.txt")
    tampered = good.url.replace("sig=", "sig=AAAA")
    assert requests.get(tampered, timeout=10).status_code == 403


def test_https_endpoints_get_https_only_signatures():
    service = BlobServiceClient(
        "https://acct.blob.core.windows.net",
        credential={"account_name": "acct", "account_key": DEV_ACCOUNT_KEY},
    )
    signed = SasSigner(service, ttl_hours=24).sign("c", "a.txt")
    assert parse_qs(urlsplit(signed.url).query)["spr"] == ["https"]


class _NoToken:
    """A credential that is never asked for a token: the delegation key call is replaced below."""

    def get_token(self, *scopes, **kwargs):
        raise AssertionError("no network call expected")


def test_without_an_account_key_it_signs_with_one_cached_user_delegation_key(monkeypatch):
    """Azure AD cannot run here: the key request is stubbed; the signing itself is the SDK's."""
    from azure.storage.blob import UserDelegationKey  # noqa: PLC0415

    service = BlobServiceClient("https://acct.blob.core.windows.net", credential=_NoToken())
    calls = []

    def fake_key(start, expiry, **kwargs):
        calls.append((start, expiry))
        key = UserDelegationKey()
        key.signed_oid, key.signed_tid = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
        key.signed_start, key.signed_expiry = "2026-01-01T00:00:00Z", "2026-01-08T00:00:00Z"
        key.signed_service, key.signed_version = "b", "2024-08-04"
        key.value = DEV_ACCOUNT_KEY
        return key

    monkeypatch.setattr(service, "get_user_delegation_key", fake_key)
    signer = SasSigner(service, ttl_hours=24)
    first = parse_qs(urlsplit(signer.sign("c", "a.txt").url).query)
    signer.sign("c", "b.txt")
    assert first["skoid"] == ["00000000-0000-0000-0000-00000000000a"]
    assert first["sp"] == ["r"]
    assert first["spr"] == ["https"]
    assert len(calls) == 1
    start, expiry = calls[0]
    assert expiry - start >= timedelta(hours=24)
