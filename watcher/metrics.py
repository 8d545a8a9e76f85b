"""Prometheus metrics for the watcher, all on one registry the daemon serves on 127.0.0.1.

Why a class per area rather than module-level globals: tests (and the demo) build as many
independent ``Metrics`` as they like, each on its own ``CollectorRegistry``, so counter
values read in one test never leak into another. The daemon builds exactly one.

To add an area (probes, tail, pins...): write a frozen ``<Area>Metrics`` dataclass with a
``register(registry)`` classmethod next to ``AlertMetrics`` and add one attribute to
``Metrics.__init__``. Names all start with ``PREFIX``.
"""

from __future__ import annotations

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


class Metrics:
    """Every watcher metric, grouped by area, on one registry (its own unless passed in)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.alerts = AlertMetrics.register(self.registry)

    def exposition(self) -> bytes:
        """The text format a scrape returns (also what ``promtool check metrics`` reads)."""
        return generate_latest(self.registry)
