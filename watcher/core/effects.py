"""What ``decide`` asks the shell to do. Small frozen data; adapters carry them out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from watcher.core.transitions import Alert


@dataclass(frozen=True, slots=True)
class WritePins:
    """The pin view changed. The shell coalesces: one pin write (``to_pinfile(state,
    now)``, from ``watcher.pins.view``) per applied batch, however many of these the
    batch produced."""


@dataclass(frozen=True, slots=True)
class EnqueueAlert:
    """Put this alert in the outbox (the sender dedups, renders and delivers)."""

    alert: Alert


@dataclass(frozen=True, slots=True)
class AppendAudit:
    """One audit record. ``data`` is JSON-ready: before/after models, cause, evidence
    (journal position or probe id) and the policy version."""

    type: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RequestProbes:
    """Probe these models now (sorted; each at most once per probe interval)."""

    models: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MuteAlerts:
    """Suppress cards with dedup ``key`` until ``until`` (the alert intake counts them
    as suppressed with reason ``muted``). Idempotent: carrying it out twice is harmless."""

    key: str
    until: float


Effect = WritePins | EnqueueAlert | AppendAudit | RequestProbes | MuteAlerts


class EffectSink(Protocol):
    """What carries effects out: the daemon's shell, the simulator, the tests' model.
    Each method is one effect type; ``carry`` is the one place that tells them apart."""

    def alert(self, alert: Alert) -> None: ...

    def audit(self, type: str, data: Mapping[str, Any]) -> None: ...

    def write_pins(self) -> None: ...

    def probe(self, models: tuple[str, ...]) -> None: ...

    def mute(self, key: str, until: float) -> None: ...


def carry(effects: Iterable[Effect], sink: EffectSink) -> None:
    """Hand each effect to ``sink``, in order: the one interpreter of the effect types
    (the daemon, ``simulate`` and the tests' simulation all come through here, so a new
    effect type is one new method, checked by mypy on every sink)."""
    for effect in effects:
        if isinstance(effect, EnqueueAlert):
            sink.alert(effect.alert)
        elif isinstance(effect, AppendAudit):
            sink.audit(effect.type, effect.data)
        elif isinstance(effect, WritePins):
            sink.write_pins()
        elif isinstance(effect, RequestProbes):
            sink.probe(effect.models)
        elif isinstance(effect, MuteAlerts):
            sink.mute(effect.key, effect.until)
        else:  # pragma: no cover - the union above is exhaustive
            raise TypeError(f"unknown effect {effect!r}")
