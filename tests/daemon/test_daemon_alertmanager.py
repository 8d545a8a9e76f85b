"""The live daemon beside a real Alertmanager: the fleet's view of one gateway's incident.

Each test runs the daemon as a subprocess on a live journal (``DaemonRig``), with the
fake Bot API for Telegram and Debian's Alertmanager on loopback for the fleet."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.rigs.daemon_rig import DaemonRig
from tests.rigs.servers import Alertmanager
from tests.rigs.wait import wait_until
from watcher.demo import PRIMARY, watcher_config
from watcher.fakes.botapi import FakeBotApi

HEAD = "[model-fallback/decision] model fallback decision: decision="
FAIL = (
    f"{HEAD}candidate_failed requested={PRIMARY} candidate={PRIMARY} reason=server_error "
    "next=deepseek/deepseek-v4-flash detail=503 upstream unavailable"
)
OK = f"{HEAD}candidate_succeeded requested={PRIMARY} candidate={PRIMARY} reason=unknown next=none"


def _with_alertmanager(url: str, instance: str) -> Callable[[Path, str, FakeBotApi], str]:
    def config(root: Path, journal: str, bot: FakeBotApi) -> str:
        return watcher_config(root, journal, bot) + (
            f'\n[alertmanager]\nurls = ["{url}"]\ninstance = "{instance}"\n'
            "resend_interval_s = 2\nbackoff_base_s = 0.2\nbackoff_max_s = 1\n"
        )

    return config


@pytest.fixture
def am(tmp_path: Path) -> Iterator[Alertmanager]:
    server = Alertmanager(tmp_path).start()
    yield server  # type: ignore[misc]
    server.stop()


@pytest.fixture
def rig(tmp_path: Path, am: Alertmanager) -> Iterator[DaemonRig]:
    r = DaemonRig(tmp_path / "a", config_text=_with_alertmanager(am.url, "vps-a"))
    yield r
    r.close()


def _fallbacks(am: Alertmanager, **labels: str) -> list[dict[str, object]]:
    return am.alerts(alertname="FALLBACK_FIRED", **labels)


def test_a_live_fallback_fires_in_alertmanager_with_its_labels_and_recovery_resolves_it(
    rig: DaemonRig, am: Alertmanager
) -> None:
    rig.start()
    rig.journal.append(FAIL)
    rig.journal.flush()
    firing = wait_until(lambda: _fallbacks(am, agent="nexus"), what="FALLBACK_FIRED firing")
    (nexus,) = firing
    assert nexus["labels"] == {
        "alertname": "FALLBACK_FIRED",
        "agent": "nexus",
        "model": PRIMARY,
        "provider": "ollama",
        "failure_class": "server_error",
        "gateway": "vps-a",
    }
    notes = nexus["annotations"]
    assert isinstance(notes, dict) and "Fallback fired" in notes["summary"]
    assert notes["suppressed"] == "0" and "nexus" in notes["description"]
    assert {a["labels"]["agent"] for a in _fallbacks(am)} == {"nexus", "george"}  # type: ignore[index]

    rig.journal.append(OK)  # real traffic: the primary answers again
    rig.journal.flush()
    wait_until(lambda: not _fallbacks(am), what="FALLBACK_FIRED resolved")
    assert not rig.pins()["agents"]["nexus"]["in_fallback"]
    assert any("Recovered" in m.text for m in rig.bot.messages)
    metrics = rig.metrics()
    assert metrics["failover_watcher_sink_sent_total{sink=alertmanager}"] >= 4  # 2 fired, 2 ended
    assert metrics["failover_watcher_sink_pending{sink=alertmanager}"] == 0
    assert metrics["failover_watcher_sink_sent_total{sink=telegram}"] >= 2
    assert rig.stop() == 0


def test_alertmanager_down_for_a_while_loses_nothing_and_never_delays_telegram(
    rig: DaemonRig, am: Alertmanager
) -> None:
    am.stop()
    rig.start()
    rig.journal.append(FAIL)
    rig.journal.flush()
    began = time.monotonic()
    wait_until(lambda: any("Fallback fired" in m.text for m in rig.bot.messages), what="card")
    assert time.monotonic() - began < 5  # Telegram went on at once
    wait_until(
        lambda: rig.metrics()["failover_watcher_sink_failed_total{sink=alertmanager}"] >= 2,
        what="retries against the dead Alertmanager",
    )
    queued = rig.metrics()["failover_watcher_sink_pending{sink=alertmanager}"]
    assert queued >= 2

    rig.journal.append(OK)  # the incident ends while Alertmanager is still down
    rig.journal.flush()
    wait_until(lambda: any("Recovered" in m.text for m in rig.bot.messages), what="recovery card")
    assert rig.stop() == 0  # and the watcher restarts in between: the queue is durable
    rig.start()

    am.start()
    wait_until(
        lambda: rig.metrics()["failover_watcher_sink_pending{sink=alertmanager}"] == 0,
        timeout=20,
        what="the queue drained",
    )
    assert rig.metrics()["failover_watcher_sink_sent_total{sink=alertmanager}"] >= queued + 2
    assert _fallbacks(am) == []  # fired and ended, in order: nothing left firing
    assert rig.stop() == 0


def test_two_gateways_reach_one_alertmanager_kept_apart_by_the_gateway_label(
    tmp_path: Path, rig: DaemonRig, am: Alertmanager
) -> None:
    other = DaemonRig(tmp_path / "b", config_text=_with_alertmanager(am.url, "vps-b"))
    try:
        rig.start()
        other.start()
        for r in (rig, other):
            r.journal.append(FAIL)
            r.journal.flush()
        wait_until(
            lambda: {a["labels"]["gateway"] for a in _fallbacks(am, agent="nexus")}  # type: ignore[index]
            == {"vps-a", "vps-b"},
            what="both gateways' alerts",
        )
        other.journal.append(OK)  # only vps-b recovers
        other.journal.flush()
        wait_until(lambda: not _fallbacks(am, gateway="vps-b"), what="vps-b resolved")
        time.sleep(1)
        assert {a["labels"]["agent"] for a in _fallbacks(am, gateway="vps-a")} == {  # type: ignore[index]
            "nexus", "george"
        }
        assert rig.stop() == 0 and other.stop() == 0
    finally:
        other.close()
