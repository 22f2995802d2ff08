"""An import's life at the emulated Loop: status 1 (waiting), 2 (processing), then 3, or 4 on any
failure; its file read in the background, from its URL here (from a deposit: deposits.py), hashed
(sha256 in /_emulator/imports) and checked to parse as FEC."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests

from shared.platform.telemetry import redact_text

if TYPE_CHECKING:
    from local.loop_emulator.state import EmulatorState

log = logging.getLogger("loop_emulator")
FEC_REQUIRED = ("journalcode", "ecrituredate", "comptenum")


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


class Reading:
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
    reading, failure = Reading(), None
    try:
        with requests.get(record.url, stream=True, timeout=30) as response:
            if response.status_code != 200:
                raise OSError(f"download answered HTTP {response.status_code}")
            reading.feed(response.iter_content(64 * 1024))
    except (OSError, requests.RequestException) as error:
        failure = f"download failed: {redact_text(str(error))[:200]}"
    reading.finish(record, failure)
