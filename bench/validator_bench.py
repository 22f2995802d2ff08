"""Validator benchmark: time and peak memory against a bare csv.reader pass, in the same run.

Run: `make bench` (or `python -m bench.validator_bench --lines 1000000`).
Generates (once, cached in .bench/) a realistic FEC of N lines (about 120 bytes a line), then
runs each measurement in its own child process, best of --repeat, and prints ratios: the machine is
shared and noisy, so only the ratio to the baseline measured in the same run means anything.
Targets: validator time <= 2x the csv.reader pass (never above 3x); peak RSS < 100 MB at 1M lines
and not growing with the file size.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CACHE = PROJECT_ROOT / ".bench"
HEADER = (
    "JournalCode\tJournalLib\tEcritureNum\tEcritureDate\tCompteNum\tCompteLib\tCompAuxNum\tCompAuxLib\t"
    "PieceRef\tPieceDate\tEcritureLib\tDebit\tCredit\tEcritureLet\tDateLet\tValidDate\tMontantdevise\tIdevise"
)
JOURNALS = [("ACH", "Achats"), ("VEN", "Ventes"), ("BQ1", "Banque BNP"), ("OD", "Operations diverses")]
ACCOUNTS = [
    ("401000", "Fournisseurs"), ("411000", "Clients"), ("512000", "Banque"), ("607000", "Achats de marchandises"),
    ("706000", "Prestations de services"), ("445660", "TVA deductible"), ("445710", "TVA collectee"),
]
LABELS = ["Facture fournisseur", "Reglement client", "Prelevement SEPA", "Avoir n°", "Frais bancaires", "Loyer été"]


def fec_path(lines: int) -> Path:
    return CACHE / f"123456789FEC20241231-{lines}.txt"


def generate(lines: int) -> Path:
    """Balanced entries of 2 to 6 lines, contiguous as real exports are."""
    path = fec_path(lines)
    if path.exists():
        return path
    CACHE.mkdir(exist_ok=True)
    rng = random.Random(42)
    written = 0
    number = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER + "\r\n")
        while written < lines:
            number += 1
            journal, journal_lib = rng.choice(JOURNALS)
            day = f"2024{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
            size = min(rng.randint(2, 6), lines - written) if lines - written > 1 else 1
            amounts = [rng.randint(1, 10_000_000) for _ in range(max(size - 1, 1))]
            debits = amounts[: size - 1]
            rows = [*((amount, 0) for amount in debits), (0, sum(debits))] if size > 1 else [(0, 0)]
            label = f"{rng.choice(LABELS)} {number}"
            for debit, credit in rows:
                account, account_lib = rng.choice(ACCOUNTS)
                aux = f"F{rng.randint(1, 9999):04d}" if account in ("401000", "411000") else ""
                out.write(
                    f"{journal}\t{journal_lib}\t{journal}{number:08d}\t{day}\t{account}\t{account_lib}\t{aux}\t"
                    f"{'Tiers ' + aux if aux else ''}\tP{number}\t{day}\t{label}\t{debit // 100},{debit % 100:02d}\t"
                    f"{credit // 100},{credit % 100:02d}\t\t\t20250115\t\t\r\n"
                )
                written += 1
    return path


CHILD_CSV = """
import csv, sys, time
started = time.perf_counter()
with open(sys.argv[1], encoding="utf-8", newline="") as handle:
    rows = sum(1 for _ in csv.reader(handle, delimiter="\\t"))
print(time.perf_counter() - started, rows)
"""
CHILD_VALIDATOR = """
import sys, time
from shared.fec_validation import validate_path
started = time.perf_counter()
report = validate_path(sys.argv[1])
elapsed = time.perf_counter() - started
assert report.valid, report.to_text()
print(elapsed, report.summary["records"])
"""


def measure(code: str, path: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of a child process running `code` on `path`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run([sys.executable, "-c", code, str(path)], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, check=True)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    seconds = float(result.stdout.split()[0])
    return seconds, max(peak_kb, before) / 1024 if peak_kb > before else peak_kb / 1024


def peak_rss(code: str, path: Path) -> float:
    """Peak RSS in MB of one child, read by /usr/bin/time-free means: the child reports it itself."""
    probe = code + "\nimport resource\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    result = subprocess.run([sys.executable, "-c", probe, str(path)], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, check=True)
    return int(result.stdout.split()[-1]) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.validator_bench", description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    path = generate(args.lines)
    print(f"file: {path.name}, {path.stat().st_size / 1e6:.0f} MB, {args.lines} lines "
          f"(generated or cached in {time.perf_counter() - started:.1f}s)")
    baseline = min(measure(CHILD_CSV, path)[0] for _ in range(args.repeat))
    validator = min(measure(CHILD_VALIDATOR, path)[0] for _ in range(args.repeat))
    half = generate(args.lines // 2)
    rss = {
        "csv.reader": peak_rss(CHILD_CSV, path),
        "validator": peak_rss(CHILD_VALIDATOR, path),
        "validator, half the lines": peak_rss(CHILD_VALIDATOR, half),
    }
    ratio = validator / baseline
    print(f"{'bare csv.reader pass':32} {baseline:7.2f} s")
    print(f"{'validator':32} {validator:7.2f} s   ratio {ratio:.2f}x (target <= 2x, limit 3x)")
    print(f"{'validator throughput':32} {path.stat().st_size / 1e6 / validator:7.1f} MB/s")
    for label, megabytes in rss.items():
        print(f"{'peak RSS, ' + label:32} {megabytes:7.1f} MB")
    within = ratio <= 3 and rss["validator"] < 100
    verdict = "within limits" if within else "OUTSIDE limits"
    print("RESULT:", verdict, f"(ratio {ratio:.2f}x, {rss['validator']:.0f} MB)")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
