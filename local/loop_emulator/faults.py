"""Fault injection: the faults the emulator accepts, how they are checked, and how one is answered.

POST /_emulator/faults (or LOOP_EMULATOR_FAULTS at start-up) takes any of:
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
- "waiting_seconds", "processing_seconds", "latency_ms".
An unknown fault kind or key is refused with HTTP 400 naming the accepted ones (at start-up: the
emulator exits with that message), rather than accepted and never applied.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local.loop_emulator.handler import BaseHandler

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


def apply_fault(
    handler: BaseHandler, fault: dict[str, Any], entry: dict[str, Any], create: Callable[[], str] | None = None
) -> None:
    """Answer the handler's request with the fault (an API call's fault, not an upload's), recording
    the answer in the request log `entry`; `create` makes the import a hang or reset still creates."""
    kind = fault.get("kind")
    if kind == "hang":  # the import exists before the slow answer, as when Loop is slow
        created_id = create() if create else None
        time.sleep(float(fault.get("seconds", 30)))
        if created_id:
            entry["status"] = 200
            handler._send(200, {"accountingImportRequestId": created_id})
        return
    if kind == "reset":
        if create:
            create()
        entry["status"] = "reset"
        handler.close_connection = True
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        handler.connection.close()
        return
    if kind == "http":
        headers = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else None
        entry["status"] = fault["status"]
        handler._send(int(fault["status"]), fault.get("body", {"statusCode": fault["status"], "message": "fault"}),
                      headers=headers)
    elif kind == "error_body":
        entry["status"] = 200
        handler._send(200, {"error": {"instanceId": str(uuid.uuid4()), "message": fault.get("message", "Erreur")}})
    elif kind == "json":
        entry["status"] = int(fault.get("status", 200))
        handler._send(entry["status"], fault.get("body"))
    elif kind == "raw":
        entry["status"] = int(fault.get("status", 200))
        handler._send(entry["status"], text=fault.get("text", ""))
    elif kind == "large_body":
        entry["status"] = 200
        size = int(fault.get("bytes", 10 * 1024 * 1024))
        handler._send(200, text='{"accountingImportRequestId": "' + "a" * size + '"}')
    else:  # unreachable: check_faults refuses unknown kinds; never leave a request unanswered
        entry["status"] = 500
        handler._send(500, {"error": {"message": f"unknown fault kind {kind!r}"}})
