"""The 20 May flap, told honestly: a FLAPPING_START card, counted suppressions, and the
oversight card when suppression outweighs alerting, not a stream of hidden cards."""

from __future__ import annotations

from pathlib import Path

from watcher.alerts.outbox import Outbox
from watcher.core.transitions import TransitionType
from watcher.fakes.botapi import FakeBotApi
from watcher.support.metrics import Metrics

from .conftest import T0, SenderFactory, alert, drain, intake_for

T = TransitionType
PRIMARY = "ollama/deepseek-v4-flash:cloud"
LOCAL = "ollama/qwen3:8b"


def flip(kind: TransitionType, ts: float) -> object:
    if kind is T.FALLBACK_FIRED:
        return alert(kind, ts=ts, from_model=PRIMARY, to_model=LOCAL)
    return alert(
        kind, ts=ts, from_model=LOCAL, to_model=PRIMARY, failure_class=None, reason="probe ok"
    )


def suppressed(metrics: Metrics, reason: str, event: str) -> float:
    value = metrics.registry.get_sample_value(
        "failover_watcher_alerts_suppressed_total", {"reason": reason, "event": event}
    )
    return value or 0


async def test_a_flap_produces_the_flapping_start_card_and_counted_suppressions(
    fake: FakeBotApi, outbox: Outbox, make_sender: SenderFactory, metrics: Metrics
) -> None:
    intake = intake_for(outbox, metrics)
    now = T0
    # The flap begins: flips every 20 s; the 60 s window lets one of each kind through.
    for i in range(4):
        now += 20
        intake.submit(flip(T.FALLBACK_FIRED if i % 2 == 0 else T.RECOVERY, now), now=now)  # type: ignore[arg-type]
    # The core detects it; from now on the agent is flapping.
    now += 1
    intake.submit(
        alert(T.FLAPPING_START, flap_score=4.0, ts=now), now=now, flapping={"orchestrator"}
    )
    for i in range(20):
        now += 20
        intake.submit(
            flip(T.FALLBACK_FIRED if i % 2 == 0 else T.RECOVERY, now),
            now=now,  # type: ignore[arg-type]
            flapping={"orchestrator"},
        )
    now += 60
    intake.submit(
        alert(
            T.FLAPPING_STOP, ts=now, from_model=None, to_model=None, failure_class=None, reason=None
        ),
        now=now,
    )
    now += 120
    intake.submit(flip(T.RECOVERY, now), now=now)  # type: ignore[arg-type]

    await drain(make_sender(outbox), lambda: outbox.depth() == 0)
    titles = [m.plain_text.splitlines()[0] for m in fake.messages]
    assert titles == [
        "↪️ Fallback fired",
        "✅ Recovered: back on primary",
        "🔁 Flapping: pin oscillating",
        "🙈 Suppression outweighs alerting",
        "⏹️ Flapping stopped",
        "✅ Recovered: back on primary",
    ]
    # Every hidden flip is counted, by reason and type, in the metrics...
    assert suppressed(metrics, "dedup", "FALLBACK_FIRED") == 1
    assert suppressed(metrics, "dedup", "RECOVERY") == 1
    assert suppressed(metrics, "flapping", "FALLBACK_FIRED") == 10
    assert suppressed(metrics, "flapping", "RECOVERY") == 10
    # ...on the oversight card, which lists the top suppressed keys...
    dominant = fake.messages[3].plain_text
    assert "suppressed_last_hour: 10" in dominant
    assert "× RECOVERY|orchestrator|ollama/qwen3:8b|ollama/deepseek-v4-flash:cloud|-" in dominant
    # ...in the footer of the key's next card...
    assert fake.messages[-1].plain_text.endswith("+11 similar suppressed since the last card")
    # ...and in status.
    status = intake.status(now)
    key = flip(T.RECOVERY, now).dedup_key  # type: ignore[attr-defined]
    assert status["suppressed_last_hour"][key] == {
        "total": 11,
        "by_reason": {"dedup": 1, "flapping": 10},
    }


def test_dedup_counts_survive_a_restart_of_the_watcher(outbox_path: Path) -> None:
    metrics = Metrics()
    box = Outbox(outbox_path)
    intake = intake_for(box, metrics)
    for i in range(4):
        intake.submit(alert(), now=T0 + i)
    box.close()
    box = Outbox(outbox_path)
    intake = intake_for(box, Metrics())
    assert not intake.submit(alert(), now=T0 + 30)[0].send  # window kept across restart
    verdict = intake.submit(alert(), now=T0 + 61)[0]
    assert verdict.send and verdict.suppressed_since_last == 4
    assert "+4 similar suppressed" in box.cards("pending")[-1].text
    box.close()


def test_suppressed_cards_never_reach_the_outbox_but_are_counted(
    outbox: Outbox, metrics: Metrics
) -> None:
    intake = intake_for(outbox, metrics)
    for i in range(5):
        intake.submit(alert(), now=T0 + i)
    intake.submit(alert(catch_up=True), now=T0 + 100)
    assert outbox.depth() == 1
    assert suppressed(metrics, "dedup", "FALLBACK_FIRED") == 4
    assert suppressed(metrics, "catch_up", "FALLBACK_FIRED") == 1
