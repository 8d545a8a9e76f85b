"""``failover-watcher lint-config [openclaw.json]``: are the fallback chains resilient,
and does the gateway load the plugin that makes the pin steer?

Every agent's chain must be at least two deep with at least one fallback on a
different provider (one-deep fallback within a provider is rebranding, not
fallback). Models of providers the config does not declare are reported too. The
fallback-pin plugin must be loaded, enabled, allowed conversation access, pointed at
this watcher's pin file (``--config``), and the gateway's user must be able to read
that file (``watcher.gateway.plugin``); ``--no-plugin`` skips that part.
Exit 1 on findings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from watcher.cli.common import add_config_arg, report_config_error, settings_from
from watcher.config import ConfigError
from watcher.gateway.chains import GatewayConfigError, load_gateway_config
from watcher.gateway.lint import findings
from watcher.gateway.plugin import check_plugin


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("lint-config", help="check chains: two deep, another provider")
    p.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=Path("~/.openclaw/openclaw.json"),
        help="the gateway's openclaw.json (default ~/.openclaw/openclaw.json)",
    )
    add_config_arg(p)
    p.add_argument(
        "--no-plugin",
        action="store_true",
        help="check the chains only, not the fallback-pin plugin",
    )
    p.set_defaults(func=cmd_lint)


def cmd_lint(args: argparse.Namespace) -> int:
    path = args.path.expanduser()
    try:
        config = load_gateway_config(path)
    except GatewayConfigError as exc:
        print(f"lint-config: {path} cannot be read as chains:", file=sys.stderr)
        for p in exc.problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    found = findings(config)
    if not args.no_plugin:
        try:
            settings = settings_from(args)
        except ConfigError as exc:
            return report_config_error(exc, prog="lint-config")
        from watcher.pins.store import PIN_FILENAME

        plugin = check_plugin(path, settings.state_dir / PIN_FILENAME)
        found += [f"plugin: {problem}" for problem in plugin.problems]
    for line in found:
        print(line)
    if found:
        print(f"lint-config: {len(found)} finding(s) in {path}", file=sys.stderr)
        return 1
    plugin_note = "" if args.no_plugin else "; the fallback-pin plugin steers by this pin file"
    print(
        f"lint-config: {len(config.chains)} agent(s), every chain two deep across "
        f"providers{plugin_note}"
    )
    return 0
