"""The Alertmanager feed: which ops a batch queues, and what ends a firing alert."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.alerts.conftest import T0, UTC, alert
from watcher.alerts.alertmanager import AlertmanagerConfig, attach, wire
from watcher.alerts.intake import AlertIntake
from watcher.alerts.outbox import Outbox
from watcher.alerts.sinkqueue import SinkQueue
from watcher.core.transitions import TransitionType as T
from watcher.support.metrics import Metrics

PRIMARY = "ollama/deepseek-v4-flash:cloud"
FALLBACK = "ollama/qwen3:8b"


@dataclass
class Agent:
    chain: tuple[str, ...] = (PRIMARY, FALLBACK)
    serving: str = PRIMARY
    exhausted: bool = False
    flapping: bool = False


@dataclass
class Model:
    cooldown_until: float | None = None

    def in_cooldown(self, at: float) -> bool:
        return self.cooldown_until is not None and at < self.cooldown_until


@dataclass
class World:
    agents: dict[str, Agent] = field(default_factory=lambda: {"orchestrator": Agent()})
    models: dict[str, Model] = field(default_factory=lambda: {PRIMARY: Model()})


def _intake(path: Path) -> tuple[AlertIntake, SinkQueue]:
    intake = AlertIntake(Outbox(path, limit=1000), tz=UTC, metrics=Metrics().alerts)
    config = AlertmanagerConfig(urls=["http://127.0.0.1:9"], instance="vps-a")
    sender = attach(config, intake)
    assert sender is not None
    return intake, sender.queue


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[tuple[AlertIntake, SinkQueue]]:
    intake, queue = _intake(tmp_path / "outbox.sqlite3")
    yield intake, queue
    intake.outbox.close()


def _ops(queue: SinkQueue) -> list[dict[str, object]]:
    return [op.op for op in queue.head(100)]


def test_a_fallback_fires_with_the_fleet_labels_and_stays_in_the_firing_set(
    fed: tuple[AlertIntake, SinkQueue],
) -> None:
    intake, queue = fed
    world = World()
    world.agents["orchestrator"].serving = FALLBACK
    intake.submit_many([(alert(), [])], now=T0, state=world)
    (op,) = _ops(queue)
    assert op["labels"] == {
        "alertname": "FALLBACK_FIRED",
        "agent": "orchestrator",
        "model": PRIMARY,
        "provider": "ollama",
        "failure_class": "throttle",
        "gateway": "vps-a",
    }
    notes = op["annotations"]
    assert isinstance(notes, dict)
    assert notes["summary"].startswith("↪️ Fallback fired") and notes["suppressed"] == "0"
    assert "<b>" not in notes["description"] and "orchestrator" in notes["description"]
    assert op["ends_at"] is None  # firing: the sender sets endsAt at each post
    assert [f.key for f in intake.feed.firing()] == ["FALLBACK_FIRED|orchestrator|"]  # type: ignore[union-attr]


def test_the_state_ends_a_fallback_even_when_the_recovery_card_was_suppressed(
    fed: tuple[AlertIntake, SinkQueue],
) -> None:
    """Away, back, away, back within the dedup window: Telegram sends the first
    RECOVERY only. Alertmanager must still end up with nothing firing."""
    intake, queue = fed
    world = World()
    agent = world.agents["orchestrator"]
    back = alert(T.RECOVERY, from_model=FALLBACK, to_model=PRIMARY, failure_class=None)
    verdicts = []
    for i, (serving, card) in enumerate(
        [(FALLBACK, alert()), (PRIMARY, back), (FALLBACK, alert()), (PRIMARY, back)]
    ):
        agent.serving = serving
        verdicts += intake.submit_many([(card, [])], now=T0 + i, state=world)
    assert [v.send for (v,) in verdicts] == [True, True, False, False]  # the dedup at work
    assert intake.feed is not None and intake.feed.firing() == []
    ends = [op["ends_at"] for op in _ops(queue)]
    assert ends == [None, T0 + 1, None, T0 + 3]  # fired, ended, fired, ended
    with intake.outbox.reading() as db:
        assert db.execute("SELECT COUNT(*) FROM am_active").fetchone()[0] == 0


def test_a_one_shot_event_is_posted_only_when_its_card_is_sent(
    fed: tuple[AlertIntake, SinkQueue],
) -> None:
    intake, queue = fed
    paid = alert(T.PAID_PROVIDER_SUCCESS, from_model=FALLBACK, to_model=FALLBACK)
    intake.submit_many([(paid, []), (paid, [])], now=T0, state=World())
    (op,) = _ops(queue)
    assert op["ends_at"] == T0 + 900  # event_ttl_s
    assert intake.feed is not None and intake.feed.firing() == []


def test_a_recovery_is_the_end_of_an_alert_not_an_alert(
    fed: tuple[AlertIntake, SinkQueue],
) -> None:
    intake, queue = fed
    back = alert(T.RECOVERY, from_model=FALLBACK, to_model=PRIMARY, failure_class=None)
    intake.submit_many([(back, [])], now=T0, state=World())
    assert _ops(queue) == []


def test_hard_failure_flapping_and_cooldown_each_end_on_their_own_condition(
    fed: tuple[AlertIntake, SinkQueue],
) -> None:
    intake, queue = fed
    world = World()
    agent = world.agents["orchestrator"]
    agent.serving, agent.exhausted, agent.flapping = FALLBACK, True, True
    world.models[PRIMARY].cooldown_until = T0 + 60
    intake.submit_many(
        [
            (alert(T.HARD_FAILURE, from_model=FALLBACK, to_model=FALLBACK), []),
            (alert(T.FLAPPING_START), []),
            (alert(T.THROTTLE_COOLDOWN, cooldown_until=T0 + 60), []),
        ],
        now=T0,
        state=world,
    )
    feed = intake.feed
    assert feed is not None
    assert sorted(f.alertname for f in feed.firing()) == [
        "FLAPPING_START", "HARD_FAILURE", "THROTTLE_COOLDOWN"
    ]
    agent.exhausted = False  # the chain answers again
    intake.submit_many([], now=T0 + 10, state=world)
    assert sorted(f.alertname for f in feed.firing()) == ["FLAPPING_START", "THROTTLE_COOLDOWN"]
    agent.flapping = False  # FLAPPING_STOP released the freeze
    intake.submit_many([], now=T0 + 20, state=world)
    assert [f.alertname for f in feed.firing()] == ["THROTTLE_COOLDOWN"]
    intake.submit_many([], now=T0 + 70, state=world)  # past the cooldown's end
    assert feed.firing() == []
    ended = _ops(queue)[-1]
    assert ended["labels"]["alertname"] == "THROTTLE_COOLDOWN"  # type: ignore[index]
    assert ended["ends_at"] == T0 + 60  # it ended when the cooldown did, not at T0+70


def test_a_cooldown_is_never_posted_firing_past_its_end() -> None:
    op = {"labels": {"alertname": "THROTTLE_COOLDOWN"}, "annotations": {},
          "starts_at": T0, "ends_at": None, "ends_cap": T0 + 30}
    assert wire(op, now=T0, hold_s=240)["endsAt"] == "2026-05-20T12:27:10Z"
    assert wire({**op, "ends_cap": None}, now=T0, hold_s=240)["endsAt"] == "2026-05-20T12:30:40Z"


def test_a_batch_with_nothing_to_say_writes_nothing(
    fed: tuple[AlertIntake, SinkQueue],
) -> None:
    intake, _ = fed
    with intake.outbox.reading() as db:
        before = db.total_changes
    assert intake.submit_many([], now=T0, state=World()) == []
    with intake.outbox.reading() as db:
        assert db.total_changes == before


def test_the_firing_set_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    intake, _ = _intake(path)
    world = World()
    world.agents["orchestrator"].serving = FALLBACK
    intake.submit_many([(alert(), [])], now=T0, state=world)
    intake.outbox.close()
    again, queue = _intake(path)
    assert again.feed is not None
    assert [f.key for f in again.feed.firing()] == ["FALLBACK_FIRED|orchestrator|"]
    world.agents["orchestrator"].serving = PRIMARY
    again.submit_many([], now=T0 + 5, state=world)
    assert again.feed.firing() == [] and _ops(queue)[-1]["ends_at"] == T0 + 5
    again.outbox.close()


def test_a_failed_transaction_leaves_the_firing_set_as_it_was(
    fed: tuple[AlertIntake, SinkQueue],
) -> None:
    """The ops are staged, then the transaction fails (a full disk at COMMIT, say):
    memory must not run ahead of the file, or the feed would end an alert Alertmanager
    never heard of, and never fire the one it should."""
    intake, queue = fed
    world = World()
    world.agents["orchestrator"].serving = FALLBACK
    feed = intake.feed
    assert feed is not None
    staged = feed.stage

    def stage_then_fail(db, verdicts, state, now):  # type: ignore[no-untyped-def]
        staged(db, verdicts, state, now)
        raise OSError("disk full")

    feed.stage = stage_then_fail  # type: ignore[method-assign]
    with pytest.raises(OSError):
        intake.submit_many([(alert(), [])], now=T0, state=world)
    assert feed.firing() == [] and _ops(queue) == []
    with intake.outbox.reading() as db:
        assert db.execute("SELECT COUNT(*) FROM am_active").fetchone()[0] == 0
    feed.stage = staged  # type: ignore[method-assign]
    intake.submit_many([(alert(), [])], now=T0, state=world)  # the retry lands whole
    assert len(_ops(queue)) == 1 and len(feed.firing()) == 1


def test_a_bad_alertmanager_section_is_refused_with_every_problem(tmp_path: Path) -> None:
    from tests.rigs.file_world import write_file_world
    from watcher.config import ConfigError, load_settings

    config = write_file_world(
        tmp_path, {"nexus": [PRIMARY, FALLBACK]},
        extra_toml='[alertmanager]\nurls = ["ftp://127.0.0.1:9093"]\nresend_interval_s = 0\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    problems = " | ".join(caught.value.problems)
    assert "must start with http:// or https://" in problems
    assert "resend_interval_s" in problems
    empty = write_file_world(tmp_path, {"nexus": [PRIMARY, FALLBACK]},
                             extra_toml="[alertmanager]\nurls = []\n")
    with pytest.raises(ConfigError, match="urls"):
        load_settings(empty)
    plain = write_file_world(tmp_path, {"nexus": [PRIMARY, FALLBACK]},
                             extra_toml='[alertmanager]\nurls = ["http://127.0.0.1:9093/"]\n')
    section = load_settings(plain).alertmanager
    assert section is not None and section.urls == ["http://127.0.0.1:9093"]
    assert section.instance  # the host name by default


def test_a_peer_url_with_credentials_is_never_shown_with_them() -> None:
    from watcher.alerts.alertmanager import shown

    assert shown("http://fleet:s3cret@10.0.0.5:9093") == "http://[credentials]@10.0.0.5:9093"
    assert shown("http://10.0.0.5:9093") == "http://10.0.0.5:9093"
