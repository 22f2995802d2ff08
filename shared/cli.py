"""Operator command line: `python -m shared imports ...` and `python -m shared validate ...`."""

from __future__ import annotations

import argparse
import sys

from shared import cli_imports, cli_validate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    cli_imports.add_parser(commands)
    cli_validate.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return 2 if exit_.code else 0
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
