"""Scheduled drills in the daemon, against the loopback fake model server: one
DRILL_REPORT card per drill, CHAIN_DEGRADED once when an agent loses its depth or its
cross-provider fallback, the metrics, the status line, and the cron schedule on a
virtual clock."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from apscheduler.triggers.cron import CronTrigger

from watcher.config import load_settings
from watcher.fakes.models import FakeModelServer, Reply
from watcher.shell.loop import Daemon
from watcher.shell.watcher import Watcher
from watcher.status import collect, render_text

CHAINS = {
    "alpha": ["ollama/p1", "other/f1", "third/f2"],
    "beta": ["ollama/p2", "ollama/f3", "other/busy"],
}


@pytest.fixture
def fake(threaded_models: FakeModelServer) -> FakeModelServer:
    return threaded_models


def world(root: Path, fake: FakeModelServer, schedule: str | None = None) -> Path:
    providers = {
        pid: {"api": "ollama", "baseUrl": fake.base_url(pid), "apiKey": f"fake-{pid}"}
        for pid in ("ollama", "other", "third")
    }
    agents = {a: {"model": {"primary": c[0], "fallbacks": c[1:]}} for a, c in CHAINS.items()}
    (root / "openclaw.json").write_text(
        json.dumps({"models": {"providers": providers}, "agents": {"entries": agents}}))
    (root / "log.txt").write_text("")
    config = root / "watcher.toml"
    config.write_text(
        f'state_dir = "{root / "state"}"\ngateway_config = "{root / "openclaw.json"}"\n'
        f'[journal]\nsource = "file:{root / "log.txt"}"\nstart_at = "head"\n'
        "[probes]\nenabled = false\n[metrics]\nenabled = false\n[plugin]\nrequired = false\n"
        + (f'[drill]\nschedule = "{schedule}"\n' if schedule else "")
    )
    return config


def cards(watcher: Watcher, event: str) -> list[str]:
    return [c.text for c in watcher.intake.outbox.cards() if c.event == event]


def test_a_drill_reports_every_agent_and_a_lost_fallback_once(
    tmp_path: Path, fake: FakeModelServer
) -> None:
    watcher = Watcher.open(load_settings(world(tmp_path, fake)))
    daemon = Daemon(watcher)
    try:
        first = asyncio.run(daemon.drill_once())
        assert first.degraded == []
        assert len(cards(watcher, "DRILL_REPORT")) == 1 and cards(watcher, "CHAIN_DEGRADED") == []
        # The cross-provider fallback of beta starts throttling, and alpha's primary
        # (which it is served by) fails its probe too.
        fake.script("busy", probe=Reply.throttle("30"))
        fake.script("p1", probe=Reply.failing(503, "overloaded"))
        second = asyncio.run(daemon.drill_once())
        assert second.degraded == ["beta"]
        (degraded,) = cards(watcher, "CHAIN_DEGRADED")
        assert "beta" in degraded and "no working fallback on another provider" in degraded
        report = cards(watcher, "DRILL_REPORT")[-1]
        assert "beta: 2/3 working, cross-provider NO" in report
        # Health evidence for a model nobody is served by; none for a served one.
        assert watcher.state.models["other/busy"].failing
        assert not watcher.state.models["ollama/p1"].failing
        assert watcher.state.agents["alpha"].serving == "ollama/p1"  # no pin moved
        # Metrics and status.
        depth = watcher.metrics.registry.get_sample_value(
            "failover_watcher_chain_working_depth", {"agent": "beta"})
        assert depth == 2
        assert watcher.metrics.registry.get_sample_value(
            "failover_watcher_drill_last_success_timestamp_seconds") is not None
        status = collect(watcher.state_dir, watcher.clock())
        assert status["drill"]["agents"]["beta"]["cross_provider_ok"] is False
        assert "Last drill: " in render_text(status) and "degraded: beta" in render_text(status)
        # Still degraded at the next drill: no second CHAIN_DEGRADED card.
        asyncio.run(daemon.drill_once())
        assert len(cards(watcher, "CHAIN_DEGRADED")) == 1
        assert len(cards(watcher, "DRILL_REPORT")) == 3
    finally:
        watcher.intake.outbox.close()


def test_the_cron_schedule_runs_the_drill_on_a_virtual_clock(
    tmp_path: Path, fake: FakeModelServer
) -> None:
    schedule = "0 6 * * mon"  # Mondays 06:00, the host's time zone
    trigger = CronTrigger.from_crontab(schedule)
    sunday = datetime(2026, 12, 6, 12, 0).astimezone()
    assert trigger.get_next_fire_time(None, sunday) == datetime(2026, 12, 7, 6, 0).astimezone()

    watcher = Watcher.open(load_settings(world(tmp_path, fake, schedule)))
    daemon = Daemon(watcher)
    just_before = datetime(2026, 12, 7, 6, 0).astimezone() - timedelta(seconds=1)

    async def scenario() -> None:
        scheduler = daemon._start_drills()
        assert scheduler is not None
        try:
            for _ in range(100):  # up to 10 s of real time; the drill is due in 1 s
                if cards(watcher, "DRILL_REPORT"):
                    return
                await asyncio.sleep(0.1)
        finally:
            scheduler.shutdown(wait=False)

    try:
        with time_machine.travel(just_before, tick=True):
            asyncio.run(scenario())
        assert len(cards(watcher, "DRILL_REPORT")) == 1
    finally:
        watcher.intake.outbox.close()


def test_a_bad_schedule_is_a_config_error(tmp_path: Path, fake: FakeModelServer) -> None:
    from watcher.config import ConfigError

    with pytest.raises(ConfigError, match="not a cron schedule"):
        load_settings(world(tmp_path, fake, "every monday"))
