"""`python -m shared validate PATH [--json]`: check a FEC file before dropping it.

Exit codes: 0 importable (warnings allowed), 1 errors, 2 unreadable file or bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shared.fec.validation import validate_path


def add_parser(commands: argparse._SubParsersAction) -> None:
    validate = commands.add_parser("validate", help="check a FEC file; exit 0 importable, 1 errors, 2 unreadable")
    validate.add_argument("path", type=Path)
    validate.add_argument("--json", action="store_true", help="print the report as one JSON object")
    validate.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path: Path = args.path
    try:
        report = validate_path(path)
    except IsADirectoryError:
        print(f"error: {path} is a directory, not a file", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot read {path}: {error.strerror or error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        print(report.to_text())
    return 0 if report.valid else 1
