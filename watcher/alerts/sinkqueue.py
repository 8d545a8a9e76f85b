"""The sender side of a sink's own queue in the outbox file (``sink_queue``).

The Telegram cards keep their table (``cards``); every other sink has its rows here,
tagged with the sink's name, so one sink's outage never holds up another: each sender
takes only its own rows. Rows are ops, oldest first::

    pending ──posted──> sent       (pruned beyond keep_done)
       │  └─ rejected (4xx) ──> dead  (kept; requeue_dead puts them back)
       └─ failed (network, 5xx) ──> pending, attempts+1
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from watcher.alerts.outbox import Outbox


@dataclass(frozen=True)
class SinkOp:
    id: int
    event: str
    op: dict[str, Any]
    attempts: int


class SinkQueue:
    """One sink's rows of ``sink_queue``. Every call is one short local transaction."""

    def __init__(self, outbox: Outbox, sink: str, *, keep_done: int = 1_000) -> None:
        self.outbox = outbox
        self.sink = sink
        self.keep_done = keep_done

    def head(self, limit: int) -> list[SinkOp]:
        """Up to ``limit`` pending ops, oldest first."""
        with self.outbox.reading() as db:
            rows = db.execute(
                "SELECT id, event, op, attempts FROM sink_queue WHERE sink=? AND state='pending' "
                "ORDER BY id LIMIT ?",
                (self.sink, limit),
            ).fetchall()
        return [SinkOp(int(i), str(e), json.loads(o), int(a)) for i, e, o, a in rows]

    def mark_sent(self, ids: list[int], now: float) -> None:
        with self.outbox.transaction() as db:
            db.executemany(
                "UPDATE sink_queue SET state='sent', done_at=?, last_error=NULL WHERE id=?",
                [(now, i) for i in ids],
            )
            db.execute(
                "DELETE FROM sink_queue WHERE sink=? AND state='sent' AND id <= ("
                "SELECT id FROM sink_queue WHERE sink=? AND state='sent' "
                "ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (self.sink, self.sink, self.keep_done),
            )

    def mark_retry(self, ids: list[int], error: str) -> None:
        with self.outbox.transaction() as db:
            db.executemany(
                "UPDATE sink_queue SET attempts=attempts+1, last_error=? WHERE id=?",
                [(error[:500], i) for i in ids],
            )

    def mark_dead(self, ids: list[int], error: str, now: float) -> None:
        with self.outbox.transaction() as db:
            db.executemany(
                "UPDATE sink_queue SET state='dead', attempts=attempts+1, last_error=?, "
                "done_at=? WHERE id=?",
                [(error[:500], now, i) for i in ids],
            )

    def requeue_dead(self) -> int:
        with self.outbox.transaction() as db:
            return int(
                db.execute(
                    "UPDATE sink_queue SET state='pending', last_error=NULL "
                    "WHERE sink=? AND state='dead'",
                    (self.sink,),
                ).rowcount
            )

    def counts(self) -> dict[str, int]:
        with self.outbox.reading() as db:
            rows = db.execute(
                "SELECT state, COUNT(*) FROM sink_queue WHERE sink=? GROUP BY state", (self.sink,)
            ).fetchall()
        return {str(state): int(n) for state, n in rows}

    def depth(self) -> int:
        return self.counts().get("pending", 0)
