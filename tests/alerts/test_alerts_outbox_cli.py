"""``failover-watcher outbox``: per-sink counts, dead letters, and --requeue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.alerts.conftest import T0, alert
from tests.rigs.file_world import write_file_world
from watcher.alerts.am_feed import SINK
from watcher.alerts.outbox import Outbox
from watcher.alerts.sinkqueue import SinkQueue
from watcher.cli import main


def _world(tmp_path: Path) -> tuple[Path, Outbox]:
    config = write_file_world(tmp_path, {"nexus": ["ollama/a", "ollama/b"]})
    (tmp_path / "state").mkdir()
    outbox = Outbox(tmp_path / "state" / "outbox.sqlite3")
    dead, sending = outbox.enqueue_many([(alert(), "dead card"), (alert(), "in flight")], now=T0)
    outbox.mark_dead(dead, "Forbidden: bot was blocked by the user", T0)
    outbox.mark_sending(sending, 4242)  # the daemon is sending it right now
    with outbox.transaction() as db:
        db.execute(
            "INSERT INTO sink_queue (sink, enqueued_at, event, op, state, last_error) "
            "VALUES (?, ?, 'FALLBACK_FIRED', '{}', 'dead', 'HTTP 400 bad labels')",
            (SINK, T0),
        )
    return config, outbox


def test_it_shows_each_sink_and_its_dead_letters_without_touching_a_card_in_flight(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, outbox = _world(tmp_path)
    assert main(["outbox", "--config", str(config), "--json"]) == 0
    sinks = json.loads(capsys.readouterr().out)["sinks"]
    assert sinks["telegram"]["counts"] == {"dead": 1, "sending": 1}
    assert "bot was blocked" in sinks["telegram"]["dead"][0][2]
    assert sinks["alertmanager"]["counts"] == {"dead": 1}
    assert [c.state for c in outbox.cards()] == ["dead", "sending"]  # no recovery run
    assert main(["outbox", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert "telegram: 1 dead, 1 sending" in text and "HTTP 400 bad labels" in text
    outbox.close()


def test_requeue_puts_every_dead_letter_back_and_the_daemon_s_outbox_sees_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, outbox = _world(tmp_path)
    assert main(["outbox", "--config", str(config), "--requeue"]) == 0
    assert "requeued: 1 for telegram, 1 for alertmanager" in capsys.readouterr().out
    assert outbox.depth() == 2  # another connection's commit: the running count follows
    assert SinkQueue(outbox, SINK).counts() == {"pending": 1}
    outbox.close()


def test_no_outbox_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_file_world(tmp_path, {"nexus": ["ollama/a", "ollama/b"]})
    assert main(["outbox", "--config", str(config)]) == 1
    assert "no outbox at" in capsys.readouterr().err
