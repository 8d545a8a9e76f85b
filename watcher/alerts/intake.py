"""The producer side: alert in, dedup verdict, card rendered and durably queued. No network.

This is what the daemon calls for the ``Alert``s the core emits. Each call is one short
local SQLite transaction (the cards and the dedup state together, or the dedup state
alone when everything was suppressed), so the journal tail never waits on Telegram.
The daemon hands over all the alerts of one applied batch at once (``submit_many``):
one fsync'd commit per batch, not one per card.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import tzinfo
from typing import Any

from watcher.alerts.am_feed import AmFeed, StateView
from watcher.alerts.cards import render
from watcher.alerts.dedup import Deduplicator, DedupPolicy, Verdict
from watcher.alerts.outbox import Outbox
from watcher.core.transitions import Alert
from watcher.support.metrics import AlertMetrics

log = logging.getLogger(__name__)

DEDUP_META = "dedup_state"


class AlertIntake:
    """Dedup, count, render and enqueue. Thread-safe; never touches the network."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        tz: tzinfo,
        policy: DedupPolicy | None = None,
        metrics: AlertMetrics | None = None,
        on_enqueue: Callable[[], None] | None = None,
    ) -> None:
        self.outbox = outbox
        # The Alertmanager feed (``watcher.alerts.am_feed``, set by
        # ``alertmanager.attach``): staged in each transaction below, woken after it.
        self.feed: AmFeed | None = None
        self.on_feed: Callable[[], None] | None = None
        self.tz = tz
        self.metrics = metrics
        self.on_enqueue = on_enqueue
        self._lock = threading.Lock()
        self.dedup = self._load(outbox, policy)
        self._saved: str | None = None  # the dedup state as last written, once known

    @staticmethod
    def _load(outbox: Outbox, policy: DedupPolicy | None) -> Deduplicator:
        raw = outbox.get_meta(DEDUP_META)
        if raw is None:
            return Deduplicator(policy)
        try:
            return Deduplicator.from_json(json.loads(raw), policy)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("dedup state in the outbox is unreadable (%s); starting from zero", exc)
            return Deduplicator(policy)

    def submit(
        self,
        alert: Alert,
        *,
        now: float,
        flapping: Iterable[str] = (),
        meta: Mapping[str, str] | None = None,
    ) -> list[Verdict]:
        """Decide, count and (if sent) enqueue ``alert``; returns every verdict made.

        ``meta``: the caller's own outbox bookkeeping (the daemon's last alert sequence),
        written in the same transaction as the card or the dedup state, so a crash can
        never leave the card queued but the alert unaccounted for (sent twice on
        replay) or the reverse (lost). A verdict list holds at most one card to send.
        """
        return self.submit_many([(alert, flapping)], now=now, meta=meta)[0]

    def submit_many(
        self,
        alerts: Sequence[tuple[Alert, Iterable[str]]],
        *,
        now: float,
        meta: Mapping[str, str] | None = None,
        state: StateView | None = None,
    ) -> list[list[Verdict]]:
        """``submit`` for several alerts (each with who was flapping right after it), in
        order, in ONE outbox transaction: every card, the dedup state after the last
        alert and ``meta`` land together or not at all. Returns the verdicts per alert.

        The verdicts are exactly those of calling ``submit`` once per alert with the same
        ``now`` (the dedup decides in order; the window runs from the last card *sent*,
        which may be one earlier in the same batch). If the transaction fails, the
        in-memory dedup state is put back as it was, so memory never runs ahead of disk.

        ``state``: the core's state after these alerts, from which the Alertmanager feed
        (if any) ends what is over. With no alerts and nothing over, nothing is written.
        """
        extra = dict(meta or {})
        feed = self.feed
        if not alerts and (feed is None or not feed.endings(state, now)):
            return []
        staged = [0]
        active_before = dict(feed.active) if feed is not None else {}

        def also(db: Any) -> None:
            if feed is not None:
                staged[0] = feed.stage(db, verdicts, state, now)

        with self._lock:
            before = self._saved or json.dumps(self.dedup.to_json(), separators=(",", ":"))
            verdicts = [self.dedup.decide(alert, now, flapping) for alert, flapping in alerts]
            to_send = [v for vs in verdicts for v in vs if v.send]
            cards = [
                (
                    v.alert,
                    render(v.alert, suppressed_since_last=v.suppressed_since_last, tz=self.tz),
                )
                for v in to_send
            ]
            dedup_state = json.dumps(self.dedup.to_json(), separators=(",", ":"))
            try:
                ids = self.outbox.enqueue_many(
                    cards, now=now, meta={DEDUP_META: dedup_state, **extra}, also=also
                )
            except BaseException:
                self.dedup = Deduplicator.from_json(json.loads(before), self.dedup.policy)
                if feed is not None:
                    feed.active = active_before
                raise
            self._saved = dedup_state
            for card_id, verdict in zip(ids, to_send, strict=True):
                log.info(
                    "card #%d queued: %s%s",
                    card_id,
                    verdict.alert.dedup_key,
                    f" (+{verdict.suppressed_since_last} suppressed)"
                    if verdict.suppressed_since_last
                    else "",
                )
            for verdict in (v for vs in verdicts for v in vs if not v.send):
                assert verdict.reason is not None
                if self.metrics:
                    self.metrics.suppressed.labels(
                        reason=verdict.reason.value, event=verdict.alert.type.value
                    ).inc()
                log.info(
                    "card suppressed (%s): %s, %d since the last one sent",
                    verdict.reason.value,
                    verdict.alert.dedup_key,
                    verdict.suppressed_since_last,
                )
        if cards and self.on_enqueue is not None:
            self.on_enqueue()
        if staged[0] and self.on_feed is not None:
            self.on_feed()
        return verdicts

    def mute(self, key: str, until: float) -> None:
        """Mute ``key`` until ``until`` and persist it with the dedup state (the operator's
        ``/mute``; the daemon calls this for the core's ``MuteAlerts`` effect)."""
        with self._lock:
            self.dedup.mute(key, until)
            state = json.dumps(self.dedup.to_json(), separators=(",", ":"))
            self.outbox.set_meta(DEDUP_META, state)
            self._saved = state

    def status(self, now: float) -> dict[str, Any]:
        """For ``failover-watcher status``: suppression over the last hour, the outbox."""
        with self._lock:
            suppressed = self.dedup.suppressed_last_hour(now)
            sent = self.dedup.sent_last_hour(now)
        return {
            "suppressed_last_hour": {
                key: {"total": sum(r.values()), "by_reason": dict(sorted(r.items()))}
                for key, r in sorted(suppressed.items())
            },
            "sent_last_hour": sent,
            "outbox": self.outbox.counts(),
            "dropped_unreported": self.outbox.dropped_unreported(),
        }
