"""``failover-breaker`` command line (built out by the breaker issue)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="failover-breaker",
        description="Cost circuit breaker: the only writer of the gateway's openclaw.json.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    sub.add_parser("run", help="not built yet")
    sub.add_parser("status", help="not built yet")
    parser.parse_args(argv)
    print("failover-breaker: not built yet (see the breaker issue)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
