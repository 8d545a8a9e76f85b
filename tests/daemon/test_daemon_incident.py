"""The real daemon as a subprocess against a live journal, the fake model server and
the fake Bot API: an incident lands in the pin file, a card, the metrics and status;
SIGTERM and restart lose nothing and repeat nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rigs.daemon_rig import DaemonRig as Rig
from tests.rigs.daemon_rig import wait_until
from watcher.audit import log as audit
from watcher.demo import CHAINS, DEMO_TOKEN, PRIMARY
from watcher.fakes.journal import journal_remote_binary
from watcher.fakes.models import Reply

pytestmark = pytest.mark.skipif(
    journal_remote_binary() is None, reason="systemd-journal-remote is not installed"
)

FAIL = (
    "[model-fallback/decision] model fallback decision: decision=candidate_failed "
    f"requested={PRIMARY} candidate={PRIMARY} reason=rate_limit "
    "next=deepseek/deepseek-v4-flash detail=429 rate_limit_exceeded"
)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


def test_a_throttle_incident_reaches_pin_card_metrics_and_status_and_survives_restart(
    rig: Rig,
) -> None:
    rig.start()
    rig.journal.append(FAIL)
    rig.journal.flush()

    pins = wait_until(
        lambda: (p := rig.pins())["agents"].get("nexus", {}).get("in_fallback") and p,
        what="pin moves",
    )
    assert pins["agents"]["nexus"]["current_serving"] == "deepseek/deepseek-v4-flash"
    assert pins["agents"]["george"]["current_serving"] == CHAINS["george"][1]
    assert pins["agents"]["hermes"]["in_fallback"] is False  # its primary is fine
    assert pins["agents"]["nexus"]["transient_throttle_until"] is not None

    cards = wait_until(lambda: len(rig.bot.messages) >= 2 and rig.bot.messages, what="cards")
    texts = "\n".join(m.text for m in cards)
    assert "Fallback fired" in texts and "nexus" in texts and "george" in texts
    assert "cooldown" in texts.lower()

    metrics = rig.metrics()
    assert metrics["failover_watcher_in_fallback{agent=nexus}"] == 1.0
    assert metrics["failover_watcher_in_fallback{agent=hermes}"] == 0.0
    assert (
        metrics["failover_watcher_events_total{decision=candidate_failed,failure_class=throttle}"]
        == 1.0
    )
    assert metrics["failover_watcher_cooldown_seconds{model=" + PRIMARY + "}"] > 0

    status = rig.status()
    assert status["agents"]["nexus"]["in_fallback"] is True
    assert status["agents"]["nexus"]["failure_class"] == "throttle"
    assert status["models"][PRIMARY]["cooldown_left_s"] > 0

    assert rig.stop() == 0
    sent_before = len(rig.bot.messages)

    rig.start()  # restart: state, position and outbox come back; nothing re-announced
    time.sleep(2.5)
    assert rig.pins()["agents"]["nexus"]["current_serving"] == "deepseek/deepseek-v4-flash"
    assert len(rig.bot.messages) == sent_before
    assert rig.status()["agents"]["nexus"]["in_fallback"] is True
    assert rig.stop() == 0

    result = audit.verify(rig.state / "audit.jsonl")
    assert result.ok, result.sentence()
    for log in rig.logs:
        assert DEMO_TOKEN not in log.read_text()


def test_probes_that_get_200_never_fail_back_while_real_traffic_is_throttled(
    tmp_path: Path,
) -> None:
    """The 20 May flap, end to end: the primary answers probes 200 but real traffic
    429. The pin stays on the fallback through the cooldown (extended by the second
    429), and only after it has passed do two good probes fail it back."""
    from watcher.pins.schema import from_iso

    rig = Rig(tmp_path)
    try:
        rig.fake.script(PRIMARY.partition("/")[2], probe=Reply.ok(), traffic=Reply.throttle("5"))
        rig.start()
        rig.journal.append(FAIL)
        rig.journal.flush()
        wait_until(
            lambda: rig.pins()["agents"].get("nexus", {}).get("in_fallback"), what="fallback"
        )
        time.sleep(2)
        rig.journal.append(FAIL)  # a long-running session still hits the 429
        rig.journal.flush()
        latest_until = 0.0
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            nexus = rig.pins()["agents"]["nexus"]
            if nexus["transient_throttle_until"]:
                latest_until = max(latest_until, from_iso(nexus["transient_throttle_until"]) or 0)
            if not nexus["in_fallback"]:
                break
            time.sleep(0.1)
        failed_back_at = time.time()
        assert not rig.pins()["agents"]["nexus"]["in_fallback"], "never failed back"
        assert latest_until > 0
        assert failed_back_at >= latest_until - 1.0  # pin-file times have 1 s resolution
        probes = rig.fake.requests_for(PRIMARY.partition("/")[2], probe=True)
        assert len(probes) >= 2
        # The RECOVERY card leaves through the outbox after the pin flips: wait for it.
        texts = wait_until(
            lambda: "Recovered" in (t := "\n".join(m.text for m in rig.bot.messages)) and t,
            what="the RECOVERY card",
        )
        assert texts.count("Fallback fired") == 1  # no flip back into the throttle
        assert rig.stop() == 0
    finally:
        rig.close()
