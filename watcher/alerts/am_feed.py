"""What Alertmanager should know, decided on the producer side, in the outbox transaction.

Alertmanager is stateful where Telegram is a stream: an alert fires until someone says
it ended, and its identity is its label set. So each watcher alert becomes zero or more
*ops* on the ``alertmanager`` queue, written in the same SQLite transaction as the
Telegram cards and the dedup state (one fsync, nothing lost or repeated on a crash):

- **Lifecycle alerts** (``LIFECYCLE``) fire and stay firing, one per agent (and per
  model for a cooldown). The set of firing ones is the ``am_active`` table; the sender
  re-posts it before each ``endsAt`` runs out.
- **They end from the state, not from a card.** After every applied batch (and tick)
  each firing alert is checked against the core's state: FALLBACK_FIRED ends when the
  agent serves its primary again (a RECOVERY, an operator repin, a chain change),
  HARD_FAILURE when its chain is no longer exhausted, FLAPPING_START when the flap
  freeze is released (FLAPPING_STOP), THROTTLE_COOLDOWN when the cooldown ended or was
  reset. Ending posts the alert with ``endsAt`` = now. Reading the state rather than
  RECOVERY cards means a card the dedup suppressed can never leave an alert firing.
- **Other types** (RECOVERY, DRILL_REPORT, BREAKER_TRIPPED, ...) are one-shot: posted
  once with ``endsAt`` = their time + ``event_ttl_s``, and only when Telegram's dedup
  sent their card (the dedup and its suppressed counts apply to the fleet too).
  RECOVERY and FLAPPING_STOP are not posted at all: they are the *end* of an alert.

Labels: ``alertname`` (the transition type), ``agent``, ``model``, ``provider``,
``failure_class`` and ``gateway`` (the configured instance); empty ones are left out.
Annotations: ``summary``, ``description`` (the card as plain text) and ``suppressed``.
"""

from __future__ import annotations

import html
import json
import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Protocol

from watcher.alerts.cards import render
from watcher.alerts.dedup import Verdict
from watcher.core.transitions import Alert
from watcher.core.transitions import TransitionType as T


class AgentView(Protocol):
    """What the feed reads of an agent (``watcher.core.state.AgentState``). A protocol,
    not the import: the breaker imports this room, and must not reach the pin schema."""

    @property
    def chain(self) -> tuple[str, ...]: ...
    @property
    def serving(self) -> str: ...
    @property
    def exhausted(self) -> bool: ...
    @property
    def flapping(self) -> bool: ...


class ModelView(Protocol):
    def in_cooldown(self, at: float) -> bool: ...


class StateView(Protocol):
    """The core's ``State``, as far as ending alerts goes."""

    @property
    def agents(self) -> Mapping[str, AgentView]: ...
    @property
    def models(self) -> Mapping[str, ModelView]: ...

SINK = "alertmanager"
LIFECYCLE: frozenset[T] = frozenset(
    {T.FALLBACK_FIRED, T.HARD_FAILURE, T.FLAPPING_START, T.THROTTLE_COOLDOWN}
)
ENDINGS: frozenset[T] = frozenset({T.RECOVERY, T.FLAPPING_STOP})


_TAG = re.compile(r"<[^>]+>")


def plain(card: str) -> str:
    """A Telegram HTML card as plain text, for an annotation."""
    return html.unescape(_TAG.sub("", card)).strip()


def provider_of(model: str | None) -> str:
    return model.split("/", 1)[0] if model and "/" in model else ""


@dataclass(frozen=True, slots=True)
class Firing:
    """One lifecycle alert Alertmanager holds firing, as kept in ``am_active``."""

    key: str
    alertname: str
    agent: str
    model: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    ends_cap: float | None  # a cooldown's end: never post it firing past this

    def to_json(self) -> dict[str, Any]:
        return {
            "alertname": self.alertname, "agent": self.agent, "model": self.model,
            "labels": self.labels, "annotations": self.annotations,
            "starts_at": self.starts_at, "ends_cap": self.ends_cap,
        }

    @classmethod
    def from_json(cls, key: str, data: dict[str, Any]) -> Firing:
        return cls(key=key, **data)

    def op(self, *, ends_at: float | None) -> dict[str, Any]:
        """A queue op: post this alert firing (``ends_at`` None: the sender sets it) or
        ended at ``ends_at``."""
        return {
            "labels": self.labels, "annotations": self.annotations,
            "starts_at": self.starts_at, "ends_at": ends_at, "ends_cap": self.ends_cap,
        }


class AmFeed:
    """The producer side of the Alertmanager sink. Holds the firing set in memory (a
    mirror of the outbox's ``am_active`` table, read once at open), so the per-batch
    check costs nothing when nothing fires. ``stage`` runs inside the outbox's
    transaction."""

    def __init__(self, db: sqlite3.Connection, *, instance: str, tz: tzinfo,
                 event_ttl_s: float) -> None:
        self.instance = instance
        self.tz = tz
        self.event_ttl_s = event_ttl_s
        self.active: dict[str, Firing] = {
            key: Firing.from_json(key, json.loads(raw))
            for key, raw in db.execute("SELECT key, alert FROM am_active").fetchall()
        }

    # -- what to post ---------------------------------------------------------------

    def _labels(self, alert: Alert, agent: str) -> dict[str, str]:
        model = alert.from_model or alert.to_model or ""
        labels = {
            "alertname": alert.type.value,
            "agent": agent,
            "model": model,
            "provider": provider_of(model),
            "failure_class": alert.failure_class or "",
            "gateway": self.instance,
        }
        return {k: v for k, v in labels.items() if v}

    def _annotations(self, alert: Alert, suppressed: int) -> dict[str, str]:
        text = plain(render(alert, suppressed_since_last=suppressed, tz=self.tz))
        notes = {
            "summary": text.splitlines()[0] if text else alert.type.value,
            "description": text,
            "suppressed": str(suppressed),
        }
        if alert.to_model and alert.to_model != alert.from_model:
            notes["to_model"] = alert.to_model
        return notes

    def ops_for(self, verdicts: Sequence[Verdict], now: float) -> list[tuple[str, dict[str, Any]]]:
        """The queue ops for one alert's verdicts, updating the firing set."""
        ops: list[tuple[str, dict[str, Any]]] = []
        for verdict in verdicts:
            alert = verdict.alert
            if alert.type in ENDINGS:
                continue
            suppressed = verdict.suppressed_since_last
            if alert.type not in LIFECYCLE:
                if verdict.send:
                    for agent in alert.agents or ("",):
                        op = {
                            "labels": self._labels(alert, agent),
                            "annotations": self._annotations(alert, suppressed),
                            "starts_at": alert.ts,
                            "ends_at": alert.ts + self.event_ttl_s,
                            "ends_cap": None,
                        }
                        ops.append((alert.type.value, op))
                continue
            for agent in alert.agents or ("",):
                scope = (alert.from_model or "") if alert.type is T.THROTTLE_COOLDOWN else ""
                key = "|".join((alert.type.value, agent, scope))
                before = self.active.get(key)
                labels = self._labels(alert, agent)
                same = before is not None and before.labels == labels
                firing = Firing(
                    key=key,
                    alertname=alert.type.value,
                    agent=agent,
                    model=alert.from_model or "",
                    labels=labels,
                    annotations=self._annotations(alert, suppressed),
                    starts_at=before.starts_at if before is not None and same else alert.ts,
                    ends_cap=alert.cooldown_until if alert.type is T.THROTTLE_COOLDOWN else None,
                )
                if before is not None and not same:
                    ops.append((before.alertname, before.op(ends_at=now)))  # replaced
                self.active[key] = firing
                ops.append((alert.type.value, firing.op(ends_at=None)))
        return ops

    def endings(self, state: StateView | None, now: float) -> list[Firing]:
        """The firing alerts the state says are over."""
        if state is None:
            return []
        return [f for f in self.active.values() if _over(f, state, now)]

    def stage(
        self,
        db: sqlite3.Connection,
        verdicts: Sequence[Sequence[Verdict]],
        state: StateView | None,
        now: float,
    ) -> int:
        """Write the ops for ``verdicts`` and for the alerts ``state`` ended, in the
        caller's open transaction. Returns how many ops were queued."""
        before = dict(self.active)
        try:  # (the caller puts ``active`` back too if the transaction fails later)
            ops = [op for vs in verdicts for op in self.ops_for(vs, now)]
            for firing in self.endings(state, now):
                end = now if firing.ends_cap is None else min(now, firing.ends_cap)
                ops.append((firing.alertname, firing.op(ends_at=max(end, firing.starts_at))))
                del self.active[firing.key]
            changed = {k for k in before.keys() | self.active.keys()
                       if before.get(k) != self.active.get(k)}
            for key in changed:
                if key in self.active:
                    db.execute(
                        "INSERT OR REPLACE INTO am_active (key, alert) VALUES (?, ?)",
                        (key, json.dumps(self.active[key].to_json(), sort_keys=True)),
                    )
                else:
                    db.execute("DELETE FROM am_active WHERE key=?", (key,))
            db.executemany(
                "INSERT INTO sink_queue (sink, enqueued_at, event, op, state) "
                "VALUES (?, ?, ?, ?, 'pending')",
                [(SINK, now, event, json.dumps(op, sort_keys=True)) for event, op in ops],
            )
        except BaseException:
            self.active = before  # the transaction rolls back: so does memory
            raise
        return len(ops)

    def firing(self) -> list[Firing]:
        return list(self.active.values())


def _over(firing: Firing, state: StateView, now: float) -> bool:
    kind = firing.alertname
    if kind == T.THROTTLE_COOLDOWN.value:
        health = state.models.get(firing.model)
        return health is None or not health.in_cooldown(now)
    agent = state.agents.get(firing.agent)
    if agent is None:
        return True
    if kind == T.FALLBACK_FIRED.value:
        return agent.serving == agent.chain[0]
    if kind == T.HARD_FAILURE.value:
        return not agent.exhausted
    if kind == T.FLAPPING_START.value:
        return not agent.flapping
    return False
