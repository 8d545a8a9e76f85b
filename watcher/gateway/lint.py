"""The chain check: is every agent's chain resilient? Two deep, with a fallback on
another provider, every model declared. ``lint-config`` prints it; the daemon runs it
on every change of ``openclaw.json`` and announces what is new and what cleared."""

from __future__ import annotations

from watcher.gateway.chains import GatewayConfig

BUILTIN_PROVIDERS = frozenset({"ollama", "openai", "anthropic", "openrouter", "google"})


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
