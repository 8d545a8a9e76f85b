"""``failover-watcher audit verify|tail``: check and read the hash-chained audit log.

``verify`` exits 0 when the chain is intact, 1 when it is broken (naming the first bad
line), 2 when there is no log to check.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from watcher.audit.log import AUDIT_FILENAME, anchor_of, tail, verify
from watcher.cli.common import report_config_error, settings_from
from watcher.config import ConfigError
from watcher.support.statedir import SNAPSHOT_FILENAME

DEFAULT_STATE_DIR = "/var/lib/failover-watcher"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="verify or read the hash-chained audit log",
        description="Verify or read the watcher's append-only, hash-chained audit log.",
    )
    actions = parser.add_subparsers(dest="audit_action", metavar="ACTION")
    actions.required = True

    for name, helptext in (
        ("verify", "check the whole chain; exit 1 on any edit, deletion or reordering"),
        ("tail", "print the last records"),
    ):
        sub = actions.add_parser(name, help=helptext, description=helptext)
        where = sub.add_mutually_exclusive_group()
        where.add_argument(
            "--state-dir",
            type=Path,
            help=f"the watcher's state directory (default $FAILOVER_WATCHER_STATE_DIR "
            f"or {DEFAULT_STATE_DIR}); the log is {AUDIT_FILENAME} in it",
        )
        where.add_argument("--file", type=Path, help="an audit log file to check")
        where.add_argument(
            "--config", type=Path, help="watcher TOML config: the log in its state_dir"
        )
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "tail":
            sub.add_argument("-n", type=int, default=20, metavar="N", help="records (default 20)")
        sub.set_defaults(func=_verify if name == "verify" else _tail)


def _log_path(args: argparse.Namespace) -> Path:
    if args.file is not None:
        return Path(args.file)
    if args.config is not None:  # like every other command; ConfigError is reported
        return Path(settings_from(args).state_dir) / AUDIT_FILENAME
    state_dir = args.state_dir or Path(
        os.environ.get("FAILOVER_WATCHER_STATE_DIR", DEFAULT_STATE_DIR)
    )
    return Path(state_dir) / AUDIT_FILENAME


def _anchor(state_dir: Path) -> tuple[int, str | None] | None:
    """What the daemon's ``core-state.json`` says was written, if it can be read."""
    try:
        snapshot = json.loads((state_dir / SNAPSHOT_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return anchor_of(snapshot, pending=True) if isinstance(snapshot, dict) else None


def _verify(args: argparse.Namespace) -> int:
    try:
        path = _log_path(args)
    except ConfigError as exc:
        return report_config_error(exc, prog="audit")
    anchor = None if args.file is not None else _anchor(path.parent)
    try:
        result = verify(path, anchor)
    except FileNotFoundError:
        print(f"no audit log at {path}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"file": str(path), **result.to_json()}, indent=2))
    else:
        print(f"{path}: {result.sentence()}")
    return 0 if result.ok else 1


def _tail(args: argparse.Namespace) -> int:
    try:
        path = _log_path(args)
    except ConfigError as exc:
        return report_config_error(exc, prog="audit")
    if args.n < 1:
        print("-n must be at least 1", file=sys.stderr)
        return 2
    try:
        records = tail(path, args.n)
    except FileNotFoundError:
        print(f"no audit log at {path}", file=sys.stderr)
        return 2
    for rec in records:
        if args.json:
            print(json.dumps(rec, ensure_ascii=False))
            continue
        if "unparsed" in rec:
            print(f"?     {rec['unparsed']}")
            continue
        data = rec.get("data") or {}
        facts = " ".join(
            f"{k}={json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}"
            for k, v in data.items()
        )
        print(f"{rec.get('seq', '?'):>5} {rec.get('ts', '?')} {rec.get('type', '?')} {facts}")
    return 0
