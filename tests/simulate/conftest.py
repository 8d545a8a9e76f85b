"""Runs each bundled scenario under each policy once per test session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from watcher.simulate import find_scenario, policy_for, run_scenario, summarize
from watcher.simulate.runner import SimulationResult

Run = tuple[SimulationResult, dict[str, Any]]


@pytest.fixture(scope="session")
def simulated() -> Callable[[str, str], Run]:
    cache: dict[tuple[str, str], Run] = {}

    def run(name: str, policy: str) -> Run:
        key = (name, policy)
        if key not in cache:
            scenario = find_scenario(name)
            result = run_scenario(scenario, policy_for(scenario, policy), policy)
            cache[key] = (result, summarize(result))
        return cache[key]

    return run
