"""The simulator: replay an incident through the real watcher on a virtual clock.

A scenario (TOML, format in ``scenarios/README.md``) says which agents run on which
chains, how much traffic they send, and what each model answers real traffic and
probes over time. ``run_scenario`` drives the real parser, taxonomy, decision core,
pin store, dedup and card renderer through it; ``summarize`` measures the result
against the scenario's truth; ``compare`` puts policies side by side (the table
``failover-watcher demo`` prints first).

Bundled scenarios live in this package (``watcher/simulate/scenarios/``), the single
source of truth: a clean checkout and an installed wheel find them the same way,
through ``importlib.resources``. The top-level ``scenarios/`` directory documents
the format.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from watcher.simulate.model import Scenario, ScenarioError
from watcher.simulate.policies import PolicyFileError, policy_for, read_policy_file
from watcher.simulate.report import (
    SCHEMA,
    CheckResult,
    ComparisonRow,
    check_expectations,
    comparison_row,
    format_comparison,
    format_text,
    summarize,
)
from watcher.simulate.runner import SimulationResult, run_scenario
from watcher.simulate.scenario import load_scenario, parse_scenario

__all__ = [
    "SCHEMA",
    "CheckResult",
    "ComparisonRow",
    "PolicyFileError",
    "Scenario",
    "ScenarioError",
    "SimulationResult",
    "bundled_names",
    "check_expectations",
    "compare",
    "comparison_row",
    "find_scenario",
    "format_comparison",
    "format_text",
    "load_scenario",
    "parse_scenario",
    "policy_for",
    "read_policy_file",
    "run_scenario",
    "simulate",
    "summarize",
]

SCENARIO_SUFFIX = ".toml"


def _bundled_dir() -> Path:
    return Path(str(resources.files("watcher.simulate").joinpath("scenarios")))


def bundled_names() -> list[str]:
    """The bundled scenarios' names, sorted (dated incidents first)."""
    directory = _bundled_dir()
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob(f"*{SCENARIO_SUFFIX}"))


def find_scenario(name_or_path: str | Path) -> Scenario:
    """A path to a scenario file, or the name of a bundled one."""
    path = Path(name_or_path)
    if path.suffix == SCENARIO_SUFFIX or path.exists():
        return load_scenario(path)
    bundled = _bundled_dir() / f"{name_or_path}{SCENARIO_SUFFIX}"
    if bundled.is_file():
        return load_scenario(bundled)
    known = ", ".join(bundled_names()) or "none found"
    raise ScenarioError(
        [f"no such file, and not a bundled scenario (bundled: {known})"], str(name_or_path)
    )


def simulate(
    scenario: Scenario, policy_name: str = "default", fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run ``scenario`` under ``policy_name`` (``default`` or ``naive``), or under the
    default policy overridden by ``fields`` (a policy file; ``policy_name`` is then
    only its label). The summary carries the scenario's expectations for a named
    policy under ``"expectations"``."""
    policy = policy_for(scenario, "default" if fields is not None else policy_name, fields)
    summary = summarize(run_scenario(scenario, policy, policy_name))
    if policy_name in scenario.expect and fields is None:
        checks = check_expectations(summary, scenario.expect[policy_name])
        summary["expectations"] = [
            {"check": c.check, "actual": c.actual, "held": c.held, "error": c.error}
            for c in checks
        ]
    return summary


def compare(
    scenarios: Iterable[Scenario | str] | None = None,
    policies: Sequence[str] = ("naive", "default"),
) -> list[ComparisonRow]:
    """Each scenario (default: every bundled one) under each named policy."""
    chosen = bundled_names() if scenarios is None else list(scenarios)
    rows: list[ComparisonRow] = []
    for item in chosen:
        scenario = item if isinstance(item, Scenario) else find_scenario(item)
        for name in policies:
            rows.append(comparison_row(simulate(scenario, name)))
    return rows
