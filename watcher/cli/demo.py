"""``failover-watcher demo``: self-contained, on loopback fakes; needs only the install."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="the incidents side by side, then the daemon live (~20 s)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of the live part")
    p.add_argument("--dir", type=Path, help="keep the demo's files here (default: a temp dir)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from watcher.demo import run_demo

    return run_demo(args.seconds, args.dir)
