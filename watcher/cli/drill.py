"""``failover-watcher drill [--config F | --openclaw F] [--agent A] [--include-paid] [--json]``,
and ``failover-watcher drill --live AGENT`` (``watcher.cli.drill_live``).

Probes every member of every agent's chain (``watcher.probe.drill``) and prints, per
agent, each member's result, the working depth and whether a working fallback exists
on another provider. Paid models are probed only with ``--include-paid`` (or
``[drill] include_paid``). Nothing is written: no pin moves, no state changes.

Exit codes: 0 every agent has a working depth of at least 2 and a working
cross-provider fallback; 1 some agent does not; 2 usage or config error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from watcher.cli.common import add_config_arg, report_config_error, settings_from
from watcher.config import ConfigError
from watcher.gateway.chains import GatewayConfigError, load_gateway_config
from watcher.probe.drill import DrillReport, render_text, run_drill
from watcher.probe.providers import ProviderConfig, ProviderDirectory


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "drill",
        help="probe every chain member and report each agent's working depth",
        description="Probe every member of every agent's chain with the honest probe and "
        "report the working depth and cross-provider fallback of each agent. Exit 0 all "
        "sound, 1 some agent degraded, 2 usage or config error.",
    )
    add_config_arg(p)
    p.add_argument("--openclaw", type=Path,
                   help="the gateway's openclaw.json (default: the config's gateway_config)")
    p.add_argument("--agent", action="append", metavar="A",
                   help="drill this agent only (repeat for several)")
    p.add_argument("--include-paid", action="store_true",
                   help="probe paid models too (they cost money)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per probe (default: [probes] timeout_s, 5)")
    p.add_argument("--json", action="store_true", help="print the report as JSON (schema 1)")
    p.add_argument("--live", metavar="AGENT",
                   help="through the gateway: hold AGENT on each member in turn, send one "
                   "real turn, confirm from the plugin's outcome line who served it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        return report_config_error(exc, prog="drill")
    if args.live is not None:
        from watcher.cli.drill_live import run_live

        return run_live(args, settings)
    path = (args.openclaw or settings.gateway_config).expanduser()
    try:
        gateway = load_gateway_config(path)
    except GatewayConfigError as exc:
        print(f"drill: {path} cannot be read as chains:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    chains = dict(gateway.chains)
    if args.agent:
        unknown = sorted(set(args.agent) - set(chains))
        if unknown:
            print(f"drill: no agent {', '.join(unknown)} in {path} "
                  f"(agents: {', '.join(sorted(chains))})", file=sys.stderr)
            return 2
        chains = {a: chains[a] for a in args.agent}
    timeout = args.timeout if args.timeout is not None else settings.probes.timeout_s
    if timeout <= 0:
        print("drill: --timeout must be positive", file=sys.stderr)
        return 2
    try:
        directory = ProviderDirectory.build(settings.providers, gateway.providers)
    except ValueError as exc:
        print(f"drill: provider settings: {exc}", file=sys.stderr)
        return 2
    report = asyncio.run(_drill(
        chains, directory, timeout,
        include_paid=args.include_paid or settings.drill.include_paid,
        paid=settings.policy.paid_providers | _paid(settings.providers),
    ))
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        print(render_text(report))
    return 1 if report.degraded else 0


def _paid(providers: dict[str, ProviderConfig]) -> frozenset[str]:
    return frozenset(pid for pid, p in providers.items() if p.paid)


async def _drill(
    chains: dict[str, tuple[str, ...]], directory: ProviderDirectory, timeout: float, *,
    include_paid: bool, paid: frozenset[str],
) -> DrillReport:
    from watcher.probe.client import ProbeClient, ProbeTimeouts

    async with ProbeClient(timeouts=ProbeTimeouts(total=timeout)) as client:
        return await run_drill(chains, directory, client, include_paid=include_paid,
                               paid_providers=paid)
