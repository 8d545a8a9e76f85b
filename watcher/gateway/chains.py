"""Agent fallback chains, read (never written) from the gateway's ``openclaw.json``.

Shapes accepted (JSON5: comments and trailing commas are fine):

- ``agents.defaults.model``: ``"provider/model"`` or ``{"primary": ..., "fallbacks": [...]}``.
- ``agents.entries.<agentId>.model``: the same two shapes.
- legacy ``agents.list[]`` of ``{"id", "model"[, "fallbacks"]}``.
- an agent-level ``"fallbacks": [...]`` next to a string ``model`` (older configs).

Inheritance: an agent whose model is a plain string keeps the defaults' fallbacks;
an object with ``fallbacks`` replaces them; an agent with no model at all runs on the
defaults. Chain order is primary, then fallbacks, with duplicates removed.

Known drift: openclaw 2026.9.6 itself gives a plain-string model (or an object without
``fallbacks``) *no* fallbacks (``resolveAgentModelFallbacksOverride``). The breaker's
cut is built on the reading above, so both change together (the config-drift work);
meanwhile the gateway plugin refuses, and logs, a pin outside the gateway's own chain.

``parse_gateway_config`` is pure and reports every problem at once in a
``GatewayConfigError``. ``ChainSource`` adds the file: it reloads when the file
changes and keeps the last good chains when a new version is broken.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import json5

DEFAULT_AGENT_ID = "main"

# json-five logs every parsed value at DEBUG; openclaw.json holds API keys.
logging.getLogger("json5").setLevel(logging.WARNING)


class GatewayConfigError(ValueError):
    """``openclaw.json`` could not be read as chains; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class ProviderEndpoint:
    """``models.providers.<id>`` minus the secret: ``api_key`` is kept out of repr."""

    id: str
    base_url: str | None
    api: str | None
    models: tuple[str, ...] = ()
    api_key: str | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class GatewayConfig:
    chains: Mapping[str, tuple[str, ...]]  # agent id -> primary first
    providers: Mapping[str, ProviderEndpoint]
    default_chain: tuple[str, ...] | None = None

    def agents_using(self, model: str) -> list[str]:
        return sorted(agent for agent, chain in self.chains.items() if model in chain)


def _dedup(refs: list[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for ref in refs:
        seen.setdefault(ref, None)
    return tuple(seen)


def _check_ref(ref: Any, where: str, problems: list[str]) -> str | None:
    if not isinstance(ref, str) or "/" not in ref.strip("/") or ref != ref.strip():
        problems.append(f"{where}: {ref!r} is not a provider/model ref")
        return None
    return ref


def _model_spec(
    spec: Any, where: str, problems: list[str]
) -> tuple[str | None, list[str] | None]:
    """Returns (primary, fallbacks or None when not given)."""
    if isinstance(spec, str):
        return _check_ref(spec, where, problems), None
    if isinstance(spec, Mapping):
        primary = _check_ref(spec.get("primary"), f"{where}.primary", problems)
        raw = spec.get("fallbacks")
        if raw is None:
            return primary, None
        if not isinstance(raw, list):
            problems.append(f"{where}.fallbacks must be a list")
            return primary, None
        fallbacks = [
            ref
            for i, item in enumerate(raw)
            if (ref := _check_ref(item, f"{where}.fallbacks[{i}]", problems)) is not None
        ]
        return primary, fallbacks
    problems.append(f"{where} must be a \"provider/model\" string or {{primary, fallbacks}}")
    return None, None


def parse_gateway_config(text: str) -> GatewayConfig:
    try:
        data = json5.loads(text)
    except Exception as exc:  # json5 raises several exception types
        raise GatewayConfigError([f"not valid JSON5: {exc}"]) from exc
    if not isinstance(data, Mapping):
        raise GatewayConfigError(["top level must be an object"])
    problems: list[str] = []
    agents = data.get("agents") or {}
    if not isinstance(agents, Mapping):
        raise GatewayConfigError(["agents must be an object"])

    default_primary: str | None = None
    default_fallbacks: list[str] = []
    defaults = agents.get("defaults") or {}
    if isinstance(defaults, Mapping) and "model" in defaults:
        default_primary, fb = _model_spec(defaults["model"], "agents.defaults.model", problems)
        default_fallbacks = fb or []
    default_chain = (
        _dedup([default_primary, *default_fallbacks]) if default_primary is not None else None
    )

    declared: dict[str, Mapping[str, Any]] = {}
    legacy = agents.get("list")
    if legacy is not None:
        if not isinstance(legacy, list):
            problems.append("agents.list must be a list")
        else:
            for i, entry in enumerate(legacy):
                if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
                    problems.append(f"agents.list[{i}] needs a string id")
                    continue
                declared[entry["id"]] = entry
    entries = agents.get("entries")
    if entries is not None:
        if not isinstance(entries, Mapping):
            problems.append("agents.entries must be an object")
        else:
            for agent_id, entry in entries.items():  # entries win over the legacy list
                if not isinstance(entry, Mapping):
                    problems.append(f"agents.entries.{agent_id} must be an object")
                    continue
                declared[str(agent_id)] = entry

    chains: dict[str, tuple[str, ...]] = {}
    for agent_id, entry in declared.items():
        where = f"agent {agent_id!r}"
        if "model" not in entry:
            if default_chain is None:
                problems.append(f"{where} has no model and there is no agents.defaults.model")
            else:
                chains[agent_id] = default_chain
            continue
        primary, fallbacks = _model_spec(entry["model"], f"{where} model", problems)
        if fallbacks is None and isinstance(entry.get("fallbacks"), list):
            _, fallbacks = _model_spec(
                {"primary": primary, "fallbacks": entry["fallbacks"]}, where, problems
            )
        if primary is None:
            continue
        chains[agent_id] = _dedup(
            [primary, *(fallbacks if fallbacks is not None else default_fallbacks)]
        )
    if not declared and default_chain is not None:
        chains[DEFAULT_AGENT_ID] = default_chain

    providers: dict[str, ProviderEndpoint] = {}
    raw_providers = (data.get("models") or {}).get("providers") or {}
    if isinstance(raw_providers, Mapping):
        for pid, spec in raw_providers.items():
            if not isinstance(spec, Mapping):
                problems.append(f"models.providers.{pid} must be an object")
                continue
            models = tuple(
                str(m.get("id")) for m in spec.get("models") or [] if isinstance(m, Mapping)
            )
            key = spec.get("apiKey")
            providers[str(pid)] = ProviderEndpoint(
                id=str(pid),
                base_url=spec.get("baseUrl"),
                api=spec.get("api"),
                models=models,
                api_key=key if isinstance(key, str) else None,
            )
    if not chains and not problems:
        problems.append("no agents and no agents.defaults.model: nothing to watch")
    if problems:
        raise GatewayConfigError(problems)
    return GatewayConfig(chains=chains, providers=providers, default_chain=default_chain)


def load_gateway_config(path: Path) -> GatewayConfig:
    return _load(path)[0]


def _load(path: Path) -> tuple[GatewayConfig, str]:
    """The config and the sha256 of the bytes it was read from (who wrote them is
    told by ``watcher.gateway.writers``)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise GatewayConfigError([f"cannot read {path}: {exc.strerror or exc}"]) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GatewayConfigError([f"{path} is not UTF-8 text: {exc}"]) from exc
    return parse_gateway_config(text), hashlib.sha256(data).hexdigest()


class ChainSource:
    """The gateway config file, reloaded when it changes; the last good one is kept.

    ``poll()`` returns ``(config, error)``: ``error`` is set (and ``config`` is the last
    good one) when the file changed into something unreadable. The first load raises.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp = self._stat()
        self.config, self.sha256 = _load(self.path)

    @property
    def stamp(self) -> tuple[int, int, int, int] | None:
        """(inode, size, mtime, ctime) of the file as last polled: it changes with it."""
        return self._stamp

    def _stat(self) -> tuple[int, int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def poll(self) -> tuple[GatewayConfig, GatewayConfigError | None]:
        stamp = self._stat()
        if stamp == self._stamp:
            return self.config, None
        self._stamp = stamp
        try:
            self.config, self.sha256 = _load(self.path)
        except GatewayConfigError as exc:
            return self.config, exc
        return self.config, None
