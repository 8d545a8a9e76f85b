"""The producer side: alert in, dedup verdict, card rendered and durably queued. No network.

This is what the daemon calls for every ``Alert`` the core emits. Each call is one short
local SQLite transaction (the card and the dedup state together, or the dedup state
alone for a suppressed alert), so the journal tail never waits on Telegram.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import tzinfo
from typing import Any

from watcher.alerts.cards import render
from watcher.alerts.dedup import Deduplicator, DedupPolicy, Verdict
from watcher.alerts.outbox import Outbox
from watcher.core.transitions import Alert
from watcher.metrics import AlertMetrics

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
        self.tz = tz
        self.metrics = metrics
        self.on_enqueue = on_enqueue
        self._lock = threading.Lock()
        self.dedup = self._load(outbox, policy)

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

    def submit(self, alert: Alert, *, now: float, flapping: Iterable[str] = ()) -> list[Verdict]:
        """Decide, count and (if sent) enqueue ``alert``; returns every verdict made."""
        with self._lock:
            verdicts = self.dedup.decide(alert, now, flapping)
            state = json.dumps(self.dedup.to_json(), separators=(",", ":"))
            queued = False
            for verdict in verdicts:
                if verdict.send:
                    text = render(
                        verdict.alert,
                        suppressed_since_last=verdict.suppressed_since_last,
                        tz=self.tz,
                    )
                    card_id = self.outbox.enqueue(
                        verdict.alert, text, now=now, meta={DEDUP_META: state}
                    )
                    queued = True
                    log.info(
                        "card #%d queued: %s%s",
                        card_id,
                        verdict.alert.dedup_key,
                        f" (+{verdict.suppressed_since_last} suppressed)"
                        if verdict.suppressed_since_last
                        else "",
                    )
                else:
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
            if not queued:
                self.outbox.set_meta(DEDUP_META, state)
        if queued and self.on_enqueue is not None:
            self.on_enqueue()
        return verdicts

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
