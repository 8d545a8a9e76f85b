"""``failover-watcher lint-config [openclaw.json]``: are the fallback chains resilient?

Every agent's chain must be at least two deep with at least one fallback on a
different provider (one-deep fallback within a provider is rebranding, not
fallback). Models of providers the config does not declare are reported too.
Exit 1 on findings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from watcher.chains import GatewayConfig, GatewayConfigError, load_gateway_config

BUILTIN_PROVIDERS = frozenset({"ollama", "openai", "anthropic", "openrouter", "google"})


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("lint-config", help="check chains: two deep, another provider")
    p.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=Path("~/.openclaw/openclaw.json"),
        help="the gateway's openclaw.json (default ~/.openclaw/openclaw.json)",
    )
    p.set_defaults(func=cmd_lint)


def findings(config: GatewayConfig) -> list[str]:
    out: list[str] = []
    for agent, chain in sorted(config.chains.items()):
        providers = [ref.partition("/")[0] for ref in chain]
        if len(chain) < 2:
            out.append(f"{agent}: chain {list(chain)} has no fallback (needs two deep)")
        elif len(chain) < 3:
            out.append(f"{agent}: chain {list(chain)} is one fallback deep (needs two)")
        if len(set(providers)) < 2:
            out.append(
                f"{agent}: every model is on provider {providers[0]!r}; "
                "put at least one fallback on another provider"
            )
        for ref in chain:
            provider = ref.partition("/")[0]
            declared = config.providers.get(provider)
            if declared is None and provider not in BUILTIN_PROVIDERS:
                out.append(f"{agent}: {ref}: provider {provider!r} is not in models.providers")
            elif (
                declared is not None
                and declared.models
                and ref.partition("/")[2] not in declared.models
            ):
                out.append(f"{agent}: {ref}: model not listed under models.providers.{provider}")
    return out


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
    for line in found:
        print(line)
    if found:
        print(f"lint-config: {len(found)} finding(s) in {path}", file=sys.stderr)
        return 1
    print(f"lint-config: {len(config.chains)} agent(s), every chain two deep across providers")
    return 0
