"""Which Loop dossier (codeIbs) a file belongs to: blob metadata, folder, or SIREN mapping."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient

CODE_IBS_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
FEC_FILE_NAME = re.compile(r"(?i)^(\d{9})FEC(\d{8})(\.[A-Za-z0-9]{1,5})?$")
METADATA_KEY = "codeibs"
SIREN_PARTITION = "siren"


class DossierError(ValueError):
    """No plausible dossier could be found; the message says why, for the ledger and the logs."""


@dataclass(frozen=True)
class Dossier:
    code_ibs: str
    source: str  # "metadata", "folder" or "siren"


def siren_from_name(blob_name: str) -> str | None:
    """The SIREN of a file named `<SIREN>FEC<AAAAMMJJ>[.ext]`, or None."""
    match = FEC_FILE_NAME.match(PurePosixPath(blob_name).name)
    return match.group(1) if match else None


def _checked(code: str, origin: str) -> str:
    if CODE_IBS_PATTERN.fullmatch(code):
        return code
    shown = code if len(code) <= 40 else code[:40] + "..."
    raise DossierError(
        f"{origin} {shown!r} is not a plausible dossier code (1 to 32 letters, digits, '-' or '_')"
    )


def resolve_dossier(
    blob_name: str, metadata: Mapping[str, str], siren_lookup: Callable[[str], str | None]
) -> Dossier:
    """Blob metadata `codeibs`, else the first folder of the name, else the SIREN mapping table."""
    lowered = {key.lower(): value for key, value in metadata.items()}
    if METADATA_KEY in lowered:
        return Dossier(_checked(lowered[METADATA_KEY].strip(), "metadata codeibs"), "metadata")
    parts = blob_name.split("/")
    if len(parts) > 1:
        return Dossier(_checked(parts[0], "folder"), "folder")
    siren = siren_from_name(blob_name)
    if siren is None:
        raise DossierError(
            "no dossier: set blob metadata codeibs, drop the file under <codeIbs>/, "
            "or name it <SIREN>FEC<AAAAMMJJ> with the SIREN in the dossier table"
        )
    code = siren_lookup(siren)
    if code is None:
        raise DossierError(f"no dossier: SIREN {siren} is not in the dossier table")
    return Dossier(_checked(code, f"dossier table entry for SIREN {siren}"), "siren")


class SirenTable:
    """The SIREN -> codeIbs mapping, in Table Storage (PartitionKey `siren`, RowKey the SIREN)."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    def ensure(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self.table.create_table()

    def lookup(self, siren: str) -> str | None:
        try:
            entity = self.table.get_entity(SIREN_PARTITION, siren)
        except ResourceNotFoundError:
            return None
        return str(entity.get("codeIbs") or "") or None

    def set(self, siren: str, code_ibs: str) -> None:
        self.table.upsert_entity({"PartitionKey": SIREN_PARTITION, "RowKey": siren, "codeIbs": code_ibs})
