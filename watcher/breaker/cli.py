"""``failover-breaker run|status``: the cost circuit, the only writer of ``openclaw.json``.

Exit codes: 0 ok, 1 the config (or the ledger, or the source) is bad, 2 usage error.
The config file is TOML; only its ``[breaker]`` section is
read. ``--config`` overrides ``$FAILOVER_BREAKER_CONFIG``, which overrides
``/etc/failover-watcher/breaker.toml``.

``status --json`` shape (stable)::

    {"day": "2026-05-20", "timezone": "Europe/Berlin", "currency": "USD",
     "next_reset": "2026-05-21T00:00:00+02:00", "next_reset_ts": 1779314400.0,
     "providers": {"openai": {"calls_ok": 3, "calls_failed": 2, "calls": 5, "cost": 0.1,
                              "daily_cap": 5.0, "daily_calls": null,
                              "remaining": {"money": 4.9, "calls": null},
                              "tripped": false}},
     "trips": [{"provider": ..., "day": ..., "written": true, "why": ...,
                "affected": [...], "uncut": [...], "removed": [{"owner", "ref", "position"}],
                "promoted": [{"owner", "from", "to"}], "last_error": null}],
     "position": "<source position of the last batch applied>"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from watcher.breaker.config import DEFAULT_CONFIG, BreakerConfig, BreakerConfigError, load_config
from watcher.breaker.ledger import Ledger, local_day, next_reset, remaining, roll
from watcher.breaker.store import LedgerError, LedgerStore
from watcher.support.logsetup import quiet_stdout


def _config_path(args: argparse.Namespace) -> Path:
    if args.config:
        return Path(args.config)
    return Path(os.environ.get("FAILOVER_BREAKER_CONFIG") or DEFAULT_CONFIG)


def _load(args: argparse.Namespace) -> BreakerConfig | None:
    try:
        return load_config(_config_path(args))
    except BreakerConfigError as exc:
        for problem in exc.problems:
            print(f"failover-breaker: {problem}", file=sys.stderr)
        return None


def status_data(config: BreakerConfig, ledger: Ledger | None, now: float) -> dict[str, Any]:
    zone = config.zone
    ledger = roll(ledger or Ledger.empty(now, zone), now, zone)
    reset = next_reset(now, zone)
    from datetime import datetime

    providers: dict[str, Any] = {}
    for name, budget in sorted(config.paid.items()):
        spend = ledger.spend_of(name)
        trip = ledger.trip_of(name)
        providers[name] = {
            "calls_ok": spend.calls_ok,
            "calls_failed": spend.calls_failed,
            "calls": spend.calls,
            "cost": round(spend.cost, 6),
            "daily_cap": budget.daily_cap,
            "daily_calls": budget.daily_calls,
            "remaining": remaining(spend, budget),
            "tripped": bool(trip and trip.written),
        }
    trips = []
    for trip in ledger.trips:
        cut = trip.cut
        trips.append({
            "provider": trip.provider,
            "day": trip.day,
            "written": trip.written,
            "why": trip.why,
            "affected": list(cut.affected) if cut else [],
            "uncut": list(cut.uncut) if cut else [],
            "removed": [{"owner": r.owner, "ref": r.ref, "position": r.position}
                        for r in cut.removals] if cut else [],
            "promoted": [{"owner": p.owner, "from": p.from_ref, "to": p.to_ref}
                         for p in cut.promotions] if cut else [],
            "last_error": trip.last_error or trip.reset_error,
        })
    return {
        "day": local_day(now, zone),
        "timezone": config.timezone,
        "currency": config.currency,
        "next_reset": datetime.fromtimestamp(reset, zone).isoformat(timespec="seconds"),
        "next_reset_ts": reset,
        "providers": providers,
        "trips": trips,
        "position": ledger.position,
    }


def _status_text(data: dict[str, Any]) -> str:
    cur = data["currency"]
    lines = [f"Day {data['day']} ({data['timezone']}); next reset {data['next_reset']}"]
    if not data["providers"]:
        lines.append("No paid providers configured.")
    for name, p in data["providers"].items():
        caps = []
        if p["daily_cap"] is not None:
            caps.append(f"{p['cost']:.2f} of {p['daily_cap']:.2f} {cur}")
        if p["daily_calls"] is not None:
            caps.append(f"{p['calls']} of {p['daily_calls']} calls")
        state = "TRIPPED (cut off until the reset)" if p["tripped"] else "ok"
        lines.append(
            f"  {name}: {', '.join(caps)} ({p['calls_ok']} served, {p['calls_failed']} failed)"
            f" - {state}"
        )
    for trip in data["trips"]:
        if not trip["written"]:
            lines.append(f"  {trip['provider']}: over its cap, NOT yet cut: {trip['last_error']}")
            continue
        lines.append(f"  {trip['provider']} cut on {trip['day']}: {trip['why']}")
        for r in trip["removed"]:
            lines.append(f"    removed {r['ref']} from {r['owner']} (position {r['position']})")
        for p in trip["promoted"]:
            lines.append(f"    promoted {p['to']} over {p['from']} for {p['owner']}")
        if trip["uncut"]:
            lines.append(f"    still on it (nothing else in their chain): "
                         f"{', '.join(trip['uncut'])}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return 1
    try:
        ledger = LedgerStore(config.state_dir).load()
    except LedgerError as exc:
        print(f"failover-breaker: {exc}", file=sys.stderr)
        return 1
    data = status_data(config, ledger, time.time())
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(_status_text(data))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from watcher.support.logsetup import setup_logging

    config = _load(args)
    if config is None:
        return 1
    setup_logging()
    from watcher.alerts.config import TokenUnavailable
    from watcher.breaker.service import run_breaker

    try:
        return asyncio.run(run_breaker(config, dry_run=args.dry_run))
    except LedgerError as exc:
        print(f"failover-breaker: {exc}", file=sys.stderr)
    except TokenUnavailable as exc:
        print(f"failover-breaker: alerts.bot_token: {exc}; nothing was started",
              file=sys.stderr)
    except (OSError, sqlite3.Error) as exc:
        where = getattr(exc, "filename", None) or config.state_dir
        print(f"failover-breaker: cannot use {where}: "
              f"{getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="failover-breaker",
        description="Cost circuit breaker: the only writer of the gateway's openclaw.json.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    run = sub.add_parser("run", help="the daemon: account spend, trip at the cap, reset daily")
    run.add_argument("--config", help=f"TOML config with a [breaker] section ({DEFAULT_CONFIG})")
    run.add_argument("--dry-run", action="store_true",
                     help="print the diffs it would write; write nothing at all")
    run.set_defaults(func=cmd_run)
    status = sub.add_parser("status", help="spend today, caps, tripped providers, next reset")
    status.add_argument("--config", help=f"TOML config with a [breaker] section ({DEFAULT_CONFIG})")
    status.add_argument("--json", action="store_true", help="the documented JSON shape")
    status.set_defaults(func=cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # ``status --json | head``: the reader left; so do we
        quiet_stdout()
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
