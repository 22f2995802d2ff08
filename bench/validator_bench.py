"""Validator benchmark: time and peak memory against a bare csv.reader pass, in the same run.

Run: `make bench` (or `python -m bench.validator_bench --lines 1000000 --big-mb 200`).
Generates (once, cached in .bench/, git-ignored) two realistic FECs of N lines with accented text in
every line: entries of 2 to 6 lines numbered per journal in date order, and the shape of many firms'
exports (issue #18): journals AC, VT, BQ, OD interleaved, entries of 3 lines numbered 1, 2, 3... over
the whole file, not sorted by date, ValidDate = EcritureDate. On each it measures, each in its own
child process, best of --repeat:
- in process: `validate_path` vs a bare `csv.reader` pass over the same file (time inside the child);
- as a whole process: `python -m shared validate FILE` vs `python -c <csv.reader pass>` (wall time,
  interpreter start-up and imports included), and the CLI's peak RSS;
- peak RSS of the CLI on a file of --big-mb MB sorted by entry, and the same lines sorted by account
  (every entry interleaved with the others), to show the per-entry state stays bounded.
The machine is shared and noisy, so only ratios measured in the same run mean anything.
Targets: <= 2x csv.reader (limit 3x) in process and as a process; CLI peak RSS < 60 MB at 1M lines;
< 100 MB for the big files of either ordering.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

from local.paths import PROJECT_ROOT

CACHE = PROJECT_ROOT / ".bench"
HEADER = (
    "JournalCode\tJournalLib\tEcritureNum\tEcritureDate\tCompteNum\tCompteLib\tCompAuxNum\tCompAuxLib\t"
    "PieceRef\tPieceDate\tEcritureLib\tDebit\tCredit\tEcritureLet\tDateLet\tValidDate\tMontantdevise\tIdevise"
)
JOURNALS = [("ACH", "Achats"), ("VEN", "Ventes"), ("BQ1", "Banque BNP"), ("OD", "Opérations diverses")]
ACCOUNTS = [
    ("401000", "Fournisseurs"), ("411000", "Clients"), ("512000", "Banque"), ("607000", "Achats de marchandises"),
    ("706000", "Prestations de services"), ("445660", "TVA déductible"), ("445710", "TVA collectée"),
]
LABELS = ["Facture fournisseur été", "Règlement client", "Prélèvement SEPA", "Avoir n°", "Frais bancaires à payer",
          "Loyer échu"]

CHILD_CSV = """
import csv, sys, time
started = time.perf_counter()
with open(sys.argv[1], encoding="utf-8", newline="") as handle:
    rows = sum(1 for _ in csv.reader(handle, delimiter="\\t"))
print(time.perf_counter() - started, rows)
"""
CHILD_VALIDATOR = """
import sys, time
from shared.fec.validation import validate_path
started = time.perf_counter()
report = validate_path(sys.argv[1])
elapsed = time.perf_counter() - started
assert report.valid, report.to_text()
print(elapsed, report.summary["records"])
"""
# Runs argv[1:] as a child and prints that child's wall time and peak RSS (KB): a fresh parent per
# measurement, so RUSAGE_CHILDREN holds that one child only.
WRAPPER = """
import resource, subprocess, sys, time
started = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _lines(rng: random.Random, count: int):
    """Balanced entries of 2 to 6 lines, numbered per journal, in date order, as real exports are."""
    numbers = dict.fromkeys((code for code, _ in JOURNALS), 0)
    written = 0
    while written < count:
        day_index = written * 336 // count  # 12 months of 28 days, in order
        day = f"2024{day_index // 28 + 1:02d}{day_index % 28 + 1:02d}"
        journal, journal_lib = rng.choice(JOURNALS)
        numbers[journal] += 1
        number = numbers[journal]
        size = max(min(rng.randint(2, 6), count - written), 1)
        debits = [rng.randint(1, 10_000_000) for _ in range(size - 1)] or [0]
        rows = [*((amount, 0) for amount in debits), (0, sum(debits))][:size]
        label = f"{rng.choice(LABELS)} {number}"
        for debit, credit in rows:
            account, account_lib = rng.choice(ACCOUNTS)
            aux = f"F{rng.randint(1, 9999):04d}" if account in ("401000", "411000") else ""
            yield account, (
                f"{journal}\t{journal_lib}\t{journal}{number:08d}\t{day}\t{account}\t{account_lib}\t{aux}\t"
                f"{'Tiers ' + aux if aux else ''}\tP{number}\t{day}\t{label}\t{debit // 100},{debit % 100:02d}\t"
                f"{credit // 100},{credit % 100:02d}\t\t\t{day}\t\t\r\n"
            )
            written += 1


def _file_wide_lines(rng: random.Random, count: int):
    """Balanced entries of 3 lines (the last one or two of 2, so there are `count` lines), numbered
    1, 2, 3... over the file, journals interleaved, dates in no order, ValidDate = EcritureDate: what
    many firms' software exports."""
    journals = [("AC", "Achats"), ("VT", "Ventes"), ("BQ", "Banque Société Générale"), ("OD", "Opérations diverses")]
    sizes = [3] * (count // 3)
    if count % 3 == 2:
        sizes.append(2)
    elif count % 3 == 1:
        sizes[-1:] = [2, 2]
    for number, size in enumerate(sizes, start=1):
        journal, journal_lib = rng.choice(journals)
        day_index = rng.randrange(336)
        day = f"2024{day_index // 28 + 1:02d}{day_index % 28 + 1:02d}"
        debit, vat = rng.randint(100, 10_000_000), rng.randint(0, 2_000_000) if size == 3 else 0
        label = f"{rng.choice(LABELS)} {number}"
        rows = [("607000", "Achats de marchandises", debit, 0), ("445660", "TVA déductible", vat, 0),
                ("401000", "Fournisseurs", 0, debit + vat)]
        for account, account_lib, line_debit, line_credit in rows if size == 3 else [rows[0], rows[2]][:size]:
            yield account, (
                f"{journal}\t{journal_lib}\t{number}\t{day}\t{account}\t{account_lib}\t\t\tP{number}\t{day}\t"
                f"{label}\t{line_debit // 100},{line_debit % 100:02d}\t{line_credit // 100},{line_credit % 100:02d}"
                f"\t\t\t{day}\t\t\r\n"
            )


SHAPES = {"per-journal": _lines, "file-wide": _file_wide_lines}


def generate(lines: int, by_account: bool = False, shape: str = "per-journal") -> Path:
    """The file of `lines` records, cached; `by_account`: the same lines sorted by account."""
    tag = "" if shape == "per-journal" else f"-{shape}"
    path = CACHE / f"123456789FEC20241231-{lines}{tag}{'-by-account' if by_account else ''}.txt"
    if path.exists():
        return path
    CACHE.mkdir(exist_ok=True)
    accounts = [account for account, _ in ACCOUNTS] if by_account else [None]
    parts = {account: CACHE / f"part-{account}.tmp" for account in accounts}
    handles = {account: part.open("w", encoding="utf-8", newline="") for account, part in parts.items()}
    for account, line in SHAPES[shape](random.Random(42), lines):
        handles[account if by_account else None].write(line)
    for handle in handles.values():
        handle.close()
    with path.open("wb") as out:
        out.write(HEADER.encode() + b"\r\n")
        for part in parts.values():
            with part.open("rb") as source:
                while block := source.read(1 << 20):
                    out.write(block)
            part.unlink()
    return path


def in_child(code: str, path: Path) -> float:
    """Seconds measured inside a child running `code` on `path`."""
    result = subprocess.run([sys.executable, "-c", code, str(path)], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, check=True)
    return float(result.stdout.split()[0])


def as_process(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of the process `argv`."""
    result = subprocess.run([sys.executable, "-c", WRAPPER, *argv], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, check=True)
    seconds, peak_kb = result.stdout.split()
    return float(seconds), int(peak_kb) / 1024


def cli(path: Path) -> list[str]:
    return [sys.executable, "-m", "shared", "validate", str(path)]


def measure(path: Path, repeat: int) -> tuple[float, float, float]:
    """(in-process ratio, CLI ratio, CLI peak RSS MB) of the validator against csv.reader on `path`."""
    csv_in = min(in_child(CHILD_CSV, path) for _ in range(repeat))
    validator_in = min(in_child(CHILD_VALIDATOR, path) for _ in range(repeat))
    csv_runs = [as_process([sys.executable, "-c", CHILD_CSV, str(path)]) for _ in range(repeat)]
    cli_runs = [as_process(cli(path)) for _ in range(repeat)]
    csv_process, csv_rss = min(csv_runs)
    cli_process = min(seconds for seconds, _ in cli_runs)
    cli_rss = max(rss for _, rss in cli_runs)
    ratio_in, ratio_cli = validator_in / csv_in, cli_process / csv_process
    print(f"{'in process: bare csv.reader pass':42} {csv_in:7.2f} s")
    print(f"{'in process: validate_path':42} {validator_in:7.2f} s   ratio {ratio_in:.2f}x (target <= 2x, limit 3x)")
    print(f"{'process: python -c <csv.reader pass>':42} {csv_process:7.2f} s   peak RSS {csv_rss:5.1f} MB")
    print(f"{'process: python -m shared validate':42} {cli_process:7.2f} s   ratio {ratio_cli:.2f}x, "
          f"peak RSS {cli_rss:5.1f} MB (target < 60 MB)")
    print(f"{'validator throughput':42} {path.stat().st_size / 1e6 / validator_in:7.1f} MB/s")
    return ratio_in, ratio_cli, cli_rss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.validator_bench", description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big-mb", type=int, default=200, help="size of the two ordering files; 0 to skip")
    args = parser.parse_args(argv)
    within = True
    results = []
    for shape in SHAPES:
        started = time.perf_counter()
        path = generate(args.lines, shape=shape)
        print(f"file ({shape} numbering): {path.name}, {path.stat().st_size / 1e6:.0f} MB, {args.lines} lines,"
              f" accented text in every line (generated or cached in {time.perf_counter() - started:.1f}s)")
        ratio_in, ratio_cli, cli_rss = measure(path, args.repeat)
        within &= ratio_in <= 3 and ratio_cli <= 3 and cli_rss < 60
        results.append(f"{shape}: in process {ratio_in:.2f}x, CLI {ratio_cli:.2f}x, CLI {cli_rss:.0f} MB")
    if args.big_mb:
        within &= big_files(args.big_mb, generate(args.lines))
    print("RESULT:", "within limits" if within else "OUTSIDE limits", f"({'; '.join(results)})")
    return 0 if within else 1


def big_files(megabytes: int, sample: Path) -> bool:
    """Peak RSS of the CLI on a file of `megabytes` sorted by entry, and sorted by account."""
    per_line = sample.stat().st_size / max(sum(1 for _ in sample.open("rb")) - 1, 1)
    lines = int(megabytes * 1e6 / per_line)
    within = True
    for by_account in (False, True):
        started = time.perf_counter()
        path = generate(lines, by_account)
        generated = time.perf_counter() - started
        seconds, rss = as_process(cli(path))
        label = f"{path.stat().st_size / 1e6:.0f} MB sorted by {'account' if by_account else 'entry'}"
        print(f"{'process: validate ' + label:42} {seconds:7.2f} s   peak RSS {rss:5.1f} MB (limit 100 MB)"
              f"   [generated or cached in {generated:.0f}s]")
        within &= rss < 100
    return within


if __name__ == "__main__":
    sys.exit(main())
