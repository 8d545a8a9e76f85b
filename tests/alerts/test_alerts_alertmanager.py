"""The Alertmanager sender against Debian's real Alertmanager on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.alerts.conftest import UTC, alert
from tests.alerts.test_alerts_am_feed import FALLBACK, PRIMARY, World
from tests.rigs.servers import Alertmanager, free_port
from watcher.alerts.alertmanager import AlertmanagerConfig, AlertmanagerSender, attach
from watcher.alerts.intake import AlertIntake
from watcher.alerts.outbox import Outbox
from watcher.core.transitions import TransitionType as T
from watcher.support.metrics import Metrics


@pytest.fixture
def am(tmp_path: Path) -> Iterator[Alertmanager]:
    server = Alertmanager(tmp_path).start()
    yield server  # type: ignore[misc]
    server.stop()


def _wired(
    tmp_path: Path, urls: list[str], **config: float
) -> tuple[AlertIntake, AlertmanagerSender, Metrics]:
    metrics = Metrics()
    intake = AlertIntake(Outbox(tmp_path / "outbox.sqlite3"), tz=UTC, metrics=metrics.alerts)
    settings = AlertmanagerConfig(
        urls=urls, instance="vps-a", backoff_base_s=0.05, backoff_max_s=0.2, **config
    )
    sender = attach(settings, intake, metrics.sinks)
    assert sender is not None
    return intake, sender, metrics


def _away() -> tuple[World, float]:
    """A world whose agent is on its fallback, and now."""
    world = World()
    world.agents["orchestrator"].serving = FALLBACK
    return world, time.time()


def _count(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(
        f"failover_watcher_sink_{name}", {"sink": "alertmanager"}
    )
    return float(value or 0.0)


async def _until(predicate, what: str, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(predicate):
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def test_a_fallback_fires_in_alertmanager_and_its_end_resolves_it(
    tmp_path: Path, am: Alertmanager
) -> None:
    intake, sender, metrics = _wired(tmp_path, [am.url])
    world = World()
    t0 = time.time()

    async def scenario() -> None:
        await sender.start()
        world.agents["orchestrator"].serving = FALLBACK
        intake.submit_many([(alert(ts=t0), [])], now=t0, state=world)
        await _until(lambda: am.alerts(alertname="FALLBACK_FIRED"), "the alert firing")
        (firing,) = am.alerts(alertname="FALLBACK_FIRED")
        assert firing["labels"] == {
            "alertname": "FALLBACK_FIRED", "agent": "orchestrator", "model": PRIMARY,
            "provider": "ollama", "failure_class": "throttle", "gateway": "vps-a",
        }
        assert firing["status"]["state"] == "active"
        assert firing["annotations"]["suppressed"] == "0"
        world.agents["orchestrator"].serving = PRIMARY
        intake.submit_many([], now=time.time(), state=world)
        await _until(lambda: not am.alerts(alertname="FALLBACK_FIRED"), "the alert resolved")
        await sender.stop()

    asyncio.run(scenario())
    assert _count(metrics, "sent_total") == 2 and _count(metrics, "pending") == 0
    intake.outbox.close()


def test_nothing_is_lost_while_alertmanager_is_down_and_it_is_retried_with_backoff(
    tmp_path: Path, am: Alertmanager
) -> None:
    intake, sender, metrics = _wired(tmp_path, [am.url])
    world, t0 = _away()
    am.stop()

    async def scenario() -> None:
        await sender.start()
        intake.submit_many([(alert(ts=t0), [])], now=t0, state=world)
        paid = alert(T.PAID_PROVIDER_SUCCESS, agent="hermes", from_model=FALLBACK, ts=t0)
        intake.submit_many([(paid, [])], now=t0 + 1, state=world)
        await _until(lambda: _count(metrics, "failed_total") >= 3, "retries")
        assert sender.queue.depth() == 2
        await asyncio.to_thread(am.start)
        await _until(lambda: len(am.alerts(gateway="vps-a")) == 2, "both delivered")
        await sender.stop()

    asyncio.run(scenario())
    assert sender.queue.counts() == {"sent": 2}
    intake.outbox.close()


def test_a_dead_peer_does_not_stop_the_live_one(tmp_path: Path, am: Alertmanager) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    intake, sender, metrics = _wired(tmp_path, [dead, am.url])
    world, t0 = _away()

    async def scenario() -> None:
        await sender.start()
        intake.submit_many([(alert(ts=t0), [])], now=t0, state=world)
        await _until(lambda: am.alerts(alertname="FALLBACK_FIRED"), "delivered to the live peer")
        await sender.stop()

    asyncio.run(scenario())
    assert _count(metrics, "failed_total") == 0  # one peer took it: a delivery
    intake.outbox.close()


def test_an_alert_alertmanager_refuses_is_dead_lettered_not_retried_forever(
    tmp_path: Path, am: Alertmanager
) -> None:
    intake, sender, metrics = _wired(tmp_path, [am.url])
    with intake.outbox.transaction() as db:  # an op no Alertmanager accepts: no labels
        db.execute(
            "INSERT INTO sink_queue (sink, enqueued_at, event, op, state) VALUES "
            "('alertmanager', 0, 'X', '{\"labels\": {}, \"annotations\": {}, "
            "\"starts_at\": 1.8e9, \"ends_at\": 1.8e9, \"ends_cap\": null}', 'pending')"
        )

    async def scenario() -> None:
        await sender.start()
        await _until(lambda: sender.queue.counts().get("dead") == 1, "the dead letter")
        await sender.stop()

    asyncio.run(scenario())
    assert _count(metrics, "dead_lettered_total") == 1
    with intake.outbox.reading() as db:
        (error,) = db.execute("SELECT last_error FROM sink_queue").fetchone()
    assert "HTTP 400" in error
    intake.outbox.close()


def test_firing_alerts_are_re_posted_before_their_ends_at_runs_out(
    tmp_path: Path, am: Alertmanager
) -> None:
    intake, sender, _ = _wired(tmp_path, [am.url], resend_interval_s=0.5)
    world, t0 = _away()

    async def scenario() -> None:
        await sender.start()
        intake.submit_many([(alert(ts=t0), [])], now=t0, state=world)
        await _until(lambda: am.alerts(alertname="FALLBACK_FIRED"), "firing")
        first, first_starts = (
            am.alerts(alertname="FALLBACK_FIRED")[0][k] for k in ("endsAt", "startsAt")
        )
        await _until(
            lambda: am.alerts(alertname="FALLBACK_FIRED")[0]["endsAt"] > first, "re-posted"
        )
        again = am.alerts(alertname="FALLBACK_FIRED")[0]
        assert again["startsAt"] == first_starts  # kept, not reset
        await sender.stop()

    asyncio.run(scenario())
    intake.outbox.close()


def test_waiting_on_the_network_never_blocks_the_producer(tmp_path: Path) -> None:
    """A black-holed peer: the sender waits out its timeout, the intake still queues."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # accepts into the backlog, never answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    intake, sender, _ = _wired(tmp_path, [url], timeout_s=2.0)
    world, t0 = _away()

    async def scenario() -> None:
        await sender.start()
        intake.submit_many([(alert(ts=t0), [])], now=t0, state=world)
        await asyncio.sleep(0.3)  # the post is now waiting on the peer
        loop = asyncio.get_running_loop()
        started = loop.time()
        paid = alert(T.PAID_PROVIDER_SUCCESS, agent="hermes", from_model=FALLBACK, ts=t0)
        await asyncio.to_thread(intake.submit_many, [(paid, [])], now=t0 + 1, state=world)
        assert loop.time() - started < 1.0
        await sender.stop()

    asyncio.run(scenario())
    assert sender.queue.depth() == 2
    listener.close()
    intake.outbox.close()
