"""``failover-watcher probe MODEL``: one probe, the classified result, never the key.

Provider settings come from, lowest to highest priority: the gateway's
``openclaw.json`` ``models.providers`` (``--openclaw``, default
``~/.openclaw/openclaw.json`` when it exists), the watcher config's
``[providers.<id>]`` tables (``--config``, TOML), and ``--base-url``/``--api``.
Exit 0 if the probe succeeded, 1 if it failed, 2 on a usage or config error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import json5

from watcher.core.evidence import ProbeResult
from watcher.probe.providers import (
    ProviderConfig,
    ProviderConfigError,
    ProviderDirectory,
    parse_provider_configs,
)

DEFAULT_OPENCLAW = Path("~/.openclaw/openclaw.json")
API_ALIASES = {
    "ollama": "ollama",
    "openai": "openai-completions",
    "openai-completions": "openai-completions",
    "openai-responses": "openai-responses",
}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "probe",
        help="probe one model now and print the classified result",
        description="Send one 1-token request to MODEL (provider/model) the way the "
        "failback pass does, and print what it found. Exit 0 ok, 1 failed, 2 usage.",
    )
    p.add_argument("model", metavar="MODEL", help="provider/model, as in the agent chains")
    p.add_argument("--config", type=Path, help="watcher config (TOML, [providers.<id>])")
    p.add_argument("--openclaw", type=Path, help="gateway openclaw.json (models.providers)")
    p.add_argument("--base-url", help="probe this endpoint instead of the configured one")
    p.add_argument("--api", choices=sorted(API_ALIASES), help="API the endpoint speaks")
    p.add_argument("--timeout", type=float, default=5.0, help="total seconds (default 5)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


@contextlib.contextmanager
def _json5_quiet() -> Iterator[None]:
    """json-five logs every parsed node at DEBUG, apiKey values included: mute it."""
    logger = logging.getLogger("json5")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _gateway_providers(path: Path | None) -> dict[str, Any]:
    explicit = path is not None
    path = (path or DEFAULT_OPENCLAW).expanduser()
    if not explicit and not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
        with _json5_quiet():
            data = json5.loads(text)
    except OSError as exc:
        raise ProviderConfigError([f"cannot read {path}: {exc.strerror or exc}"]) from None
    except Exception as exc:  # json5 raises several types
        raise ProviderConfigError([f"{path} is not valid JSON5: {exc}"]) from None
    providers = (data.get("models") or {}).get("providers") if isinstance(data, dict) else None
    return dict(providers) if isinstance(providers, dict) else {}


def _watcher_overrides(path: Path | None) -> dict[str, ProviderConfig]:
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProviderConfigError([f"cannot read {path}: {exc.strerror or exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ProviderConfigError([f"{path} is not valid TOML: {exc}"]) from None
    return parse_provider_configs(data.get("providers") or {})


def build_directory(args: argparse.Namespace, provider_id: str) -> ProviderDirectory:
    overrides = _watcher_overrides(args.config)
    if args.base_url or args.api:
        base = overrides.get(provider_id, ProviderConfig())
        update: dict[str, Any] = {}
        if args.base_url:
            update["base_url"] = args.base_url
        if args.api:
            update["api"] = API_ALIASES[args.api]
        merged = {**base.model_dump(exclude_unset=True), **update}
        overrides.update(parse_provider_configs({provider_id: merged}))
    return ProviderDirectory.build(overrides, _gateway_providers(args.openclaw))


def render(result: ProbeResult) -> str:
    if result.ok:
        served = f" (answered by {result.served_model})" if result.served_model else ""
        note = f": {result.detail}" if result.detail not in ("", "answered") else ""
        return f"{result.model}: ok in {result.latency_s:.3f} s{served}{note}"
    parts = [f"{result.model}: FAILED {result.failure_class}"]
    if result.status is not None:
        parts.append(f"HTTP {result.status}")
    if result.retry_after_s is not None:
        parts.append(f"retry after {result.retry_after_s:.0f} s")
    parts.append(f"after {result.latency_s:.3f} s")
    return " ".join(parts) + (f": {result.detail}" if result.detail else "")


def result_json(result: ProbeResult) -> dict[str, Any]:
    data = asdict(result)
    data["failure_class"] = result.failure_class.value if result.failure_class else None
    return data


async def _probe(args: argparse.Namespace, directory: ProviderDirectory) -> ProbeResult | None:
    from watcher.probe.client import ProbeClient, ProbeTimeouts

    provider = directory.for_model(args.model)
    if provider is None:
        return None
    async with ProbeClient(timeouts=ProbeTimeouts(total=args.timeout)) as client:
        return await client.probe(args.model, provider)


def run(args: argparse.Namespace) -> int:
    provider_id, sep, name = args.model.partition("/")
    if not sep or not provider_id or not name:
        print(f"probe: {args.model!r} is not a provider/model ref", file=sys.stderr)
        return 2
    if args.timeout <= 0:
        print("probe: --timeout must be positive", file=sys.stderr)
        return 2
    try:
        directory = build_directory(args, provider_id)
    except ProviderConfigError as exc:
        for problem in exc.problems:
            print(f"probe: {problem}", file=sys.stderr)
        return 2
    result = asyncio.run(_probe(args, directory))
    if result is None:
        print(
            f"probe: no settings for provider {provider_id!r}: give --base-url and --api, "
            "or --openclaw/--config",
            file=sys.stderr,
        )
        return 2
    if args.json:
        print(json.dumps(result_json(result), sort_keys=True))
    else:
        print(render(result))
    return 0 if result.ok else 1
