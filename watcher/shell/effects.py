"""The daemon's sink for the core's effects (``watcher.core.effects.carry``).

Effects are not carried out where they are decided: each batch's alerts, audit
records, pin write and mutes are first staged in a ``Pending`` that the snapshot
persists (the crash protocol, ``watcher.shell.snapshot``), and only then carried out.
Probe requests go straight to the probe scheduler: a lost one is asked for again by
the core after its probe interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from watcher.core.transitions import Alert
from watcher.shell.snapshot import Pending
from watcher.support.metrics import Metrics


class ProbeRequests(Protocol):
    def request(self, models: tuple[str, ...]) -> None: ...


class StagedEffects:
    """One batch's effects, staged in ``pending``; ``noteworthy`` says whether the
    event just carried had any the operator should read about (a card, an audit
    record, a pin-view change), so the daemon logs its sentence at INFO."""

    def __init__(
        self,
        pending: Pending,
        *,
        next_alert_seq: Callable[[], int],
        flapping: Callable[[Iterable[str]], list[str]],
        metrics: Metrics,
        probes: ProbeRequests | None,
    ) -> None:
        self.pending = pending
        self._next_seq = next_alert_seq
        self._flapping = flapping
        self._metrics = metrics
        self._probes = probes
        self.noteworthy = False

    def alert(self, alert: Alert) -> None:
        # Which of its agents are flapping right after *this* event, not after the
        # batch: the dedup's flap rule must not depend on batching or on where a crash
        # fell (and it asks about the alert's own agents only).
        self.pending.alerts.append(
            (self._next_seq(), {**alert.to_json(), "_flapping": self._flapping(alert.agents)})
        )
        self._metrics.watcher.transitions.labels(alert.type.value).inc()
        self.noteworthy = True

    def audit(self, type: str, data: Mapping[str, Any]) -> None:
        self.pending.audit.append({"type": type, "data": dict(data)})
        self.noteworthy = True

    def write_pins(self) -> None:
        # The pin file's view changed (a move, a model going up or down, a success
        # inside a cooldown): the operator should see why.
        self.pending.write_pins = True
        self.noteworthy = True

    def mute(self, key: str, until: float) -> None:
        self.pending.mutes.append((key, until))

    def probe(self, models: tuple[str, ...]) -> None:
        # The core's cadence is the one rule (simulate follows it too): the scheduler
        # runs exactly the probes the core asks for, when it asks.
        if self._probes is not None:
            self._probes.request(models)
