"""One probe cadence: the daemon probes on the same rule as ``simulate``.

The same bundled scenario runs twice on its virtual clock: once through the
simulator as it is, and once with every event applied by the daemon's real
``Watcher.apply`` (snapshot, pin store, audit, outbox and all), whose probes come
only from what the shell hands its probe scheduler. If the daemon probed on a timer
of its own, or ignored the core's ``RequestProbes``, the pin changes (above all the
probe-driven failbacks) would differ.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.rigs.file_world import write_file_world
from watcher.config import load_settings
from watcher.shell.watcher import Watcher
from watcher.simulate import bundled_names, find_scenario, policy_for
from watcher.simulate.runner import _PROBES_ASKED, Simulation, SimulationResult


class RequestedProbes:
    """The daemon's probe scheduler, as the simulator runs probes: each model the shell
    hands over is probed now, on the scenario's answers."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.requested: list[tuple[float, str]] = []

    def request(self, models: Iterable[str]) -> None:
        for model in models:
            self.requested.append((self.sim.now, model))
            self.sim._push(self.sim.now, _PROBES_ASKED, model)


class ThroughTheDaemon(Simulation):
    """The scenario's gateway and probes, with the daemon's shell deciding."""

    def __init__(self, *args: Any, root: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        root.mkdir(parents=True, exist_ok=True)
        write_file_world(root, self.scenario.chains)
        settings = load_settings(root / "watcher.toml", policy=self.policy)
        # Start-up decides once (the chain check's baseline), which the simulator does
        # not: its jitter comes from a throwaway RNG, then both share one stream.
        self.watcher = Watcher.open(settings, clock=lambda: self.now, rng=random.Random(0))
        self.watcher.rng = self.rng
        self.probes = RequestedProbes(self)
        self.watcher.scheduler = self.probes  # type: ignore[assignment]

    def _apply(self, event: Any) -> None:
        self.watcher.apply([event], now=self.now)
        self.state = self.watcher.state
        self._write_pins()


def failbacks(result: SimulationResult, chains: dict[str, tuple[str, ...]]) -> list[Any]:
    return [c for c in result.pin_changes if c.to_model == chains[c.agent][0]]


@pytest.mark.parametrize("name", bundled_names())
def test_the_daemon_and_the_simulator_fail_back_at_the_same_moments(
    name: str, tmp_path: Path
) -> None:
    scenario = find_scenario(name)
    policy = policy_for(scenario, "default", None)
    alone = Simulation(scenario, policy, "default", tmp_path / "sim").run()

    (tmp_path / "sim2").mkdir()
    daemon = ThroughTheDaemon(scenario, policy, "default", tmp_path / "sim2",
                              root=tmp_path / "daemon")
    through = daemon.run()
    daemon.watcher.intake.outbox.close()

    chains = {a: tuple(c) for a, c in scenario.chains.items()}
    assert failbacks(alone, chains), "the scenario must contain probe-driven failbacks"
    assert [(round(c.t, 3), c.agent, c.from_model, c.to_model) for c in through.pin_changes] \
        == [(round(c.t, 3), c.agent, c.from_model, c.to_model) for c in alone.pin_changes]
    assert through.probes == alone.probes and daemon.probes.requested
    # and the probes were asked for only on the core's rule: never twice for one model
    # inside one probe interval
    last: dict[str, float] = {}
    for t, model in daemon.probes.requested:
        assert model not in last or t - last[model] >= policy.probe_interval_s, (model, t)
        last[model] = t


def test_the_probe_interval_is_one_setting() -> None:
    from watcher.config import ConfigError, WatcherSettings

    assert WatcherSettings(probes={"interval_s": 7}).policy.probe_interval_s == 7
    assert WatcherSettings(policy={"probe_interval_s": 9}).policy.probe_interval_s == 9
    with pytest.raises((ConfigError, ValueError), match="one cadence"):
        WatcherSettings(probes={"interval_s": 7}, policy={"probe_interval_s": 9})
