"""What ``decide`` asks the shell to do. Small frozen data; adapters carry them out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from watcher.core.transitions import Alert


@dataclass(frozen=True, slots=True)
class WritePins:
    """The pin view changed. The shell coalesces: one ``to_pinfile(state, now)`` write
    per applied batch, however many of these the batch produced."""


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
