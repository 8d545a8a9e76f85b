"""Prometheus metrics for the watcher, all on one registry the daemon serves on 127.0.0.1.

Why a class per area rather than module-level globals: tests (and the demo) build as many
independent ``Metrics`` as they like, each on its own ``CollectorRegistry``, so counter
values read in one test never leak into another. The daemon builds exactly one.

To add an area (probes, tail, pins...): write a frozen ``<Area>Metrics`` dataclass with a
``register(registry)`` classmethod next to ``AlertMetrics`` and add one attribute to
``Metrics.__init__``. Names all start with ``PREFIX``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

PREFIX = "failover_watcher"


@dataclass(frozen=True)
class AlertMetrics:
    """Telegram cards: what was sent, failed, suppressed (and why), dead-lettered, dropped."""

    sent: Counter
    failed: Counter
    suppressed: Counter
    dead_lettered: Counter
    dropped: Counter
    outbox_depth: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> AlertMetrics:
        return cls(
            sent=Counter(
                f"{PREFIX}_alerts_sent_total",
                "Cards delivered to Telegram, by transition type.",
                ["event"],
                registry=registry,
            ),
            failed=Counter(
                f"{PREFIX}_alerts_failed_total",
                "Send attempts that failed (each retry counts), by transition type.",
                ["event"],
                registry=registry,
            ),
            suppressed=Counter(
                f"{PREFIX}_alerts_suppressed_total",
                "Cards not sent, by reason (dedup, flapping, catch_up, muted) and type.",
                ["reason", "event"],
                registry=registry,
            ),
            dead_lettered=Counter(
                f"{PREFIX}_alerts_dead_lettered_total",
                "Cards given up on after a permanent Telegram error, by transition type.",
                ["event"],
                registry=registry,
            ),
            dropped=Counter(
                f"{PREFIX}_alerts_dropped_total",
                "Cards dropped unsent because the outbox was full, by transition type.",
                ["event"],
                registry=registry,
            ),
            outbox_depth=Gauge(
                f"{PREFIX}_outbox_depth",
                "Cards waiting in the outbox (pending or being sent).",
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class SinkMetrics:
    """Every alert sink (telegram, alertmanager) on the same names, by ``sink``."""

    sent: Counter
    failed: Counter
    dead_lettered: Counter
    pending: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> SinkMetrics:
        return cls(
            sent=Counter(
                f"{PREFIX}_sink_sent_total",
                "Alerts (Telegram cards, Alertmanager ops) a sink accepted.",
                ["sink"],
                registry=registry,
            ),
            failed=Counter(
                f"{PREFIX}_sink_failed_total",
                "Deliveries to a sink that failed and will be retried (each attempt counts).",
                ["sink"],
                registry=registry,
            ),
            dead_lettered=Counter(
                f"{PREFIX}_sink_dead_lettered_total",
                "Alerts a sink refused for good (kept as dead letters).",
                ["sink"],
                registry=registry,
            ),
            pending=Gauge(
                f"{PREFIX}_sink_pending",
                "Alerts queued for a sink, not yet accepted.",
                ["sink"],
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class WatcherMetrics:
    """The tail, the core's transitions and the probes."""

    events: Counter
    unparsed: Counter
    transitions: Counter
    in_fallback: Gauge
    serving_paid: Gauge
    cooldown_seconds: Gauge
    probe_results: Counter
    journal_lag: Gauge
    last_applied: Gauge
    pin_lock_timeouts: Counter
    chain_working_depth: Gauge
    drill_last_success: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> WatcherMetrics:
        return cls(
            events=Counter(
                f"{PREFIX}_events_total",
                "Fallback decisions read from the gateway log, by decision and failure class.",
                ["decision", "failure_class"],
                registry=registry,
            ),
            unparsed=Counter(
                f"{PREFIX}_unparsed_lines_total",
                "Lines with a fallback marker that could not be parsed.",
                registry=registry,
            ),
            transitions=Counter(
                f"{PREFIX}_transitions_total",
                "Transitions the core decided, by type (catch-up included).",
                ["type"],
                registry=registry,
            ),
            in_fallback=Gauge(
                f"{PREFIX}_in_fallback",
                "1 when the agent is pinned away from its primary.",
                ["agent"],
                registry=registry,
            ),
            serving_paid=Gauge(
                f"{PREFIX}_serving_paid",
                "1 when the agent is pinned away from its primary to a paid provider's model.",
                ["agent"],
                registry=registry,
            ),
            cooldown_seconds=Gauge(
                f"{PREFIX}_cooldown_seconds",
                "Seconds left in the model's throttle cooldown (0 when none).",
                ["model"],
                registry=registry,
            ),
            probe_results=Counter(
                f"{PREFIX}_probe_results_total",
                "Failback probe results, by provider and result (ok or failure class).",
                ["provider", "result"],
                registry=registry,
            ),
            journal_lag=Gauge(
                f"{PREFIX}_journal_lag_seconds",
                "Age of the last applied journal entry when it was applied.",
                registry=registry,
            ),
            last_applied=Gauge(
                f"{PREFIX}_last_applied_entry_timestamp_seconds",
                "Journal time of the last applied entry (epoch seconds).",
                registry=registry,
            ),
            pin_lock_timeouts=Counter(
                f"{PREFIX}_pin_lock_timeouts_total",
                "Times the pin file lock stayed held by someone else past the lock timeout "
                "(the watcher keeps waiting).",
                registry=registry,
            ),
            chain_working_depth=Gauge(
                f"{PREFIX}_chain_working_depth",
                "Members of the agent's chain that answered the last drill.",
                ["agent"],
                registry=registry,
            ),
            drill_last_success=Gauge(
                f"{PREFIX}_drill_last_success_timestamp_seconds",
                "When the last drill completed (epoch seconds).",
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class ClockMetrics:
    """Wall-clock steps seen by the daemon's steady clock (``watcher.shell.clock``)."""

    jumps: Counter
    offset: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> ClockMetrics:
        return cls(
            jumps=Counter(
                f"{PREFIX}_clock_jumps_total",
                "Wall-clock steps larger than the threshold, by direction (forward, backward).",
                ["direction"],
                registry=registry,
            ),
            offset=Gauge(
                f"{PREFIX}_clock_offset_seconds",
                "Wall clock minus the daemon's now (positive while a forward step is held off).",
                registry=registry,
            ),
        )


class Metrics:
    """Every watcher metric, grouped by area, on one registry (its own unless passed in)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.alerts = AlertMetrics.register(self.registry)
        self.sinks = SinkMetrics.register(self.registry)
        self.watcher = WatcherMetrics.register(self.registry)
        self.clock = ClockMetrics.register(self.registry)

    def initialise(self, events: Iterable[str], reasons: Iterable[str]) -> None:
        """Every known label set at 0 from the start: a rule such as
        ``increase(failover_watcher_alerts_dead_lettered_total[1h]) > 0`` or an absent()
        check must see the series before its first increment. ``events``: the
        transition types; ``reasons``: why a card can be suppressed (the caller knows
        both; this module sits below them)."""
        reasons = tuple(reasons)
        for kind in events:
            for counter in (self.alerts.sent, self.alerts.failed, self.alerts.dead_lettered,
                            self.alerts.dropped):
                counter.labels(kind)
            for reason in reasons:
                self.alerts.suppressed.labels(reason, kind)
            self.watcher.transitions.labels(kind)
        for sink in ("telegram", "alertmanager"):
            for counter in (self.sinks.sent, self.sinks.failed, self.sinks.dead_lettered):
                counter.labels(sink)
            self.sinks.pending.labels(sink)
        for direction in ("forward", "backward"):
            self.clock.jumps.labels(direction)

    def exposition(self) -> bytes:
        """The text format a scrape returns (also what ``promtool check metrics`` reads)."""
        return generate_latest(self.registry)
