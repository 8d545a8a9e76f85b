"""The outbox: written before any send, survives restarts, bounded, honest about drops."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from watcher.alerts.outbox import Outbox
from watcher.core.transitions import TransitionType
from watcher.support.metrics import Metrics

from .conftest import T0, alert

T = TransitionType


def test_an_enqueued_card_is_on_disk_before_anyone_sends_it(outbox_path: Path) -> None:
    box = Outbox(outbox_path)
    card_id = box.enqueue(alert(), "<b>card</b>", now=T0)
    # A second connection (another process, after a crash) sees the committed row.
    with sqlite3.connect(outbox_path) as other:
        row = other.execute("SELECT state, text FROM cards WHERE id=?", (card_id,)).fetchone()
    assert row == ("pending", "<b>card</b>")
    assert box.head() is not None and box.head().alert == alert()  # type: ignore[union-attr]
    box.close()


def test_cards_come_out_oldest_first_and_sent_ones_never_again(outbox_path: Path) -> None:
    box = Outbox(outbox_path)
    ids = [box.enqueue(alert(agent=a), a, now=T0) for a in ("a", "b", "c")]
    head = box.head()
    assert head is not None and head.id == ids[0]
    box.mark_sending(ids[0], 42)
    box.mark_sent(ids[0], 1, T0)
    box.close()
    reopened = Outbox(outbox_path)
    assert [c.text for c in reopened.cards("pending")] == ["b", "c"]
    assert reopened.head().id == ids[1]  # type: ignore[union-attr]
    reopened.close()


def test_a_card_caught_mid_send_by_a_crash_is_resent_marked_ambiguous(outbox_path: Path) -> None:
    box = Outbox(outbox_path)
    card_id = box.enqueue(alert(), "x", now=T0)
    box.mark_sending(card_id, 42)
    box.close()  # "crash": the row is still 'sending'
    reopened = Outbox(outbox_path)
    head = reopened.head()
    assert head is not None and head.id == card_id
    assert head.state == "pending" and head.ambiguous and head.attempts == 1
    reopened.close()


def test_a_full_outbox_drops_the_oldest_non_critical_cards_first(
    outbox_path: Path, metrics: Metrics
) -> None:
    box = Outbox(outbox_path, limit=10, metrics=metrics.alerts)
    box.enqueue(alert(T.HARD_FAILURE, agent="crit-0"), "crit-0", now=T0)
    for i in range(9):
        box.enqueue(alert(agent=f"n{i}"), f"n{i}", now=T0)
    box.enqueue(alert(T.FLAPPING_START, agent="crit-1"), "crit-1", now=T0)
    box.enqueue(alert(agent="n9"), "n9", now=T0)
    assert box.depth() == 10
    texts = [c.text for c in box.cards("pending")]
    assert texts == ["crit-0", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "crit-1", "n9"]
    assert [c.text for c in box.cards("dropped")] == ["n0", "n1"]
    assert (
        metrics.registry.get_sample_value(
            "failover_watcher_alerts_dropped_total", {"event": "FALLBACK_FIRED"}
        )
        == 2
    )
    assert metrics.registry.get_sample_value("failover_watcher_outbox_depth") == 10
    assert box.dropped_unreported() == 2
    box.close()


def test_when_only_critical_cards_are_left_the_oldest_critical_one_goes(
    outbox_path: Path,
) -> None:
    box = Outbox(outbox_path, limit=10)
    for i in range(12):
        box.enqueue(alert(T.HARD_FAILURE, agent=f"c{i}"), f"c{i}", now=T0)
    assert box.cards("pending")[0].text == "c2"
    assert box.depth() == 10
    box.close()


def test_dead_letters_are_kept_and_can_be_requeued(outbox_path: Path) -> None:
    box = Outbox(outbox_path)
    card_id = box.enqueue(alert(), "x", now=T0)
    box.mark_sending(card_id, 42)
    box.mark_dead(card_id, "Forbidden: bot was blocked by the user", T0)
    assert box.head() is None and box.depth() == 0
    dead = box.cards("dead")
    assert dead[0].last_error == "Forbidden: bot was blocked by the user"
    assert box.requeue_dead() == 1
    assert box.head() is not None
    box.close()


def test_sent_history_is_pruned_to_a_bounded_tail(outbox_path: Path) -> None:
    box = Outbox(outbox_path, keep_done=5)
    for i in range(20):
        card_id = box.enqueue(alert(), str(i), now=T0)
        box.mark_sending(card_id, 1)
        box.mark_sent(card_id, i, T0)
    assert box.counts() == {"sent": 5}
    box.close()


def test_meta_updates_commit_with_the_card(outbox_path: Path) -> None:
    box = Outbox(outbox_path)
    box.enqueue(alert(), "x", now=T0, meta={"dedup_state": "{}"})
    box.close()
    reopened = Outbox(outbox_path)
    assert reopened.get_meta("dedup_state") == "{}"
    reopened.close()
