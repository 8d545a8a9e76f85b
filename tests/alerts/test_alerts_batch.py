"""One outbox transaction per applied batch, with submit's exact decisions.

The daemon hands every alert of an applied batch to ``AlertIntake.submit_many``: one
fsync'd SQLite commit instead of one per card. These tests hold it to the same
crash-consistency as before: a kill mid-batch leaves all the cards and the alert
sequence, or none of them; the dedup verdicts are those of ``submit`` one by one; the
running unsent count stays the true count.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from watcher.alerts.intake import DEDUP_META
from watcher.alerts.outbox import Outbox
from watcher.core.transitions import Alert, TransitionType
from watcher.shell.watcher import ALERT_SEQ_META
from watcher.support.metrics import Metrics

from .conftest import T0, alert, intake_for

T = TransitionType


def _statements(box: Outbox) -> list[str]:
    """Every SQL statement the outbox's connection runs from now on, as run."""
    seen: list[str] = []
    box._db.set_trace_callback(seen.append)
    return seen


def _workload() -> list[tuple[Alert, list[str]]]:
    """Repeats of one key (dedup window from the last *sent* card), other keys, a
    critical type, a catch-up, flip cards while flapping, and enough suppression for a
    SUPPRESSION_DOMINANT card."""
    items: list[tuple[Alert, list[str]]] = []
    for i in range(14):
        items.append((alert(agent="a", ts=T0 + i), []))
    items.append((alert(agent="b"), []))
    items.append((alert(T.HARD_FAILURE, agent="a"), []))
    items.append((alert(T.HARD_FAILURE, agent="a"), []))
    items.append((alert(agent="c", catch_up=True), []))
    items.append((alert(T.RECOVERY, agent="d"), ["d"]))
    items.append((alert(agent="d"), ["d"]))
    items.append((alert(agent="b"), []))
    return items


def test_a_batch_of_alerts_is_one_outbox_transaction(outbox: Outbox, metrics: Metrics) -> None:
    intake = intake_for(outbox, metrics)
    seen = _statements(outbox)
    items = [(alert(agent=f"agent-{i}"), []) for i in range(25)]
    verdicts = intake.submit_many(items, now=T0, meta={ALERT_SEQ_META: "25"})
    outbox._db.set_trace_callback(None)
    assert all(vs[0].send for vs in verdicts)
    assert [s for s in seen if s in ("BEGIN IMMEDIATE", "COMMIT")] == ["BEGIN IMMEDIATE", "COMMIT"]
    assert sum(s.startswith("INSERT INTO cards") for s in seen) == 25
    assert not [s for s in seen if "COUNT(" in s]  # no scan of the backlog per card
    assert outbox.depth() == 25
    assert outbox.get_meta(ALERT_SEQ_META) == "25"


def test_batched_verdicts_and_cards_match_submitting_one_by_one(
    tmp_path: Path, metrics: Metrics
) -> None:
    one_box = Outbox(tmp_path / "one.sqlite3")
    batch_box = Outbox(tmp_path / "batch.sqlite3")
    one, batched = intake_for(one_box, metrics), intake_for(batch_box, metrics)
    # A card sent earlier, so the window of key "a" already runs when the batch starts.
    one.submit(alert(agent="a"), now=T0 - 30)
    batched.submit(alert(agent="a"), now=T0 - 30)
    items = _workload()
    expected = [one.submit(a, now=T0, flapping=f) for a, f in items]
    got = batched.submit_many(items, now=T0)
    assert got == expected
    assert any(v.alert.type is T.SUPPRESSION_DOMINANT for vs in got for v in vs)
    assert [(c.event, c.agents, c.text) for c in batch_box.cards()] == [
        (c.event, c.agents, c.text) for c in one_box.cards()
    ]
    assert json.loads(batch_box.get_meta(DEDUP_META) or "") == json.loads(
        one_box.get_meta(DEDUP_META) or ""
    )
    one_box.close()
    batch_box.close()


def test_a_batch_with_every_alert_suppressed_still_saves_dedup_state_and_sequence(
    outbox: Outbox, metrics: Metrics
) -> None:
    intake = intake_for(outbox, metrics)
    intake.submit(alert(), now=T0, meta={ALERT_SEQ_META: "1"})
    seen = _statements(outbox)
    verdicts = intake.submit_many(
        [(alert(), []), (alert(), [])], now=T0 + 1, meta={ALERT_SEQ_META: "3"}
    )
    outbox._db.set_trace_callback(None)
    assert [vs[0].send for vs in verdicts] == [False, False]
    assert seen.count("COMMIT") == 1
    assert outbox.get_meta(ALERT_SEQ_META) == "3"
    assert json.loads(outbox.get_meta(DEDUP_META) or "")["keys"][alert().dedup_key][1] == 2


# A child process that queues a batch of 10 cards (sequence 10) and SIGKILLs itself
# at the chosen statement of the transaction: "never" exits after the commit.
_CRASH_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import UTC
    from watcher.alerts.intake import AlertIntake
    from watcher.alerts.outbox import Outbox
    from watcher.core.transitions import Alert, TransitionType

    path, die_at, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
    box = Outbox(path)
    intake = AlertIntake(box, tz=UTC)
    count = 0

    def trace(statement):
        global count
        if statement.startswith(die_at):
            count += 1
            if count == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    box._db.set_trace_callback(trace)
    alerts = [
        (Alert(TransitionType.FALLBACK_FIRED, ts=1.0, agents=(f"agent-{i}",)), [])
        for i in range(10)
    ]
    intake.submit_many(alerts, now=1_800_000_000.0, meta={"daemon_alert_seq": "10"})
    """
)


@pytest.mark.parametrize(
    ("die_at", "nth", "landed"),
    [
        ("INSERT INTO cards", 1, False),
        ("INSERT INTO cards", 6, False),
        ("INSERT OR REPLACE INTO meta", 2, False),
        ("COMMIT", 1, False),  # the trace fires as the COMMIT starts
        ("never", 1, True),
    ],
)
def test_a_kill_mid_batch_leaves_all_the_cards_and_their_sequence_or_none(
    tmp_path: Path, die_at: str, nth: int, landed: bool
) -> None:
    path = tmp_path / "outbox.sqlite3"
    Outbox(path).close()  # created (schema) before the child starts
    child = subprocess.run(
        [sys.executable, "-c", _CRASH_CHILD, str(path), die_at, str(nth)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == (0 if landed else -9), child.stderr
    box = Outbox(path)
    if landed:
        assert box.depth() == 10 and len(box.cards("pending")) == 10
        assert box.get_meta("daemon_alert_seq") == "10"
        assert box.get_meta(DEDUP_META) is not None
    else:
        assert box.depth() == 0 and box.cards() == []
        assert box.get_meta("daemon_alert_seq") is None
        assert box.get_meta(DEDUP_META) is None
    box.close()


def test_a_failed_batch_leaves_the_dedup_memory_as_it_was_on_disk(
    outbox: Outbox, metrics: Metrics
) -> None:
    intake = intake_for(outbox, metrics)
    intake.submit(alert(agent="a"), now=T0)

    def refuse(*_args: object, **_kwargs: object) -> list[int]:
        raise sqlite3.OperationalError("disk I/O error")

    outbox.enqueue_many = refuse  # type: ignore[method-assign]
    with pytest.raises(sqlite3.OperationalError):
        intake.submit_many([(alert(agent="b"), []), (alert(agent="a"), [])], now=T0 + 1)
    del outbox.enqueue_many
    # "b" was never sent and "a" not suppressed: both decided as if the batch never was.
    verdicts = intake.submit_many([(alert(agent="b"), []), (alert(agent="a"), [])], now=T0 + 2)
    assert verdicts[0][0].send and verdicts[0][0].suppressed_since_last == 0
    assert not verdicts[1][0].send and verdicts[1][0].suppressed_since_last == 1


def test_the_running_unsent_count_follows_every_state_change(
    outbox_path: Path, metrics: Metrics
) -> None:
    box = Outbox(outbox_path, limit=6, metrics=metrics.alerts)

    def true_depth() -> int:
        with sqlite3.connect(outbox_path) as other:
            return int(
                other.execute(
                    "SELECT COUNT(*) FROM cards WHERE state IN ('pending','sending')"
                ).fetchone()[0]
            )

    ids = box.enqueue_many([(alert(agent=f"a{i}"), str(i)) for i in range(4)], now=T0)
    assert box.depth() == true_depth() == 4
    box.mark_sending(ids[0], 1)
    box.mark_sent(ids[0], 10, T0)
    box.mark_sending(ids[1], 1)
    box.mark_retry(ids[1], "timed out", ambiguous=True)
    box.mark_dead(ids[2], "Forbidden", T0)
    box.mark_sent(ids[0], 10, T0)  # a repeat of a mark changes nothing
    assert box.depth() == true_depth() == 2
    assert box.requeue_dead() == 1
    assert box.depth() == true_depth() == 3
    # Full: the batch drops the oldest non-critical cards, as single enqueues would.
    box.enqueue_many([(alert(agent=f"b{i}"), f"b{i}") for i in range(5)], now=T0)
    assert box.depth() == true_depth() == 6
    assert box.dropped_unreported() == 2
    assert metrics.alerts.outbox_depth._value.get() == 6
    # Another connection's commit (the sqlite3 shell) is noticed and counted afresh.
    with sqlite3.connect(outbox_path) as other:
        other.execute("UPDATE cards SET state='dead' WHERE state='pending'")
    assert box.depth() == true_depth() == 0
    box.enqueue(alert(), "after", now=T0)
    assert box.depth() == true_depth() == 1
    box.close()
    reopened = Outbox(outbox_path, limit=6)
    assert reopened.depth() == 1
    reopened.close()
