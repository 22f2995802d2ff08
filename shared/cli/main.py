"""Operator command line: `python -m shared imports ...` and `python -m shared validate ...`.

`validate` must start fast and small (it runs on a laptop before a drop, and in the benchmark as a
whole process), so the `imports` commands, which need the storage and table SDKs, are imported only
when the command line asks for them (or for the full help).
"""

from __future__ import annotations

import argparse
import sys

from shared.cli import validate as cli_validate

VALIDATE = "validate"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `command` == "validate", without importing the `imports` commands."""
    parser = argparse.ArgumentParser(prog="python -m shared", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    if command != VALIDATE:
        from shared.cli import imports as cli_imports  # noqa: PLC0415 - the storage SDKs, only when needed

        cli_imports.add_parser(commands)
    cli_validate.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    parser = build_parser(arguments[0] if arguments else None)
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exit_:
        return 2 if exit_.code else 0
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
