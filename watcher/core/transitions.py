"""What the operator sees: transition types and the alert the core emits for each.

The core decides an ``Alert``; the shell writes it to the outbox, dedups it, renders
it as a card and sends it. ``Alert`` is plain data so it round-trips through JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class TransitionType(StrEnum):
    FALLBACK_FIRED = "FALLBACK_FIRED"
    HARD_FAILURE = "HARD_FAILURE"  # chain exhausted (next=none)
    PAID_PROVIDER_SUCCESS = "PAID_PROVIDER_SUCCESS"
    PAID_PROVIDER_FAILURE = "PAID_PROVIDER_FAILURE"
    RECOVERY = "RECOVERY"  # the agent is back on its primary
    THROTTLE_COOLDOWN = "THROTTLE_COOLDOWN"
    FLAPPING_START = "FLAPPING_START"
    FLAPPING_STOP = "FLAPPING_STOP"
    OPERATOR_OVERRIDE = "OPERATOR_OVERRIDE"
    PIN_FILE_REJECTED = "PIN_FILE_REJECTED"
    CONFIG_REJECTED = "CONFIG_REJECTED"  # openclaw.json unreadable; last good chains kept
    PROBE_BUDGET_EXHAUSTED = "PROBE_BUDGET_EXHAUSTED"
    PLUGIN_INACTIVE = "PLUGIN_INACTIVE"  # the pin cannot steer the gateway (and why)
    AUDIT_TAMPERED = "AUDIT_TAMPERED"  # the audit log did not verify: set aside, restarted
    SUPPRESSION_DOMINANT = "SUPPRESSION_DOMINANT"
    BREAKER_TRIPPED = "BREAKER_TRIPPED"
    BREAKER_RESET = "BREAKER_RESET"
    CHAINS_CHANGED = "CHAINS_CHANGED"  # openclaw.json's chains changed: the diff, the writer
    CHAIN_LINT = "CHAIN_LINT"  # the chain check found something new, or it cleared
    DRILL_REPORT = "DRILL_REPORT"  # a scheduled drill's table
    CHAIN_DEGRADED = "CHAIN_DEGRADED"  # an agent lost its working depth 2 or cross-provider


# Cards of these types are never suppressed by dedup (they may still be counted).
NEVER_SUPPRESSED: frozenset[TransitionType] = frozenset(
    {
        TransitionType.FLAPPING_START,
        TransitionType.HARD_FAILURE,
        TransitionType.PIN_FILE_REJECTED,
        TransitionType.PLUGIN_INACTIVE,
        TransitionType.AUDIT_TAMPERED,
        TransitionType.SUPPRESSION_DOMINANT,
        TransitionType.BREAKER_TRIPPED,
        TransitionType.BREAKER_RESET,
        TransitionType.CHAINS_CHANGED,
        TransitionType.CHAIN_LINT,
        TransitionType.CHAIN_DEGRADED,
        TransitionType.DRILL_REPORT,
    }
)


@dataclass(frozen=True, slots=True)
class Alert:
    """One transition worth telling the operator about."""

    type: TransitionType
    ts: float  # event time, epoch seconds
    agents: tuple[str, ...] = ()  # affected agents, sorted; several for a grouped transition
    from_model: str | None = None
    to_model: str | None = None
    failure_class: str | None = None
    reason: str | None = None  # the gateway's reason= (or the probe's)
    detail: str | None = None  # unclipped; the renderer clips
    cooldown_until: float | None = None
    flap_score: float | None = None
    catch_up: bool = False  # decided while replaying history: update state, do not announce
    extra: dict[str, str] = field(default_factory=dict)  # small type-specific facts

    @property
    def dedup_key(self) -> str:
        """Transition type, agent(s), from, to and class: the dedup identity."""
        return "|".join(
            (
                self.type.value,
                ",".join(self.agents),
                self.from_model or "-",
                self.to_model or "-",
                self.failure_class or "-",
            )
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["type"] = self.type.value
        data["agents"] = list(self.agents)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alert:
        fields = dict(data)
        fields["type"] = TransitionType(fields["type"])
        fields["agents"] = tuple(fields.get("agents", ()))
        fields["extra"] = dict(fields.get("extra") or {})
        return cls(**fields)
