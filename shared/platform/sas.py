"""Read-only SAS URLs for exactly one blob snapshot, valid long enough for Loop (>= 24 h)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.storage.blob import BlobSasPermissions, BlobServiceClient, UserDelegationKey, generate_blob_sas

from shared.platform.clock import utcnow
from shared.platform.redaction import register_secret

CLOCK_SKEW = timedelta(minutes=15)


@dataclass(frozen=True)
class SignedUrl:
    url: str
    expires_at: datetime

    def __repr__(self) -> str:  # the URL carries a signature: never in a repr
        return f"SignedUrl(expires_at={self.expires_at.isoformat()})"


class SasSigner:
    """Signs with the account key where the client has one (Azurite), else a user delegation key.

    On Azure the app has no account key (managed identity); the user delegation key is fetched
    once and reused while it covers the SAS lifetime, since each fetch is a network call.
    """

    def __init__(
        self, service: BlobServiceClient, ttl_hours: int, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.service = service
        self.ttl = timedelta(hours=ttl_hours)
        self.clock = clock
        self._delegation_key: UserDelegationKey | None = None
        self._delegation_expiry: datetime | None = None
        self._lock = threading.Lock()
        register_secret(self.account_key)

    @property
    def account_key(self) -> str | None:
        return getattr(self.service.credential, "account_key", None)

    def _user_delegation_key(self, start: datetime, expiry: datetime) -> UserDelegationKey:
        with self._lock:
            stale = self._delegation_expiry is None or self._delegation_expiry < expiry
            if self._delegation_key is None or stale:
                key_expiry = start + timedelta(days=7) - timedelta(minutes=1)
                self._delegation_key = self.service.get_user_delegation_key(start, key_expiry)
                self._delegation_expiry = key_expiry
            return self._delegation_key

    def sign(self, container: str, blob_name: str, snapshot: str | None = None) -> SignedUrl:
        now = self.clock()
        start, expiry = now - CLOCK_SKEW, now + self.ttl
        https = self.service.url.lower().startswith("https://")
        credential: dict[str, object]
        if self.account_key:
            credential = {"account_key": self.account_key}
        else:
            credential = {"user_delegation_key": self._user_delegation_key(start, expiry)}
        token = generate_blob_sas(
            account_name=self.service.account_name,
            container_name=container,
            blob_name=blob_name,
            snapshot=snapshot,
            permission=BlobSasPermissions(read=True),
            start=start,
            expiry=expiry,
            protocol="https" if https else None,
            **credential,
        )
        blob_url = self.service.get_blob_client(container, blob_name, snapshot=snapshot).url
        separator = "&" if "?" in blob_url else "?"
        return SignedUrl(f"{blob_url}{separator}{token}", expiry)

