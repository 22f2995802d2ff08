"""A Cegid Loop public API emulator, faithful to docs/loop-api.md, with fault injection.

Run: `python -m local.loop_emulator [--host 127.0.0.1] [--port 7081]`.

Settings (environment):
- LOOP_EMULATOR_DOSSIERS: known codeIbs, comma-separated (default DEMO001,DEMO002)
- LOOP_EMULATOR_API_KEY: expected `x-apikey` (default local-dev-key:local-dev-secret)
- LOOP_EMULATOR_SUBSCRIPTION_KEY: expected `Ocp-Apim-Subscription-Key` (default local-dev-subscription)
- LOOP_EMULATOR_WAITING_SECONDS / LOOP_EMULATOR_PROCESSING_SECONDS: time in status 1 / 2 (1 / 2)
- LOOP_EMULATOR_FAULTS: JSON, the same as POST /_emulator/faults (below)
- LOOP_EMULATOR_LATENCY_MS: time every API call takes before it is answered (0), as a real Loop's
  latency for benchmarks; also the fault setting "latency_ms"
- LOOP_EMULATOR_DEPOSIT_STORAGE: connection string of the storage holding deposits (default
  UseDevelopmentStorage=true, the Azurite of `make run`); LOOP_EMULATOR_DEPOSIT_CONTAINER, its
  container (default loop-deposits); LOOP_EMULATOR_DEPOSIT_TTL_SECONDS, a deposit URL's life (600)

API: POST /importFEC, GET /getImportStatus and GET /importStatus (?accountingImportRequestId=),
GET /getFileUrlDeposit?filename=. An accepted import is read in the background, from its URL (so a
bad or expired SAS fails it) or from the deposit its URI names, hashed (sha256 in
/_emulator/imports) and checked to parse as FEC; it then shows status 1, 2, then 3 (or 4 on any
failure). getFileUrlDeposit answers `depositUrl`, a real write-only SAS URL (create+write, short
lived) on a blob of its own in the deposit container of Azurite, and `uri`, to give importFEC.

Control (no auth): GET /_emulator/health, GET /_emulator/requests (every API request, with `sig`
values and keys never recorded), GET /_emulator/imports, GET /_emulator/deposits (each deposit
URL given: its uri, whether a file was uploaded, its size and sha256), POST /_emulator/reset,
POST /_emulator/seed {"count": N, "codeIbs": "DEMO001", "finish_within": [min, max]} (N imports
that need no download and finish, each at its own time between min and max seconds from now,
answering their ids: for polling benchmarks), POST /_emulator/faults with any of:
- "importFEC" / "status" / "getFileUrlDeposit": a list of one-shot faults used by the next calls, in order, each with an
  optional "times": {"kind": "http", "status": 503, "retry_after": 1, "body": {...}},
  {"kind": "hang", "seconds": 30}, {"kind": "reset"} (for importFEC the import IS created first:
  the dangerous real case), {"kind": "error_body", "message": "..."}, {"kind": "json", "status": 200,
  "body": ...}, {"kind": "raw", "status": 200, "text": "..."}, {"kind": "large_body", "bytes": N};
- "upload": a list of one-shot faults for the next deposit URLs given, each making the upload fail
  at Azurite as it would at Cegid: {"kind": "expired"} (the URL expired an hour ago),
  {"kind": "read_only"} (signed for reading only), {"kind": "bad_signature"} (signed with another
  key), {"kind": "missing_container"} (a container that does not exist);
- "deposit_answer": "both" (default), "depositUrl" (that field only) or "uri" (only `uri`, holding
  the signed URL): the shapes of answer the app must read;
- "transient_rate": 0.1, "transient_status": 503, "seed": 1: that share of API calls answer the
  transient status (with Retry-After: 0) and create nothing;
- "final_status": 4, "final_status_by_dossier": {"DEMO002": 4};
- "waiting_seconds", "processing_seconds".
An unknown fault kind or key is refused with HTTP 400 naming the accepted ones (at start-up: the
emulator exits with that message), rather than accepted and never applied.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

from local.azurite import free_port, stop_process
from local.paths import PROJECT_ROOT
from shared.platform.telemetry import redact_text

log = logging.getLogger("loop_emulator")
FEC_REQUIRED = ("journalcode", "ecrituredate", "comptenum")
READY_LINE = "Loop emulator listening on"
FAULT_ENDPOINTS = ("importFEC", "status", "getFileUrlDeposit", "upload")
FAULT_KINDS = ("http", "hang", "reset", "error_body", "json", "raw", "large_body")
UPLOAD_FAULT_KINDS = ("expired", "read_only", "bad_signature", "missing_container")
FAULT_SETTINGS = (
    "transient_rate", "transient_status", "seed", "final_status", "final_status_by_dossier",
    "waiting_seconds", "processing_seconds", "deposit_answer", "latency_ms",
)
DEPOSIT_ANSWERS = ("both", "depositUrl", "uri")


class FaultError(ValueError):
    """A fault description the emulator cannot apply; the message names what it accepts."""


def check_faults(faults: Any) -> dict[str, Any]:
    """The faults as given, or FaultError naming the first unknown key or kind."""
    if not isinstance(faults, dict):
        raise FaultError("faults must be a JSON object")
    unknown = sorted(set(faults) - {*FAULT_ENDPOINTS, *FAULT_SETTINGS})
    if unknown:
        accepted = ", ".join(FAULT_ENDPOINTS + FAULT_SETTINGS)
        raise FaultError(f"unknown fault setting {unknown[0]!r}: accepted are {accepted}")
    for endpoint in FAULT_ENDPOINTS:
        queued = faults.get(endpoint, [])
        if not isinstance(queued, list):
            raise FaultError(f"{endpoint} must be a list of faults")
        kinds = UPLOAD_FAULT_KINDS if endpoint == "upload" else FAULT_KINDS
        for fault in queued:
            kind = fault.get("kind") if isinstance(fault, dict) else None
            if kind not in kinds:
                raise FaultError(f"unknown fault kind {kind!r} for {endpoint}: accepted are {', '.join(kinds)}")
            if kind == "http" and "status" not in fault:
                raise FaultError(f"an http fault for {endpoint} needs a status")
    if faults.get("deposit_answer", "both") not in DEPOSIT_ANSWERS:
        raise FaultError(f"deposit_answer must be one of {', '.join(DEPOSIT_ANSWERS)}")
    return faults


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Import:
    id: str
    code_ibs: str
    url: str
    created: float
    final_status: int = 3
    done: bool = False
    downloaded_bytes: int | None = None
    sha256: str | None = None
    failure: str | None = None
    by: str = "URL"
    object_id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])
    finish_at: float | None = None  # seeded imports: their own end, instead of waiting + processing

    def finished_at(self, waiting: float, processing: float) -> float:
        return self.finish_at if self.finish_at is not None else self.created + waiting + processing

    def status(self, now: float, waiting: float, processing: float) -> int:
        if self.finish_at is not None:
            if now >= self.finish_at:
                return 4 if self.failure else self.final_status
            return 1 if now < self.created + (self.finish_at - self.created) / 3 else 2
        elapsed = now - self.created
        if elapsed < waiting:
            return 1
        if elapsed < waiting + processing or not self.done:
            return 2
        return 4 if self.failure else self.final_status

    def view(self, now: float, waiting: float, processing: float) -> dict[str, Any]:
        return {
            "id": self.id, "codeIbs": self.code_ibs, "url": redact_text(self.url), "by": self.by,
            "status": self.status(now, waiting, processing), "downloaded_bytes": self.downloaded_bytes,
            "sha256": self.sha256, "failure": self.failure, "done": self.done,
            "finished_at": self.finished_at(waiting, processing),
        }


def check_fec(lines: list[bytes]) -> str | None:
    """None when the bytes parse as FEC the way Loop needs; else why not."""
    text_lines = []
    for raw in lines:
        try:
            text_lines.append(raw.decode("utf-8-sig"))
        except UnicodeDecodeError:
            text_lines.append(raw.decode("iso-8859-15"))
    records = [line for line in (t.rstrip("\r") for t in text_lines) if line.strip()]
    if not records:
        return "empty file"
    header = records[0]
    separator = "\t" if "\t" in header else "|" if "|" in header else None
    if separator is None:
        return "no TAB or | separator in the header"
    names = [name.strip().lower() for name in header.split(separator)]
    amounts = {"debit", "credit"} <= set(names) or {"montant", "sens"} <= set(names)
    if not all(name in names for name in FEC_REQUIRED) or not amounts:
        return "the header is not a FEC header"
    if len(records) < 2:
        return "no records"
    width = len(names)
    for number, line in enumerate(records[1:], start=2):
        if len(line.split(separator)) != width:
            return f"record {number} has {len(line.split(separator))} columns, expected {width}"
    return None


@dataclass
class Deposit:
    """One deposit URL given by getFileUrlDeposit: where the file goes and the URI that names it."""

    id: str
    filename: str
    container: str
    blob_name: str
    blob_url: str
    uri: str
    created: float
    expires: float
    upload_fault: str | None = None

    def names(self, uri: str) -> bool:
        """importFEC may name a deposit by its `uri`, or by its URL (with or without signature)."""
        return uri == self.uri or uri.split("?", 1)[0] == self.blob_url


class DepositStore:
    """Cegid's side of a deposit, in Azurite: a container of its own, a write-only SAS URL per file."""

    def __init__(self, env: dict[str, str]) -> None:
        self.connection = env.get("LOOP_EMULATOR_DEPOSIT_STORAGE") or "UseDevelopmentStorage=true"
        self.container = env.get("LOOP_EMULATOR_DEPOSIT_CONTAINER", "loop-deposits")
        self.ttl = float(env.get("LOOP_EMULATOR_DEPOSIT_TTL_SECONDS", "600"))
        self._service: BlobServiceClient | None = None

    @property
    def service(self) -> BlobServiceClient:
        if self._service is None:
            service = BlobServiceClient.from_connection_string(self.connection)
            with contextlib.suppress(ResourceExistsError):
                service.create_container(self.container)
            self._service = service
        return self._service

    def create(self, filename: str, upload_fault: str | None) -> tuple[Deposit, str]:
        """A new deposit and its signed URL (the URL is returned, never kept)."""
        deposit_id = uuid.uuid4().hex
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in filename)[-100:] or "file"
        container = self.container + ("-missing" if upload_fault == "missing_container" else "")
        blob_name = f"{deposit_id}/{safe}"
        blob_url = self.service.get_blob_client(container, blob_name).url
        now = time.time()
        deposit = Deposit(deposit_id, filename, container, blob_name, blob_url, f"loop-deposit:{blob_name}", now,
                          now + self.ttl, upload_fault)
        return deposit, f"{blob_url}?{self._sign(deposit, upload_fault)}"

    def _sign(self, deposit: Deposit, upload_fault: str | None) -> str:
        now = datetime.now(UTC)
        start, expiry = now - timedelta(minutes=5), now + timedelta(seconds=self.ttl)
        permission = BlobSasPermissions(create=True, write=True)  # write-only: the depositor reads nothing
        key = self.service.credential.account_key
        if upload_fault == "expired":
            start, expiry = now - timedelta(hours=2), now - timedelta(hours=1)
        elif upload_fault == "read_only":
            permission = BlobSasPermissions(read=True)
        elif upload_fault == "bad_signature":
            key = base64.b64encode(b"not the account key, not at all" * 2).decode()
        return generate_blob_sas(self.service.account_name, deposit.container, deposit.blob_name, account_key=key,
                                 permission=permission, start=start, expiry=expiry)

    def chunks(self, deposit: Deposit) -> Iterable[bytes]:
        """The deposited file, streamed (ResourceNotFoundError: nothing was uploaded)."""
        client = self.service.get_blob_client(deposit.container, deposit.blob_name)
        return client.download_blob(max_concurrency=1).chunks()

    def describe(self, deposit: Deposit) -> dict[str, Any]:
        view: dict[str, Any] = {"id": deposit.id, "filename": deposit.filename, "uri": deposit.uri,
                                "created": deposit.created, "expires": deposit.expires,
                                "upload_fault": deposit.upload_fault, "uploaded": False, "size": None,
                                "sha256": None}
        digest, size = hashlib.sha256(), 0
        try:
            for chunk in self.chunks(deposit):
                digest.update(chunk)
                size += len(chunk)
        except (ResourceNotFoundError, AzureError):
            return view
        return {**view, "uploaded": True, "size": size, "sha256": digest.hexdigest()}


class EmulatorState:
    def __init__(self, env: dict[str, str]) -> None:
        known = env.get("LOOP_EMULATOR_DOSSIERS", "DEMO001,DEMO002")
        self.dossiers = {code.strip() for code in known.split(",") if code.strip()}
        self.api_key = env.get("LOOP_EMULATOR_API_KEY", "local-dev-key:local-dev-secret")
        self.subscription_key = env.get("LOOP_EMULATOR_SUBSCRIPTION_KEY", "local-dev-subscription")
        self.default_waiting = float(env.get("LOOP_EMULATOR_WAITING_SECONDS", "1"))
        self.default_processing = float(env.get("LOOP_EMULATOR_PROCESSING_SECONDS", "2"))
        self.default_latency = float(env.get("LOOP_EMULATOR_LATENCY_MS", "0")) / 1000
        self.initial_faults = check_faults(json.loads(env.get("LOOP_EMULATOR_FAULTS") or "{}"))
        self.deposit_store = DepositStore(env)
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests: list[dict[str, Any]] = []
            self.imports: dict[str, Import] = {}
            self.deposits: dict[str, Deposit] = {}
            self.deposit_answer = "both"
            self.queues: dict[str, list[dict[str, Any]]] = {endpoint: [] for endpoint in FAULT_ENDPOINTS}
            self.transient_rate = 0.0
            self.transient_status = 503
            self.random = random.Random(0)
            self.final_status = 3
            self.final_by_dossier: dict[str, int] = {}
            self.waiting = self.default_waiting
            self.processing = self.default_processing
            self.latency = self.default_latency
        self.set_faults(self.initial_faults)

    def set_faults(self, faults: dict[str, Any]) -> None:
        check_faults(faults)
        with self.lock:
            for endpoint in FAULT_ENDPOINTS:
                for fault in faults.get(endpoint, []):
                    self.queues[endpoint] += [fault] * int(fault.get("times", 1))
            self.transient_rate = float(faults.get("transient_rate", self.transient_rate))
            self.transient_status = int(faults.get("transient_status", self.transient_status))
            if "seed" in faults:
                self.random = random.Random(faults["seed"])
            self.final_status = int(faults.get("final_status", self.final_status))
            self.final_by_dossier.update(faults.get("final_status_by_dossier", {}))
            self.waiting = float(faults.get("waiting_seconds", self.waiting))
            self.processing = float(faults.get("processing_seconds", self.processing))
            self.deposit_answer = faults.get("deposit_answer", self.deposit_answer)
            self.latency = float(faults.get("latency_ms", self.latency * 1000)) / 1000

    def next_fault(self, endpoint: str) -> dict[str, Any] | None:
        with self.lock:
            if self.queues[endpoint]:
                return self.queues[endpoint].pop(0)
            if endpoint != "upload" and self.transient_rate and self.random.random() < self.transient_rate:
                return {"kind": "http", "status": self.transient_status, "retry_after": 0, "transient": True}
        return None


class _Reading:
    """The bytes of one import as they are read: hashed, counted, split into lines for check_fec."""

    def __init__(self) -> None:
        self.digest, self.size, self.lines, self.pending = hashlib.sha256(), 0, [], b""

    def feed(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.digest.update(chunk)
            self.size += len(chunk)
            self.pending += chunk
            *complete, self.pending = self.pending.split(b"\n")
            self.lines += complete

    def finish(self, record: Import, failure: str | None) -> None:
        if failure is None:
            record.failure = check_fec([*self.lines, self.pending])
        else:
            record.failure = failure
        record.downloaded_bytes, record.sha256, record.done = self.size, self.digest.hexdigest(), True
        log.info("import %s read %d bytes by %s: %s", record.id, self.size, record.by, record.failure or "FEC ok")


def download_and_check(state: EmulatorState, record: Import) -> None:
    """Really download the file from the URL Loop was given, like Loop does, and parse it."""
    reading, failure = _Reading(), None
    try:
        with requests.get(record.url, stream=True, timeout=30) as response:
            if response.status_code != 200:
                raise OSError(f"download answered HTTP {response.status_code}")
            reading.feed(response.iter_content(64 * 1024))
    except (OSError, requests.RequestException) as error:
        failure = f"download failed: {redact_text(str(error))[:200]}"
    reading.finish(record, failure)


def read_deposit_and_check(state: EmulatorState, record: Import) -> None:
    """Read the file deposited under the URI importFEC was given, hash it and parse it."""
    with state.lock:
        deposit = next((d for d in state.deposits.values() if d.names(record.url)), None)
    reading, failure = _Reading(), None
    if deposit is None:
        failure = "no deposit has this URI"
    else:
        try:
            reading.feed(state.deposit_store.chunks(deposit))
        except ResourceNotFoundError:
            failure = "nothing was uploaded to this deposit"
        except AzureError as error:
            failure = f"deposit unreadable: {type(error).__name__}"
    reading.finish(record, failure)


class Handler(BaseHTTPRequestHandler):
    server: EmulatorServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    @property
    def state(self) -> EmulatorState:
        return self.server.state

    def _send(self, status: int, body: Any = None, *, text: str | None = None, headers: dict | None = None) -> None:
        payload = (text if text is not None else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if text is None else "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        path = urlsplit(self.path).path
        log.info("%s %s -> %d", self.command, path, status)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _auth(self) -> str:
        api_key = self.headers.get("x-apikey")
        subscription = self.headers.get("Ocp-Apim-Subscription-Key")
        if not api_key or not subscription:
            return "missing"
        if api_key != self.state.api_key or subscription != self.state.subscription_key:
            return "invalid"
        return "ok"

    def _record(self, path: str, query: dict[str, Any], body: Any, auth: str) -> dict[str, Any]:
        entry = {"method": self.command, "path": path, "query": query, "body": body, "auth": auth,
                 "status": None, "at": time.time()}
        with self.state.lock:
            self.state.requests.append(entry)
        return entry

    # --- routing -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path.startswith("/_emulator/"):
            self._control_get(parts.path)
            return
        time.sleep(self.state.latency)
        if parts.path in ("/getImportStatus", "/importStatus"):
            self._status(parts.path, parse_qs(parts.query))
        elif parts.path == "/getFileUrlDeposit":
            self._deposit(parse_qs(parts.query))
        else:
            self._send(404, {"error": {"message": f"no route {parts.path}"}})

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        raw = self._body()
        if parts.path == "/_emulator/reset":
            self.state.reset()
            self._send(200, {"reset": True})
        elif parts.path == "/_emulator/faults":
            self._set_faults(raw)
        elif parts.path == "/_emulator/seed":
            self._seed(raw)
        elif parts.path == "/importFEC":
            time.sleep(self.state.latency)
            self._import_fec(raw)
        else:
            self._send(404, {"error": {"message": f"no route {parts.path}"}})

    def _set_faults(self, raw: bytes) -> None:
        try:
            self.state.set_faults(json.loads(raw or b"{}"))
        except ValueError as error:  # FaultError, or a body that is not JSON
            self._send(400, {"error": {"message": f"faults refused: {error}"}})
            return
        self._send(200, {"ok": True})

    def _seed(self, raw: bytes) -> None:
        """Imports that need no download, each finishing at its own time: for polling benchmarks."""
        try:
            order = json.loads(raw or b"{}")
            count, code = int(order["count"]), str(order.get("codeIbs", "DEMO001"))
            low, high = (float(value) for value in order.get("finish_within", [1, 2]))
        except (ValueError, KeyError, TypeError) as error:
            self._send(400, {"error": {"message": f"seed needs count and finish_within [min, max]: {error}"}})
            return
        now, ids = time.time(), []
        with self.state.lock:
            for _ in range(count):
                record = Import(str(uuid.uuid4()), code, "seeded", now, done=True, by="seed",
                                finish_at=now + self.state.random.uniform(low, high))
                self.state.imports[record.id] = record
                ids.append(record.id)
        self._send(200, {"ids": ids})

    def _control_get(self, path: str) -> None:
        now = time.time()
        if path == "/_emulator/deposits":  # reads Azurite: outside the lock
            with self.state.lock:
                deposits = list(self.state.deposits.values())
            self._send(200, [self.state.deposit_store.describe(deposit) for deposit in deposits])
            return
        with self.state.lock:
            if path == "/_emulator/requests":
                self._send(200, list(self.state.requests))
            elif path == "/_emulator/imports":
                views = [i.view(now, self.state.waiting, self.state.processing) for i in self.state.imports.values()]
                self._send(200, views)
            elif path == "/_emulator/health":
                self._send(200, {"ok": True})
            else:
                self._send(404, {"error": {"message": "unknown control path"}})

    # --- faults ------------------------------------------------------------------------------

    def _apply_fault(self, fault: dict[str, Any], entry: dict[str, Any], create: Any = None) -> None:
        kind = fault.get("kind")
        if kind == "hang":  # the import exists before the slow answer, as when Loop is slow
            created_id = create() if create else None
            time.sleep(float(fault.get("seconds", 30)))
            if created_id:
                entry["status"] = 200
                self._send(200, {"accountingImportRequestId": created_id})
            return
        if kind == "reset":
            if create:
                create()
            entry["status"] = "reset"
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
            return
        if kind == "http":
            headers = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else None
            entry["status"] = fault["status"]
            self._send(int(fault["status"]), fault.get("body", {"statusCode": fault["status"], "message": "fault"}),
                       headers=headers)
        elif kind == "error_body":
            entry["status"] = 200
            self._send(200, {"error": {"instanceId": str(uuid.uuid4()), "message": fault.get("message", "Erreur")}})
        elif kind == "json":
            entry["status"] = int(fault.get("status", 200))
            self._send(entry["status"], fault.get("body"))
        elif kind == "raw":
            entry["status"] = int(fault.get("status", 200))
            self._send(entry["status"], text=fault.get("text", ""))
        elif kind == "large_body":
            entry["status"] = 200
            size = int(fault.get("bytes", 10 * 1024 * 1024))
            self._send(200, text='{"accountingImportRequestId": "' + "a" * size + '"}')
        else:  # unreachable: check_faults refuses unknown kinds; never leave a request unanswered
            entry["status"] = 500
            self._send(500, {"error": {"message": f"unknown fault kind {kind!r}"}})

    # --- API ---------------------------------------------------------------------------------

    def _unauthorized(self, auth: str) -> None:
        message = (
            "Access denied due to missing subscription key. Make sure to include subscription key when making "
            "requests to an API." if auth == "missing" else
            "Access denied due to invalid subscription key. "
            "Make sure to provide a valid key for an active subscription."
        )
        self._send(401, {"statusCode": 401, "message": message})

    def _import_fec(self, raw: bytes) -> None:
        auth = self._auth()
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        recorded_body = json.loads(redact_text(json.dumps(body))) if body is not None else None
        entry = self._record("/importFEC", {}, recorded_body, auth)
        if auth != "ok":
            entry["status"] = 401
            self._unauthorized(auth)
            return
        if not isinstance(body, dict):
            entry["status"] = 400
            self._send(400, {"error": {"message": "Le corps de la requête n'est pas un JSON valide."}})
            return
        problem = self._import_problem(body)
        if problem:
            entry["status"] = 200
            self._send(200, {"error": {"instanceId": str(uuid.uuid4()), "message": problem}})
            return

        def create() -> str:
            return self._create_import(body)

        fault = self.state.next_fault("importFEC")
        if fault:
            entry["fault"] = fault.get("kind")
            self._apply_fault(fault, entry, create if fault.get("kind") in ("reset", "hang") else None)
            return
        entry["status"] = 200
        self._send(200, {"accountingImportRequestId": create()})

    def _import_problem(self, body: dict[str, Any]) -> str | None:
        code = (body.get("codeIbs") or "").strip() if isinstance(body.get("codeIbs"), str) else ""
        url, uri = body.get("URL") or "", body.get("URI") or ""
        if not code:
            return "Le code IBS du dossier (codeIbs) n'est pas renseigné."
        if not url and not uri:
            return "Aucun chemin d'accès au fichier : renseignez URI ou URL."
        if url and uri:
            return "Ambiguité sur le chemin d'accès au fichier : renseignez URI ou URL, pas les deux."
        if code not in self.state.dossiers:
            return f"Le dossier {code} n'existe pas sur le domaine."
        return None

    def _create_import(self, body: dict[str, Any]) -> str:
        code = body["codeIbs"].strip()
        with self.state.lock:
            final = int(self.state.final_by_dossier.get(code, self.state.final_status))
            record = Import(str(uuid.uuid4()), code, body.get("URL") or body.get("URI"), time.time(), final)
            self.state.imports[record.id] = record
        if not body.get("URL"):
            record.by = "URI"
        reader = download_and_check if body.get("URL") else read_deposit_and_check
        threading.Thread(target=reader, args=(self.state, record), daemon=True).start()
        return record.id

    def _deposit(self, query: dict[str, list[str]]) -> None:
        """getFileUrlDeposit: a write-only, short-lived SAS URL on a new blob, and the URI naming it."""
        auth = self._auth()
        filename = (query.get("filename") or [""])[0]
        entry = self._record("/getFileUrlDeposit", {"filename": filename}, None, auth)
        if auth != "ok":
            entry["status"] = 401
            self._unauthorized(auth)
            return
        fault = self.state.next_fault("getFileUrlDeposit")
        if fault:  # after a hang, nothing: the caller has given up, and a late deposit would linger
            entry["fault"] = fault.get("kind")
            self._apply_fault(fault, entry)
            return
        if not filename.strip():
            entry["status"] = 200
            message = "Le nom du fichier est obligatoire."
            self._send(200, {"error": {"instanceId": str(uuid.uuid4()), "message": message}})
            return
        upload_fault = self.state.next_fault("upload")
        try:
            deposit, url = self.state.deposit_store.create(filename, upload_fault and upload_fault["kind"])
        except AzureError as error:
            entry["status"] = 500
            self._send(500, {"error": {"message": f"deposit storage unavailable: {type(error).__name__}"}})
            return
        with self.state.lock:
            self.state.deposits[deposit.id] = deposit
        entry["status"], entry["deposit"] = 200, deposit.id
        answer = {"both": {"depositUrl": url, "uri": deposit.uri}, "depositUrl": {"depositUrl": url},
                  "uri": {"uri": url}}[self.state.deposit_answer]
        self._send(200, answer)

    def _status(self, path: str, query: dict[str, list[str]]) -> None:
        auth = self._auth()
        request_id = (query.get("accountingImportRequestId") or [""])[0]
        entry = self._record(path, {"accountingImportRequestId": request_id}, None, auth)
        if auth != "ok":
            entry["status"] = 401
            self._unauthorized(auth)
            return
        fault = self.state.next_fault("status")
        if fault:
            entry["fault"] = fault.get("kind")
            self._apply_fault(fault, entry)
            if fault.get("kind") != "hang":
                return
        if not request_id:
            entry["status"] = 400
            self._send(400, {"error": {"message": "accountingImportRequestId est obligatoire."}})
            return
        with self.state.lock:
            record = self.state.imports.get(request_id)
        if record is None:
            entry["status"] = 404
            self._send(404, {"error": {"instanceId": str(uuid.uuid4()), "message": "Demande d'import inconnue."}})
            return
        now = time.time()
        entry["status"] = 200
        self._send(200, {
            "_id": record.object_id, "id": record.id, "creationDate": _iso(record.created), "lastUpdate": _iso(now),
            "codeIBS": record.code_ibs, "domain": "emulator.local",
            "status": record.status(now, self.state.waiting, self.state.processing), "__v": 0,
        })


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: EmulatorState) -> None:
        super().__init__(address, Handler)
        self.state = state


# --- running it as a process (make run, tests, benchmarks) -------------------------------------


@dataclass
class EmulatorProcess:
    """A running emulator process and helpers for its control endpoints."""

    process: subprocess.Popen
    base_url: str

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, f"{self.base_url}/_emulator/{path}", json=body, timeout=10)
        if response.status_code >= 400:  # the emulator's own message says what it refused
            raise requests.HTTPError(f"HTTP {response.status_code}: {response.text[:500]}", response=response)
        return response.json()

    def requests(self) -> list[dict[str, Any]]:
        return self._control("GET", "requests")

    def imports(self) -> list[dict[str, Any]]:
        return self._control("GET", "imports")

    def deposits(self) -> list[dict[str, Any]]:
        """Every deposit URL given, with whether a file was uploaded there, its size and sha256."""
        return self._control("GET", "deposits")

    def reset(self) -> None:
        self._control("POST", "reset")

    def seed(self, count: int, finish_within: tuple[float, float], code_ibs: str = "DEMO001") -> list[str]:
        """Create `count` imports that finish between the two bounds (seconds from now); their ids."""
        order = {"count": count, "codeIbs": code_ibs, "finish_within": list(finish_within)}
        return self._control("POST", "seed", order)["ids"]

    def set_faults(self, faults: dict[str, Any]) -> None:
        """Raise requests.HTTPError (400, naming what is accepted) for a fault the emulator refuses."""
        self._control("POST", "faults", faults)

    def wait_for_download(self, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.imports():
                if record["id"] == request_id and record["done"]:
                    return record
            time.sleep(0.05)
        raise TimeoutError(f"import {request_id} was not downloaded within {timeout}s")

    def stop(self) -> None:
        stop_process(self.process, timeout=5)


def start_emulator_process(env: dict[str, str] | None = None, port: int | None = None) -> EmulatorProcess:
    """Start `python -m local.loop_emulator` on `port` (a free one by default) and wait until ready."""
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "local.loop_emulator", "--port", str(port)],
        cwd=PROJECT_ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    line = process.stdout.readline() if process.stdout else ""
    if READY_LINE not in line:
        process.kill()
        raise RuntimeError(f"the Loop emulator did not start: {line.strip()}")
    threading.Thread(target=_forward_output, args=(process,), daemon=True).start()
    return EmulatorProcess(process, f"http://127.0.0.1:{port}")


def _forward_output(process: subprocess.Popen) -> None:
    for line in process.stdout or []:
        log.debug("%s", line.rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.loop_emulator", description="Cegid Loop API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7081)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="loop-emulator %(message)s", stream=sys.stdout)
    try:
        state = EmulatorState(dict(os.environ))
    except ValueError as error:
        sys.stdout.write(f"LOOP_EMULATOR_FAULTS refused: {error}\n")
        return 2
    server = EmulatorServer((args.host, args.port), state)
    sys.stdout.write(f"{READY_LINE} http://{args.host}:{args.port}\n")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
