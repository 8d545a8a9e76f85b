"""``failover-watcher run`` (the systemd service) and ``validate-config``."""

from __future__ import annotations

import argparse
import sys

from watcher.chains import GatewayConfigError, load_gateway_config
from watcher.cli.common import add_config_arg, report_config_error, settings_from
from watcher.config import ConfigError
from watcher.logsetup import setup_logging


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run the daemon (systemd ExecStart; sd_notify aware)")
    add_config_arg(p)
    p.set_defaults(func=cmd_run)
    v = sub.add_parser(
        "validate-config", help="check the config and the gateway's chains; list every error"
    )
    add_config_arg(v)
    v.set_defaults(func=cmd_validate)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        return report_config_error(exc, prog="run")
    setup_logging(settings.log_level)
    from watcher.daemon import run

    return run(settings)


def cmd_validate(args: argparse.Namespace) -> int:
    problems: list[str] = []
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        return report_config_error(exc, prog="validate-config")
    try:
        config = load_gateway_config(settings.gateway_config)
    except GatewayConfigError as exc:
        problems += [f"gateway config {settings.gateway_config}: {p}" for p in exc.problems]
        config = None
    if settings.alerts is not None:
        from watcher.alerts.config import TokenUnavailable, resolve_token

        try:
            resolve_token(settings.alerts.bot_token)
        except TokenUnavailable as exc:
            problems.append(f"alerts.bot_token: {exc}")
    if problems:
        print(f"validate-config: {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    agents = len(config.chains) if config else 0
    print(
        f"config ok: {agents} agent(s), state in {settings.state_dir}, "
        f"journal source {settings.journal.source}"
    )
    return 0
