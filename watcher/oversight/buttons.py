"""Card buttons and pending confirmations, in ``oversight.sqlite3`` in the state dir.

Telegram's ``callback_data`` holds at most 64 bytes, so a button carries only a short
random id (``b:<id>``, ``c:<id>`` to confirm, ``x:<id>`` to cancel); what it does lives
here. Rows survive a restart, so a card sent before one still works after it (if not
stale). The store also keeps the last handled ``update_id``: each update is acted on
at most once, even across restarts.

Staleness counts from ``issued_at``: when the card's buttons were made, which is when
the sender first tried to deliver it, i.e. when the operator could first see it.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher.alerts.outbox import Card
from watcher.core.transitions import NEVER_SUPPRESSED, TransitionType

FILENAME = "oversight.sqlite3"
KEEP_S = 7 * 86400.0  # rows older than this are pruned (long stale anyway)
HOLD_BUTTON_S = 3600.0
MUTE_BUTTON_S = 1800.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS buttons (
    id        TEXT PRIMARY KEY,
    card_id   INTEGER NOT NULL,
    action    TEXT NOT NULL,
    payload   TEXT NOT NULL,
    issued_at REAL NOT NULL,
    UNIQUE (card_id, action)
);
CREATE TABLE IF NOT EXISTS confirmations (
    id        TEXT PRIMARY KEY,
    button_id TEXT NOT NULL,
    user_id   INTEGER NOT NULL,
    issued_at REAL NOT NULL,
    state     TEXT NOT NULL CHECK (state IN ('open', 'done', 'cancelled'))
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# Cards that get buttons: the ones an operator might want to act on at once.
WITH_BUTTONS = frozenset(
    {
        TransitionType.FALLBACK_FIRED,
        TransitionType.PAID_PROVIDER_SUCCESS,
        TransitionType.PAID_PROVIDER_FAILURE,
        TransitionType.THROTTLE_COOLDOWN,
        TransitionType.FLAPPING_START,
        TransitionType.HARD_FAILURE,
    }
)


def _spoken(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"


LABELS = {
    "hold": f"Hold on fallback {_spoken(HOLD_BUTTON_S)}",
    "failback": "Fail back now",
    "mute": f"Mute {_spoken(MUTE_BUTTON_S)}",
}


@dataclass(frozen=True)
class Button:
    """One button of one card: ``action`` is hold | failback | mute."""

    id: str
    card_id: int
    action: str
    payload: dict[str, Any]
    issued_at: float

    def describe(self) -> str:
        """What pressing it does, as the confirmation question says it."""
        agents = ", ".join(self.payload.get("agents", []))
        if self.action == "hold":
            model = self.payload.get("model")
            on = f" on {model}" if model else " on the model serving it now"
            return f"hold {agents}{on} for {_spoken(float(self.payload['duration_s']))}"
        if self.action == "failback":
            return f"probe the primary of {agents} now and fail back if it answers"
        key, duration = self.payload.get("key"), float(self.payload["duration_s"])
        return f"mute cards with key {key} for {_spoken(duration)}"


@dataclass(frozen=True)
class Confirmation:
    id: str
    button_id: str
    user_id: int
    issued_at: float
    state: str


def button_payloads(card: Card) -> list[tuple[str, dict[str, Any]]]:
    """The buttons a card gets (none for cards without agents or of other types)."""
    alert = card.alert
    if alert.type not in WITH_BUTTONS or not alert.agents:
        return []
    agents = list(alert.agents)
    out: list[tuple[str, dict[str, Any]]] = [
        ("hold", {"agents": agents, "model": alert.to_model, "duration_s": HOLD_BUTTON_S}),
        ("failback", {"agents": agents}),
    ]
    if alert.type not in NEVER_SUPPRESSED:
        out.append(("mute", {"key": alert.dedup_key, "duration_s": MUTE_BUTTON_S}))
    return out


class ButtonStore:
    """Thread-safe (the sender makes buttons from its worker thread)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        fresh = not self.path.exists()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        if fresh:
            self.path.chmod(0o640)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- buttons -------------------------------------------------------------------------

    def issue(self, card: Card, now: float) -> list[Button]:
        """The card's buttons, made once per card (a resend reuses them and their age)."""
        wanted = button_payloads(card)
        if not wanted:
            return []
        with self._tx() as db:
            db.execute("DELETE FROM buttons WHERE issued_at < ?", (now - KEEP_S,))
            db.execute("DELETE FROM confirmations WHERE issued_at < ?", (now - KEEP_S,))
            for action, payload in wanted:
                db.execute(
                    "INSERT OR IGNORE INTO buttons (id, card_id, action, payload, issued_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (_new_id(), card.id, action, json.dumps(payload, sort_keys=True), now),
                )
            rows = db.execute(_BUTTON + " WHERE card_id=? ORDER BY rowid", (card.id,)).fetchall()
        return [_button(r) for r in rows]

    def markup(self, card: Card, now: float) -> dict[str, Any] | None:
        """The card's inline keyboard, as the Bot API spells it."""
        buttons = self.issue(card, now)
        if not buttons:
            return None
        row = [{"text": LABELS[b.action], "callback_data": f"b:{b.id}"} for b in buttons]
        return {"inline_keyboard": [row]}

    def button(self, button_id: str) -> Button | None:
        with self._lock:
            row = self._db.execute(_BUTTON + " WHERE id=?", (button_id,)).fetchone()
        return _button(row) if row else None

    # -- confirmations -------------------------------------------------------------------

    def ask(self, button: Button, user_id: int, now: float) -> Confirmation:
        conf = Confirmation(_new_id(), button.id, user_id, now, "open")
        with self._tx() as db:
            db.execute(
                "INSERT INTO confirmations (id, button_id, user_id, issued_at, state) "
                "VALUES (?, ?, ?, ?, 'open')",
                (conf.id, conf.button_id, conf.user_id, conf.issued_at),
            )
        return conf

    def confirmation(self, conf_id: str) -> Confirmation | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, button_id, user_id, issued_at, state FROM confirmations WHERE id=?",
                (conf_id,),
            ).fetchone()
        if row is None:
            return None
        return Confirmation(str(row[0]), str(row[1]), int(row[2]), float(row[3]), str(row[4]))

    def close_confirmation(self, conf_id: str, state: str) -> bool:
        """Move an open confirmation to ``done``/``cancelled``; False if it was not open
        (a second press of the same Confirm never acts twice)."""
        with self._tx() as db:
            n = db.execute(
                "UPDATE confirmations SET state=? WHERE id=? AND state='open'", (state, conf_id)
            ).rowcount
        return n == 1

    # -- updates -------------------------------------------------------------------------

    def last_update_id(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='last_update_id'").fetchone()
        return int(row[0]) if row else 0

    def set_last_update_id(self, update_id: int) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_update_id', ?)",
                (str(update_id),),
            )


_BUTTON = "SELECT id, card_id, action, payload, issued_at FROM buttons"


def _button(row: Any) -> Button:
    return Button(str(row[0]), int(row[1]), str(row[2]), json.loads(row[3]), float(row[4]))


def _new_id() -> str:
    return secrets.token_urlsafe(9)  # 12 characters; "c:" + id stays far below 64 bytes
