"""Run checkov over infra/ with the project's .checkov.yaml; fail on any failed check or parsing error.

checkov exits 0 when it cannot parse a template (it reports "Parsing errors: 1" and checks
nothing in that file), so its exit code alone would let an unreadable template through.

Usage: python infra/checkov_gate.py [path/to/checkov]   (default: .venv/checkov/bin/checkov)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"


def run_checkov(checkov: Path) -> dict:
    """checkov's JSON report for the project's configuration (one framework: one report)."""
    result = subprocess.run(
        [str(checkov), "--config-file", str(ROOT / ".checkov.yaml"), "--output", "json"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"checkov gave no JSON report (exit code {result.returncode})") from None
    if isinstance(report, list):
        raise SystemExit("checkov reported several frameworks: .checkov.yaml should select bicep only")
    return report


def problems(report: dict) -> list[str]:
    """What makes the gate fail: failed checks, files checkov could not parse, nothing checked."""
    summary = report.get("summary", {})
    found = [
        f"{check['check_id']} {check['check_name']}: {check['resource']} ({check['file_path']})"
        for check in report.get("results", {}).get("failed_checks", [])
    ]
    if summary.get("parsing_errors", 0):
        found.append(f"{summary['parsing_errors']} Bicep file(s) could not be parsed: nothing in them was checked")
    if not summary.get("passed", 0) and not found:
        found.append("checkov checked nothing under infra/")
    return found


def main(argv: list[str]) -> int:
    checkov = Path(argv[1]) if len(argv) > 1 else DEFAULT_CHECKOV
    report = run_checkov(checkov)
    summary = report.get("summary", {})
    print(
        f"checkov {summary.get('checkov_version', '?')} over infra/: passed {summary.get('passed', 0)}, "
        f"failed {summary.get('failed', 0)}, skipped {summary.get('skipped', 0)}, "
        f"parsing errors {summary.get('parsing_errors', 0)} (skips with their reasons: .checkov.yaml)"
    )
    found = problems(report)
    for problem in found:
        print(f"  {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
