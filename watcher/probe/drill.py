"""Chain drills: probe every member of every agent's chain, and say how deep each chain
really works. "Unexercised fallback is assumed fallback."

A drill uses the honest probe (``watcher.probe.client``: the model's identity is
checked, a 429 is a failure) through ``FailbackProber``, so the per-provider slots
and the daily probe budget hold as for failback probes. Paid models are left out
unless asked for: a drill must not spend money by default.

Per agent it reports each member (ok, failure class, latency), the **working depth**
(how many members answered) and whether a working fallback exists on a provider
other than the primary's. An agent is *degraded* when its working depth is below 2
or it has no working cross-provider fallback. A member left out (paid, over budget,
no provider settings) is not counted as working: it was not exercised.

``assess`` is pure (results in, report out); ``run_drill`` sends the probes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from watcher.core.events import DrillReported, DrillSummary
from watcher.core.evidence import ProbeResult
from watcher.probe.providers import ProviderDirectory
from watcher.probe.scheduler import FailbackProber, Prober, ResultSink

SCHEMA = 1
MIN_DEPTH = 2
SKIP_PAID = "paid (use --include-paid)"
SKIP_BUDGET = "daily probe budget spent"
SKIP_UNKNOWN = "no provider settings"


@dataclass(frozen=True, slots=True)
class MemberResult:
    model: str
    ok: bool
    failure_class: str | None = None
    latency_ms: int | None = None
    skipped: str | None = None  # why it was not probed (then ok is False)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "ok": self.ok,
            "failure_class": self.failure_class,
            "latency_ms": self.latency_ms,
            "skipped": self.skipped,
        }


@dataclass(frozen=True, slots=True)
class AgentDrill:
    agent: str
    members: tuple[MemberResult, ...]

    @property
    def working_depth(self) -> int:
        return sum(1 for m in self.members if m.ok)

    @property
    def cross_provider_ok(self) -> bool:
        primary_provider = self.members[0].model.partition("/")[0]
        return any(
            m.ok and m.model.partition("/")[0] != primary_provider for m in self.members[1:]
        )

    @property
    def degraded(self) -> bool:
        return self.working_depth < MIN_DEPTH or not self.cross_provider_ok

    def problems(self) -> list[str]:
        out = []
        if self.working_depth < MIN_DEPTH:
            out.append(f"working depth {self.working_depth} (needs {MIN_DEPTH})")
        if not self.cross_provider_ok:
            out.append("no working fallback on another provider")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "members": [m.to_json() for m in self.members],
            "working_depth": self.working_depth,
            "cross_provider_ok": self.cross_provider_ok,
        }


@dataclass(frozen=True, slots=True)
class DrillReport:
    started_at: float
    agents: Mapping[str, AgentDrill] = field(default_factory=dict)

    @property
    def degraded(self) -> list[str]:
        return sorted(a for a, d in self.agents.items() if d.degraded)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "agents": {a: d.to_json() for a, d in sorted(self.agents.items())},
        }


def assess(
    chains: Mapping[str, Sequence[str]],
    results: Mapping[str, ProbeResult],
    skipped: Mapping[str, str],
    started_at: float,
) -> DrillReport:
    """The report for these chains from the probe results (and why others were not
    probed). Pure."""
    agents: dict[str, AgentDrill] = {}
    for agent, chain in sorted(chains.items()):
        members: list[MemberResult] = []
        for ref in chain:
            result = results.get(ref)
            if result is None:
                members.append(MemberResult(ref, False, skipped=skipped.get(ref, SKIP_UNKNOWN)))
                continue
            members.append(MemberResult(
                ref,
                result.ok,
                None if result.ok else str(result.failure_class or "unknown"),
                round(result.latency_s * 1000),
            ))
        agents[agent] = AgentDrill(agent, tuple(members))
    return DrillReport(started_at, agents)


def drill_targets(
    chains: Mapping[str, Sequence[str]],
    directory: ProviderDirectory,
    *,
    include_paid: bool,
    paid_providers: Iterable[str] = (),
) -> tuple[list[str], dict[str, str]]:
    """Which models to probe, once each, and why the others are left out."""
    paid = set(paid_providers)
    targets: list[str] = []
    skipped: dict[str, str] = {}
    for chain in chains.values():
        for ref in chain:
            if ref in targets or ref in skipped:
                continue
            provider = directory.for_model(ref)
            if provider is None:
                skipped[ref] = SKIP_UNKNOWN
            elif (provider.paid or ref.partition("/")[0] in paid) and not include_paid:
                skipped[ref] = SKIP_PAID
            else:
                targets.append(ref)
    return targets, skipped


async def _discard(result: ProbeResult) -> None:
    return None


async def run_drill(
    chains: Mapping[str, Sequence[str]],
    directory: ProviderDirectory,
    client: Prober,
    *,
    include_paid: bool = False,
    paid_providers: Iterable[str] = (),
    prober: FailbackProber | None = None,
    on_result: ResultSink | None = None,
) -> DrillReport:
    """Probe the chains' members. With ``prober`` (the daemon's) the drill shares its
    slots and budget. Each result goes to ``on_result`` (health evidence for the
    daemon); without one, results are only reported."""
    targets, skipped = drill_targets(
        chains, directory, include_paid=include_paid, paid_providers=paid_providers
    )
    runner = prober or FailbackProber(client, directory, _discard)
    report = await runner.run_pass(targets, on_result=on_result or _discard)
    for ref in report.over_budget:
        skipped[ref] = SKIP_BUDGET
    for ref in report.unknown_provider:
        skipped[ref] = SKIP_UNKNOWN
    results = {r.model: r for r in report.results}
    return assess(chains, results, skipped, report.started_at)


def drill_reported(report: DrillReport) -> DrillReported:
    """The core's event for a finished drill: one compact summary per agent."""
    summaries = []
    for agent, drill in sorted(report.agents.items()):
        parts = []
        for m in drill.members:
            if m.skipped:
                parts.append(f"{m.model} not probed")
            elif m.ok:
                parts.append(f"{m.model} ok {m.latency_ms}ms")
            else:
                parts.append(f"{m.model} {m.failure_class}")
        summaries.append(DrillSummary(
            agent, drill.working_depth, len(drill.members), drill.cross_provider_ok,
            drill.degraded, ", ".join(parts),
        ))
    return DrillReported(tuple(summaries))


def render_text(report: DrillReport) -> str:
    lines: list[str] = []
    for agent, drill in sorted(report.agents.items()):
        verdict = "ok" if not drill.degraded else "DEGRADED: " + "; ".join(drill.problems())
        lines.append(
            f"{agent}: working depth {drill.working_depth}/{len(drill.members)}, "
            f"cross-provider fallback {'yes' if drill.cross_provider_ok else 'no'}: {verdict}"
        )
        for i, m in enumerate(drill.members):
            role = "primary  " if i == 0 else f"fallback{i}"
            if m.skipped:
                state = f"not probed: {m.skipped}"
            elif m.ok:
                state = f"ok in {m.latency_ms} ms"
            else:
                state = f"FAILED {m.failure_class} after {m.latency_ms} ms"
            lines.append(f"  {role}  {m.model:<40} {state}")
    degraded = report.degraded
    lines.append(
        f"drill: {len(report.agents)} agent(s), "
        + (f"{len(degraded)} degraded ({', '.join(degraded)})" if degraded else "none degraded")
    )
    return "\n".join(lines)
