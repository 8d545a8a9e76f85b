"""``failover-watcher`` command line.

Each subcommand lives in its own module here and exposes
``register(subparsers) -> None``; the parser sets ``func(args) -> int``.
Exit codes: 0 ok, 1 the thing checked is bad, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from watcher.support.logsetup import quiet_stdout

# Subcommand modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "run",
    "demo",
    "status",
    "pin",
    "replay",
    "classify",
    "simulate",
    "probe",
    "drill",
    "lint_config",
    "audit",
    "outbox",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="failover-watcher",
        description="Watch an OpenClaw gateway's model fallbacks, pin agents, fail back safely.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"watcher.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `failover-watcher classify big.log | head` is fine.
        quiet_stdout()
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
