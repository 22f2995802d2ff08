"""Run the emulator: `python -m local.loop_emulator [--host 127.0.0.1] [--port 7081]`.

It prints READY_LINE once listening (start_emulator_process waits for it); faults refused at
start-up (LOOP_EMULATOR_FAULTS) are printed instead and it exits with 2.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

from local.loop_emulator.process import READY_LINE
from local.loop_emulator.server import EmulatorServer
from local.loop_emulator.state import EmulatorState


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.loop_emulator", description="Cegid Loop API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7081)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="loop-emulator %(message)s", stream=sys.stdout)
    try:
        state = EmulatorState(dict(os.environ))
    except ValueError as error:
        sys.stdout.write(f"LOOP_EMULATOR_FAULTS refused: {error}\n")
        return 2
    server = EmulatorServer((args.host, args.port), state)
    sys.stdout.write(f"{READY_LINE} http://{args.host}:{args.port}\n")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
