"""The durable outbox: cards are written (fsync'd) before any send, then claimed and marked.

Storage: SQLite (stdlib) in the state directory, WAL journal, ``synchronous=FULL``.
Why not a JSONL journal with compaction: each step here (enqueue a card *and* save the
dedup counts; claim; mark sent; drop the oldest non-critical card when full) is one
transaction that is either wholly on disk or not at all, the per-state queries are
indexed, terminal rows are pruned in place, and a crash mid-write needs no recovery
code of ours. The file is inspectable with the ``sqlite3`` shell.

Lifecycle of a card (one row)::

    pending ──claim──> sending ──ok──────────────> sent
       ^                  │ ├─ permanent error ──> dead      (dead letter, kept, requeueable)
       └── retry ─────────┘ └─ (crash) ──restart─> pending, ambiguous=1
    pending ──outbox full──> dropped

The delivery boundary, stated honestly. Telegram has no idempotency key and a bot cannot
list what it sent, so after a crash *during* an HTTP call nobody can know whether the
card arrived. A row is marked ``sending`` (durably) before each call; a row found in
``sending`` at startup, or one whose call failed after the request may have been written
(a read timeout, a dropped connection), is resent with a visible note "possibly a
repeat". So: at-least-once inside that window, labelled; exactly-once everywhere else
(a refused connection or an HTTP error answer proves the card was not delivered; a
recorded ``sent`` is never sent again). We choose a labelled duplicate over a silent
loss because the cards that matter most (HARD_FAILURE, FLAPPING_START) must not vanish.

Order: the sender always takes the oldest unsent card (global FIFO per outbox, which is
one chat), so a card for agent A is never sent before an earlier card for A.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher.core.transitions import NEVER_SUPPRESSED, Alert
from watcher.support.atomic import fsync_dir
from watcher.support.metrics import AlertMetrics

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS cards (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    enqueued_at   REAL NOT NULL,
    event         TEXT NOT NULL,
    agents        TEXT NOT NULL,
    critical      INTEGER NOT NULL,
    alert         TEXT NOT NULL,
    text          TEXT NOT NULL,
    state         TEXT NOT NULL
                  CHECK (state IN ('pending', 'sending', 'sent', 'dead', 'dropped')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    ambiguous     INTEGER NOT NULL DEFAULT 0,
    chat_id       INTEGER,
    message_id    INTEGER,
    done_at       REAL,
    last_error    TEXT
);
CREATE INDEX IF NOT EXISTS cards_by_state ON cards (state, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- The queues of the other sinks (watcher.alerts.sinkqueue): one op per row, in order.
CREATE TABLE IF NOT EXISTS sink_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL, enqueued_at REAL NOT NULL,
    event TEXT NOT NULL, op TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0, done_at REAL, last_error TEXT
);
CREATE INDEX IF NOT EXISTS sink_queue_by_state ON sink_queue (sink, state, id);
-- What Alertmanager holds firing (watcher.alerts.am_feed), by lifecycle key.
CREATE TABLE IF NOT EXISTS am_active (key TEXT PRIMARY KEY, alert TEXT NOT NULL);
"""

UNSENT = ("pending", "sending")
DEFAULT_FILENAME = "outbox.sqlite3"


@dataclass(frozen=True)
class Card:
    """One outbox row, as the sender sees it."""

    id: int
    event: str
    agents: tuple[str, ...]
    critical: bool
    alert: Alert
    text: str
    state: str
    attempts: int
    ambiguous: bool
    enqueued_at: float
    chat_id: int | None = None
    message_id: int | None = None
    last_error: str | None = None


class Outbox:
    """A bounded, crash-safe queue of rendered cards, shared by the producer and the sender.

    Thread-safe (one connection behind a lock): the journal tail may enqueue from its own
    thread while the sender task marks rows in the event loop. Every call is a short local
    transaction; none waits on the network.

    The number of unsent rows is kept as a running count, counted once at open and
    adjusted after each commit by what that transaction changed, instead of a
    ``COUNT(*)`` over the pending rows per card (which grew with the backlog, on the
    journal-to-pin path). Another connection's commit (the ``sqlite3`` shell, a second
    process) shows in ``PRAGMA data_version``; the next transaction then counts afresh.
    """

    def __init__(
        self,
        path: Path,
        *,
        limit: int = 10_000,
        keep_done: int = 1_000,
        metrics: AlertMetrics | None = None,
    ) -> None:
        self.path = Path(path)
        self.limit = limit
        self.keep_done = keep_done
        self.metrics = metrics
        self._lock = threading.Lock()
        self._unsent = 0  # rows in UNSENT as of our last commit (see the class docstring)
        self._staged = 0  # the change the open transaction makes to it
        self._data_version: int | None = None  # None: count at the next transaction
        fresh = not self.path.exists()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        if fresh:
            os.chmod(self.path, 0o640)
            fsync_dir(self.path.parent)
        self._recover()
        self._update_depth()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, for reads outside a transaction."""
        with self._lock:
            yield self._db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; the running unsent count moves only if it commits."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._sync_unsent()
                self._staged = 0
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                self._staged = 0
                raise
            self._db.execute("COMMIT")
            self._unsent += self._staged
            self._staged = 0

    transaction = _tx  # one write transaction, for the other sinks' queues (sinkqueue)

    def _sync_unsent(self) -> None:
        """Recount the unsent rows if another connection committed since we last looked
        (or never counted). Call with the lock held. ``data_version`` does not move for
        this connection's own commits, so in the daemon this counts once, at open."""
        version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
        if version != self._data_version:
            self._unsent = int(
                self._db.execute(
                    "SELECT COUNT(*) FROM cards WHERE state IN ('pending','sending')"
                ).fetchone()[0]
            )
            self._data_version = version

    def _moved(
        self, db: sqlite3.Connection, card_id: int, new_state: str, sql: str, args: tuple[Any, ...]
    ) -> None:
        """Run ``sql`` (which sets row ``card_id`` to ``new_state``) and stage the change
        it makes to the unsent count, from the row's state before."""
        row = db.execute("SELECT state FROM cards WHERE id=?", (card_id,)).fetchone()
        n = db.execute(sql, args).rowcount
        if row is not None and n:
            self._staged += int(new_state in UNSENT) - int(row[0] in UNSENT)

    def _recover(self) -> None:
        with self._tx() as db:
            n = db.execute(
                "UPDATE cards SET state='pending', ambiguous=1 WHERE state='sending'"
            ).rowcount
        if n:
            log.warning(
                "outbox: %d card(s) were being sent when the watcher stopped; "
                "they will be resent marked 'possibly a repeat'",
                n,
            )

    # -- producer side -----------------------------------------------------------------

    def enqueue(
        self,
        alert: Alert,
        text: str,
        *,
        now: float,
        meta: Mapping[str, str] | None = None,
    ) -> int:
        """Durably add one card (and, in the same transaction, ``meta`` updates).

        When the outbox is full, the oldest pending non-critical card is dropped first
        (the oldest critical one only if nothing else is left) and counted.
        """
        return self.enqueue_many([(alert, text)], now=now, meta=meta)[0]

    def enqueue_many(
        self,
        cards: Sequence[tuple[Alert, str]],
        *,
        now: float,
        meta: Mapping[str, str] | None = None,
        also: Callable[[sqlite3.Connection], object] | None = None,
    ) -> list[int]:
        """Durably add ``cards`` (alert, rendered text) in order, with ``meta``, in ONE
        transaction: all of them and the meta land, or none. Returns the new card ids.

        One fsync'd commit per applied batch instead of one per card: that commit was most
        of the journal-to-pin latency at 1,000 lines/s. Each card sees the
        outbox as if enqueued alone, one after the other (same drops as ``enqueue`` in a
        loop). ``cards`` may be empty: then only ``meta`` is written. ``also`` runs last
        in the same transaction: the other sinks stage their ops there.
        """
        dropped: list[tuple[int, str]] = []
        ids: list[int] = []
        with self._tx() as db:
            depth = self._unsent
            for alert, text in cards:
                while depth >= self.limit:
                    victim = db.execute(
                        "SELECT id, event FROM cards WHERE state='pending' "
                        "ORDER BY critical ASC, id ASC LIMIT 1"
                    ).fetchone()
                    if victim is None:
                        break
                    db.execute(
                        "UPDATE cards SET state='dropped', done_at=? WHERE id=?",
                        (now, victim[0]),
                    )
                    dropped.append((victim[0], victim[1]))
                    depth -= 1
                cur = db.execute(
                    "INSERT INTO cards (enqueued_at, event, agents, critical, alert, text, "
                    "state) VALUES (?, ?, ?, ?, ?, ?, 'pending')",
                    (
                        now,
                        alert.type.value,
                        json.dumps(list(alert.agents)),
                        int(alert.type in NEVER_SUPPRESSED),
                        json.dumps(alert.to_json(), sort_keys=True),
                        text,
                    ),
                )
                assert cur.lastrowid is not None
                ids.append(cur.lastrowid)
                depth += 1
            if dropped:
                self._bump_meta(db, "dropped_unreported", len(dropped))
            for key, value in (meta or {}).items():
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
            if also is not None:
                also(db)
            self._staged = depth - self._unsent
        for card_id, event in dropped:
            log.warning(
                "outbox full (%d): dropped unsent card #%d (%s)", self.limit, card_id, event
            )
            if self.metrics:
                self.metrics.dropped.labels(event=event).inc()
        if cards:
            self._update_depth()
        return ids

    # -- sender side -------------------------------------------------------------------

    def head(self) -> Card | None:
        """The oldest card not yet sent, dead or dropped (the next one to send)."""
        with self._lock:
            row = self._db.execute(
                _SELECT + " WHERE state IN ('pending','sending') ORDER BY id LIMIT 1"
            ).fetchone()
        return _card(row) if row else None

    def mark_sending(self, card_id: int, chat_id: int) -> None:
        """Durably note that a request for this card is about to go out."""
        with self._tx() as db:
            db.execute(
                "UPDATE cards SET state='sending', attempts=attempts+1, chat_id=? "
                "WHERE id=? AND state IN ('pending','sending')",
                (chat_id, card_id),
            )

    def mark_sent(self, card_id: int, message_id: int | None, now: float) -> None:
        with self._tx() as db:
            self._moved(
                db,
                card_id,
                "sent",
                "UPDATE cards SET state='sent', message_id=?, done_at=?, last_error=NULL "
                "WHERE id=?",
                (message_id, now, card_id),
            )
            self._prune(db)
        self._update_depth()

    def mark_retry(self, card_id: int, error: str, *, ambiguous: bool) -> None:
        """The attempt failed transiently; ``ambiguous`` if the request may have arrived."""
        with self._tx() as db:
            self._moved(
                db,
                card_id,
                "pending",
                "UPDATE cards SET state='pending', last_error=?, "
                "ambiguous = MAX(ambiguous, ?) WHERE id=?",
                (error[:500], int(ambiguous), card_id),
            )

    def mark_dead(self, card_id: int, error: str, now: float) -> None:
        with self._tx() as db:
            self._moved(
                db,
                card_id,
                "dead",
                "UPDATE cards SET state='dead', last_error=?, done_at=? WHERE id=?",
                (error[:500], now, card_id),
            )
        self._update_depth()

    def requeue_dead(self) -> int:
        """Put every dead letter back in the queue (after the operator fixed the cause)."""
        with self._tx() as db:
            n = db.execute(
                "UPDATE cards SET state='pending', last_error=NULL WHERE state='dead'"
            ).rowcount
            self._staged += n
        self._update_depth()
        return n

    # -- meta (chat migration, dedup state, drop count) --------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def take_dropped_unreported(self, upto: int) -> None:
        """The sender told the operator about ``upto`` dropped cards."""
        with self._tx() as db:
            self._bump_meta(db, "dropped_unreported", -upto)

    def dropped_unreported(self) -> int:
        return int(self.get_meta("dropped_unreported") or 0)

    @staticmethod
    def _bump_meta(db: sqlite3.Connection, key: str, delta: int) -> None:
        row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        value = max(int(row[0]) if row else 0, 0) + delta
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(max(value, 0)))
        )

    # -- inspection --------------------------------------------------------------------

    def depth(self) -> int:
        """Cards not yet sent, dead or dropped: the running count (no table scan)."""
        with self._lock:
            self._sync_unsent()
            return self._unsent

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM cards GROUP BY state").fetchall()
        return {state: int(n) for state, n in rows}

    def cards(self, state: str | None = None) -> list[Card]:
        query = _SELECT
        args: tuple[str, ...] = ()
        if state is not None:
            query += " WHERE state=?"
            args = (state,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        return [_card(r) for r in rows]

    def _prune(self, db: sqlite3.Connection) -> None:
        """Keep the newest ``keep_done`` sent/dropped rows; dead letters stay until requeued."""
        db.execute(
            "DELETE FROM cards WHERE state IN ('sent','dropped') AND id <= ("
            "SELECT id FROM cards WHERE state IN ('sent','dropped') "
            "ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (self.keep_done,),
        )

    def _update_depth(self) -> None:
        if self.metrics:
            self.metrics.outbox_depth.set(self.depth())


_SELECT = (
    "SELECT id, event, agents, critical, alert, text, state, attempts, ambiguous, "
    "enqueued_at, chat_id, message_id, last_error FROM cards"
)


def _card(row: Any) -> Card:
    (cid, event, agents, critical, alert, text, state, attempts, ambiguous, enq) = row[:10]
    chat, msg, err = row[10:]
    return Card(
        id=int(cid),
        event=str(event),
        agents=tuple(json.loads(agents)),
        critical=bool(critical),
        alert=Alert.from_json(json.loads(alert)),
        text=str(text),
        state=str(state),
        attempts=int(attempts),
        ambiguous=bool(ambiguous),
        enqueued_at=float(enq),
        chat_id=None if chat is None else int(chat),
        message_id=None if msg is None else int(msg),
        last_error=None if err is None else str(err),
    )
