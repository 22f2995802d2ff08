"""What the emulator holds between requests: its settings, imports, deposits, request log and faults.

Settings (environment):
- LOOP_EMULATOR_DOSSIERS: known codeIbs, comma-separated (default DEMO001,DEMO002)
- LOOP_EMULATOR_API_KEY: expected `x-apikey` (default local-dev-key:local-dev-secret)
- LOOP_EMULATOR_SUBSCRIPTION_KEY: expected `Ocp-Apim-Subscription-Key` (default local-dev-subscription)
- LOOP_EMULATOR_WAITING_SECONDS / LOOP_EMULATOR_PROCESSING_SECONDS: time in status 1 / 2 (1 / 2)
- LOOP_EMULATOR_FAULTS: JSON, the same as POST /_emulator/faults (faults.py)
- LOOP_EMULATOR_LATENCY_MS: time every API call takes before it is answered (0), as a real Loop's
  latency for benchmarks; also the fault setting "latency_ms"
- LOOP_EMULATOR_DEPOSIT_*: the deposits' storage (deposits.py)
"""

from __future__ import annotations

import json
import random
import threading
from typing import Any

from local.loop_emulator.deposits import Deposit, DepositStore
from local.loop_emulator.faults import FAULT_ENDPOINTS, check_faults
from local.loop_emulator.imports import Import


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
