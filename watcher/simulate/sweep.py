"""``simulate --seeds 1-20``: every scenario under every policy, once per seed.

One seed is one possible afternoon: the agents' request phases and the cooldown
jitter change with it, so a policy that is lucky on the scenario's own seed can still
be caught out. Per scenario and policy the sweep reports, over all seeds:

- **failback after recovery** (worst and median, minutes): for each incident (a
  stretch where the primary's real traffic fails) and each agent pinned away when it
  ends, the time from the primary's real recovery to the agent's pin being back on
  it (to the end of the run when it never comes back);
- **failbacks into failure** (worst, per agent per incident): flips back to a primary
  whose real traffic was still failing, counted in the incident they fell in;
- **paid minutes** (median and worst): time agents spent pinned to a paid provider;
- **turns into a failing primary** (median and worst): real requests that called the
  primary while its traffic failed, each one costing the gateway's same-model retries
  before it fell back (the price of a flap, or of half-open trial turns); and of
  those, the failed trial turns (worst).

Everything is measured against the scenario's truth (its timeline), like the rest of
``watcher.simulate.report``.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from watcher.simulate.model import Scenario
from watcher.simulate.policies import policy_for
from watcher.simulate.report import summarize
from watcher.simulate.runner import SimulationResult, run_scenario

DEFAULT_SEEDS = range(1, 21)


def parse_seeds(text: str) -> list[int]:
    """``1-20``, ``7``, or ``1,4,9-12``: the seeds to sweep, in order, no repeats."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise ValueError(f"--seeds: {part!r} is not a seed or a range like 1-20") from None
        if first < 0 or last < first:
            raise ValueError(f"--seeds: {part!r} is not an increasing range of seeds >= 0")
        seeds.extend(s for s in range(first, last + 1) if s not in seeds)
    if not seeds:
        raise ValueError("--seeds: no seeds given (for example 1-20)")
    return seeds


def incidents(scenario: Scenario, model: str) -> list[tuple[float, float]]:
    """The stretches where ``model``'s real traffic fails, merged, in order."""
    out: list[tuple[float, float]] = []
    points = scenario.change_points(model)
    for a, b in itertools.pairwise(points):
        if scenario.traffic_answer(model, a).ok:
            continue
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


@dataclass(frozen=True, slots=True)
class RunMeasures:
    """One run's measures (one scenario, one policy, one seed)."""

    failback_after_recovery_s: tuple[float, ...]  # one per (agent, incident) away at its end
    worst_into_failure: int  # the most failbacks into failure of one agent in one incident
    paid_minutes: float
    hit_failing: int  # requests that called the primary while it failed
    failed_trials: int  # of those, trial turns


def measure(result: SimulationResult) -> RunMeasures:
    sc = result.scenario
    delays: list[float] = []
    into: Counter[tuple[str, int]] = Counter()
    for agent, chain in sorted(sc.chains.items()):
        primary = chain[0]
        changes = sorted((c.t, c.to_model) for c in result.pin_changes if c.agent == agent)
        stretches = incidents(sc, primary)
        windows = [(a, b) for a, b in stretches if b < sc.end]
        for i, (a, b) in enumerate(stretches):
            for t, model in changes:
                if model == primary and a <= t < b:
                    into[(agent, i)] += 1
        for _a, recovered in windows:
            pin = primary
            for t, model in changes:
                if t > recovered:
                    break
                pin = model
            if pin == primary:
                continue
            back = next(
                (t for t, model in changes if t > recovered and model == primary), sc.end
            )
            delays.append(back - recovered)
    return RunMeasures(
        tuple(delays),
        max(into.values(), default=0),
        float(summarize(result)["totals"]["paid_minutes"]),
        sum(r.hit_failing_primary for r in result.requests),
        sum(r.hit_failing_primary and r.trial for r in result.requests),
    )


@dataclass(frozen=True, slots=True)
class SweepRow:
    scenario: str
    policy: str
    seeds: int
    worst_failback_min: float | None  # None: no agent was away at a recovery
    median_failback_min: float | None
    worst_into_failure: int
    median_paid_min: float
    worst_paid_min: float
    median_hit_failing: float
    worst_hit_failing: int
    worst_failed_trials: int

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "policy": self.policy,
            "seeds": self.seeds,
            "worst_failback_after_recovery_minutes": self.worst_failback_min,
            "median_failback_after_recovery_minutes": self.median_failback_min,
            "worst_failbacks_into_failure_per_agent_incident": self.worst_into_failure,
            "median_paid_minutes": self.median_paid_min,
            "worst_paid_minutes": self.worst_paid_min,
            "median_turns_into_failing_primary": self.median_hit_failing,
            "worst_turns_into_failing_primary": self.worst_hit_failing,
            "worst_failed_trial_turns": self.worst_failed_trials,
        }


def sweep(
    scenarios: Iterable[Scenario],
    policies: Sequence[str] = ("original", "naive", "default"),
    seeds: Iterable[int] = DEFAULT_SEEDS,
) -> list[SweepRow]:
    """Each scenario under each policy, once per seed (the scenario's own seed is
    replaced by each of ``seeds``)."""
    chosen = list(seeds)
    rows: list[SweepRow] = []
    for scenario in scenarios:
        for name in policies:
            runs = []
            for seed in chosen:
                seeded = replace(scenario, seed=seed)
                runs.append(measure(run_scenario(seeded, policy_for(seeded, name), name)))
            delays = [d / 60.0 for run in runs for d in run.failback_after_recovery_s]
            paid = [run.paid_minutes for run in runs]
            rows.append(SweepRow(
                scenario.name,
                name,
                len(chosen),
                round(max(delays), 2) if delays else None,
                round(statistics.median(delays), 2) if delays else None,
                max(run.worst_into_failure for run in runs),
                round(statistics.median(paid), 2),
                round(max(paid), 2),
                statistics.median(run.hit_failing for run in runs),
                max(run.hit_failing for run in runs),
                max(run.failed_trials for run in runs),
            ))
    return rows


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def format_sweep(rows: Sequence[SweepRow]) -> str:
    """The sweep as a table (the README carries one)."""
    minutes = _minutes
    head = ("scenario", "policy", "failback after recovery, min (worst / median)",
            "failbacks into failure (worst)", "paid min (median / worst)",
            "turns into failing primary (median / worst)", "failed trial turns (worst)")
    body = [
        (r.scenario, r.policy,
         f"{minutes(r.worst_failback_min)} / {minutes(r.median_failback_min)}",
         str(r.worst_into_failure), f"{r.median_paid_min:g} / {r.worst_paid_min:g}",
         f"{r.median_hit_failing:g} / {r.worst_hit_failing}", str(r.worst_failed_trials))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]
    seeds = rows[0].seeds if rows else 0
    lines = [f"{seeds} seed(s) per scenario and policy"]
    lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
    for row in body:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


README_START = "<!-- sweep-table -->"
README_END = "<!-- /sweep-table -->"


def format_sweep_markdown(rows: Sequence[SweepRow]) -> str:
    """The sweep as the README's Markdown table (``scripts/sweep-table`` writes it)."""
    minutes = _minutes
    out = [
        "| scenario | policy | failback after recovery, min (worst / median) "
        "| into failure (worst) | paid min (median / worst) "
        "| turns into failing primary (median / worst) | failed trial turns (worst) |",
        "|---|---|---|---|---|---|---|",
    ]
    previous = None
    for r in rows:
        name = f"`{r.scenario}`" if r.scenario != previous else ""
        previous = r.scenario
        out.append(
            f"| {name} | {r.policy} "
            f"| {minutes(r.worst_failback_min)} / {minutes(r.median_failback_min)} "
            f"| {r.worst_into_failure} | {r.median_paid_min:g} / {r.worst_paid_min:g} "
            f"| {r.median_hit_failing:g} / {r.worst_hit_failing} | {r.worst_failed_trials} |"
        )
    return "\n".join(out)


def replace_readme_table(text: str, table: str) -> str:
    """``text`` with the block between the sweep-table markers replaced by ``table``."""
    start = text.index(README_START) + len(README_START)
    end = text.index(README_END)
    return text[:start] + "\n" + table + "\n" + text[end:]
