"""A 100 MB file deposited in bounded memory: the upload goes block by block from the snapshot's
download, in a process of its own so its allocations and RSS are its own. Real Azurite, the
emulator process, which reads the deposit back and hashes it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from tests import deposit_fixtures
from tests.helpers import PROJECT_ROOT

deposit_emulator = deposit_fixtures.deposit_emulator
loop_emulator = deposit_fixtures.loop_emulator
pipeline_env = deposit_fixtures.pipeline_env

MIB = 1024 * 1024
SIZE = 100 * MIB
HEADER = ("JournalCode|JournalLib|EcritureNum|EcritureDate|CompteNum|CompteLib|CompAuxNum|CompAuxLib|PieceRef|"
          "PieceDate|EcritureLib|Debit|Credit|EcritureLet|DateLet|ValidDate|Montantdevise|Idevise\n")


def write_large_fec(path, size: int) -> str:
    """A valid, balanced FEC of at least `size` bytes, written in pieces; its sha256."""
    digest = hashlib.sha256()
    written = 0
    with path.open("wb") as out:
        def put(text: str) -> None:
            nonlocal written
            data = text.encode("utf-8")
            digest.update(data)
            out.write(data)
            written += len(data)

        put(HEADER)
        number = 0
        while written < size:
            lines = []
            for _ in range(2000):
                number += 1
                day = f"2024{number % 12 + 1:02d}{number % 28 + 1:02d}"
                common = f"VE|Ventes|{number}|{day}|"
                tail = f"|F{number}|{day}|Facture été n°{number}|"
                lines.append(f"{common}411000|Clients|C{number % 97}|Client {number % 97}{tail}123,45|0,00|||{day}||\n")
                lines.append(f"{common}706000|Prestations||{tail}0,00|123,45|||{day}||\n")
            put("".join(lines))
    return digest.hexdigest()


def test_a_100_mb_file_is_deposited_in_bounded_memory_and_loop_reads_its_exact_bytes(
    pipeline, pipeline_env, loop_emulator, tmp_path
):
    source = tmp_path / "123456789FEC20241231.txt"
    expected = write_large_fec(source, SIZE)
    name = "DEMO001/123456789FEC20241231.txt"
    blob = pipeline.blob_service.get_blob_client(pipeline.settings.container, name)
    with source.open("rb") as data:
        blob.upload_blob(data, overwrite=True, max_concurrency=2)

    probe = subprocess.run(
        [sys.executable, "-m", "tests.deposit_memory_probe", pipeline.settings.container, name],
        cwd=PROJECT_ROOT, env={**os.environ, **pipeline_env}, capture_output=True, text=True, timeout=300,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    measured = json.loads(probe.stdout.strip().splitlines()[-1])
    print(json.dumps(measured))  # shown with -s: the figures the README quotes

    assert measured["state"] == "pending"
    assert measured["content_sha256"] == expected
    # A bound that does not grow with the file: a few blocks, plus a one-off ~32 MiB the storage SDK
    # allocates while its first download chunk is read (seen with the downloader alone, any file size).
    assert measured["deposit_peak_bytes"] < 64 * MIB, "the deposit's memory grew with the file"
    # The whole delivery (validation included) never holds the file: its peak stays under the size.
    growth = measured["peak_rss_after"] - measured["peak_rss_before"]
    assert growth < SIZE - 4 * MIB, f"peak RSS grew by {growth / MIB:.0f} MiB for a {SIZE // MIB} MiB file"
    loop_import = loop_emulator.wait_for_download(measured["request_id"], timeout=120)
    assert (loop_import["by"], loop_import["failure"]) == ("URI", None)
    assert (loop_import["downloaded_bytes"], loop_import["sha256"]) == (source.stat().st_size, expected)
