"""`python -m shared validate PATH [--json] [--lang fr|en]`: check a FEC file before dropping it.

The text report is in the dropper's language (`--lang`, else REPORT_LANGUAGE, else French); the JSON
is the validator's, with English messages and each finding's parameters.
Exit codes: 0 importable (warnings allowed), 1 errors, 2 unreadable file or bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from zoneinfo import ZoneInfoNotFoundError

from shared.fec.validation import validate_path
from shared.language.texts import validation_text
from shared.language.wording import DEFAULT_LANGUAGE, DEFAULT_TIMEZONE, LANGUAGES, Wording, wording


def add_parser(commands: argparse._SubParsersAction) -> None:
    validate = commands.add_parser("validate", help="check a FEC file; exit 0 importable, 1 errors, 2 unreadable")
    validate.add_argument("path", type=Path)
    validate.add_argument("--json", action="store_true", help="print the report as one JSON object")
    validate.add_argument("--lang", choices=LANGUAGES, default=None,
                          help="language of the text report (default: REPORT_LANGUAGE, else fr)")
    validate.set_defaults(handler=run)


def _text_wording(args: argparse.Namespace) -> Wording | str:
    """The wording of the text report, or why it cannot be had (a bad REPORT_LANGUAGE or
    REPORT_TIMEZONE), checked before the file is read."""
    language = args.lang or os.environ.get("REPORT_LANGUAGE", "").strip().lower() or DEFAULT_LANGUAGE
    if language not in LANGUAGES:
        return f"REPORT_LANGUAGE must be one of {', '.join(LANGUAGES)}, got {language!r}"
    zone = os.environ.get("REPORT_TIMEZONE", "").strip() or DEFAULT_TIMEZONE
    try:
        return wording(language, zone)
    except (ValueError, ZoneInfoNotFoundError):
        return f"REPORT_TIMEZONE must be an IANA time zone such as {DEFAULT_TIMEZONE}, got {zone!r}"


def run(args: argparse.Namespace) -> int:
    path: Path = args.path
    words = None if args.json else _text_wording(args)
    if isinstance(words, str):
        print(f"error: {words}", file=sys.stderr)
        return 2
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
        print(validation_text(words, report.to_dict()))
    return 0 if report.valid else 1
