"""``failover-watcher status [--json]``: pins, model health, cooldowns, suppressed cards."""

from __future__ import annotations

import argparse
import json
import sys
import time

from watcher.cli.common import add_config_arg, report_config_error, settings_from
from watcher.config import ConfigError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("status", help="agents, serving models, cooldowns, suppressed alerts")
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="stable machine-readable shape")
    p.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from watcher.status import StatusError, collect, render_text

    try:
        settings = settings_from(args)
    except ConfigError as exc:
        return report_config_error(exc, prog="status")
    from watcher.gateway.plugin import check_plugin
    from watcher.pins.store import PIN_FILENAME

    check = check_plugin(settings.gateway_config, settings.state_dir / PIN_FILENAME)
    try:
        data = collect(settings.state_dir, time.time(), plugin_check=check.to_json())
    except FileNotFoundError:
        print(
            f"status: no watcher state in {settings.state_dir} (has the daemon run yet?)",
            file=sys.stderr,
        )
        return 1
    except StatusError as exc:
        print(f"status: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(f"status: cannot read {exc.filename}: permission denied (run it as the "
              "service user, or as a member of its group)", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2) if args.json else render_text(data))
    return 0
