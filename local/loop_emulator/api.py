"""The emulated Cegid Loop public API (docs/loop-api.md): POST /importFEC, GET /getImportStatus and
GET /importStatus (?accountingImportRequestId=), GET /getFileUrlDeposit?filename=.

An accepted import is read in the background, from its URL (so a bad or expired SAS fails it) or
from the deposit its URI names (imports.py, deposits.py). A queued fault (faults.py) answers a call
in place of the API.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError

from local.loop_emulator.deposits import read_deposit_and_check
from local.loop_emulator.faults import apply_fault
from local.loop_emulator.handler import BaseHandler
from local.loop_emulator.imports import Import, download_and_check
from shared.platform.telemetry import redact_text


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


class LoopApiHandler(BaseHandler):
    """The API endpoints; routing to them is the server's (server.py)."""

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
            apply_fault(self, fault, entry, create if fault.get("kind") in ("reset", "hang") else None)
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
            apply_fault(self, fault, entry)
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
            apply_fault(self, fault, entry)
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
