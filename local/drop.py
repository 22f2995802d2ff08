"""Upload a file into the watched container: `python -m local.drop FILE [--dossier CODE] [--name NAME] [--force]`
(`make drop FILE=... DOSSIER=... NAME=... FORCE=1`)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from local.settings import local_environment


def drop_file(
    service: BlobServiceClient, container: str, path: Path, *, name: str | None = None,
    dossier: str | None = None, force: bool = False,
) -> str:
    """Upload `path` as `name` (its file name by default), with metadata codeibs/force if given."""
    metadata = {}
    if dossier:
        metadata["codeibs"] = dossier
    if force:
        metadata["force"] = "true"
    blob_name = name or path.name
    with contextlib.suppress(ResourceExistsError):
        service.create_container(container)
    with path.open("rb") as data:
        service.get_blob_client(container, blob_name).upload_blob(data, overwrite=True, metadata=metadata)
    return blob_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.drop", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--dossier", help="Loop dossier code (blob metadata codeibs)")
    parser.add_argument("--name", help="blob name (default: the file name; use CODE/file to set the dossier)")
    parser.add_argument("--force", action="store_true", help="send even if the same bytes were sent recently")
    args = parser.parse_args(argv)
    if not args.file.is_file():
        print(f"error: {args.file} is not a file", file=sys.stderr)
        return 2
    env = local_environment()
    service = BlobServiceClient.from_connection_string(env["AzureWebJobsStorage"])
    container = env["FEC_IMPORT_CONTAINER"]
    name = drop_file(service, container, args.file, name=args.name, dossier=args.dossier, force=args.force)
    print(f"dropped {args.file} as {container}/{name}" + (f" for dossier {args.dossier}" if args.dossier else "")
          + (" with force=true (sent even if the same content was imported)" if args.force else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
