"""Test helpers: build events from plain values, and run a clocked simulation.

``Sim`` plays the shell: it ticks every ``tick_s``, answers ``RequestProbes`` with an
oracle, injects traffic from a generator, and records every decision, so scenario
tests can assert on the sequence of transitions and sentences.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from watcher.classify.table import FailureClass
from watcher.core.decide import Decided, decide, initial_state
from watcher.core.effects import EnqueueAlert, carry
from watcher.core.events import Event, Tick, TrafficEvidence
from watcher.core.evidence import ProbeResult
from watcher.core.policy import Policy
from watcher.core.state import State
from watcher.core.transitions import Alert
from watcher.parse.records import Decision, FallbackDecision, ModelRef

T0 = 1_779_285_600.0  # 2026-05-20T14:00:00Z


def _ref(text: str) -> ModelRef:
    return ModelRef.parse(text)


def failed(
    candidate: str,
    failure_class: FailureClass | None,
    *,
    ts: float,
    next: str | None = "x/next",
    reason: str = "unknown",
    requested: str | None = None,
    duplicates: int = 0,
    retry_after_s: float | None = None,
    detail: str | None = None,
    position: str | None = None,
    catch_up: bool = False,
) -> TrafficEvidence:
    record = FallbackDecision(
        decision=Decision.CANDIDATE_FAILED,
        requested=_ref(requested or candidate),
        candidate=_ref(candidate),
        reason=reason,
        next=None if next is None else _ref(next),
        detail=detail,
        suppressed_duplicates=duplicates,
        ts=ts,
    )
    return TrafficEvidence(
        record=record,
        failure_class=failure_class,
        signature=f"test:{reason}",
        retry_after_s=retry_after_s,
        position=position or f"cursor@{ts:.0f}",
        catch_up=catch_up,
    )


def other(
    decision: Decision, candidate: str, *, ts: float, reason: str = "unknown"
) -> TrafficEvidence:
    record = FallbackDecision(
        decision=decision,
        requested=_ref(candidate),
        candidate=_ref(candidate),
        reason=reason,
        next=None,
        ts=ts,
    )
    return TrafficEvidence(record=record, position=f"cursor@{ts:.0f}")


def succeeded(
    candidate: str, *, ts: float, requested: str | None = None, catch_up: bool = False
) -> TrafficEvidence:
    record = FallbackDecision(
        decision=Decision.CANDIDATE_SUCCEEDED,
        requested=_ref(requested or candidate),
        candidate=_ref(candidate),
        reason="unknown",
        next=None,
        ts=ts,
    )
    return TrafficEvidence(record=record, position=f"cursor@{ts:.0f}", catch_up=catch_up)


def probe(
    model: str,
    ok: bool,
    *,
    ts: float,
    failure_class: FailureClass | None = None,
    retry_after_s: float | None = None,
) -> ProbeResult:
    return ProbeResult(
        model=model,
        ok=ok,
        started_at=ts,
        latency_s=0.2,
        probe_id=f"probe-{model}-{ts:.0f}",
        failure_class=None if ok else (failure_class or FailureClass.SERVER_ERROR),
        status=200 if ok else 500,
        retry_after_s=retry_after_s,
    )


def alerts_of(decided: Decided) -> list[Alert]:
    return [e.alert for e in decided.effects if isinstance(e, EnqueueAlert)]


def moves(alerts: Iterable[Alert]) -> list[tuple[str, tuple[str, ...], str | None, str | None]]:
    return [(a.type.value, a.agents, a.from_model, a.to_model) for a in alerts]


@dataclass
class Step:
    now: float
    event: Event
    decided: Decided


ProbeOracle = Callable[[str, float], ProbeResult]
TrafficSource = Callable[["Sim", float], list[Event]]


@dataclass
class Sim:
    """A clocked run of the core: ticks, probes answered by ``oracle``, traffic from
    ``traffic`` (called once per tick with the sim itself, so it can read the pins)."""

    chains: Mapping[str, Iterable[str]]
    policy: Policy
    oracle: ProbeOracle | None = None
    traffic: TrafficSource | None = None
    tick_s: float = 15.0
    jitter: float = 0.0
    state: State = field(init=False)
    steps: list[Step] = field(default_factory=list)
    now: float = T0

    def __post_init__(self) -> None:
        self.state = initial_state(self.chains, self.policy)

    def apply(self, event: Event, now: float | None = None) -> Decided:
        when = self.now if now is None else now
        self.now = max(self.now, when)
        decided = decide(self.state, event, when, self.policy, jitter=self.jitter)
        self.state = decided.state
        self.steps.append(Step(when, event, decided))
        asked = _Asked()
        carry(decided.effects, asked)
        if self.oracle is not None:
            for model in asked.models:
                self.apply(self.oracle(model, when), when + 0.5)
        return decided

    def run_until(self, end: float) -> None:
        """Tick every ``tick_s`` on a grid anchored at ``self.now`` (probe answers land
        half a second after a tick and do not shift the grid)."""
        tick = self.now
        while tick + self.tick_s <= end:
            tick += self.tick_s
            now = tick
            self.now = max(self.now, now)
            if self.traffic is not None:
                for event in self.traffic(self, now):
                    self.apply(event, now)
            self.apply(Tick(), now)

    def serving(self, agent: str) -> str:
        return self.state.agents[agent].serving

    @property
    def alerts(self) -> list[Alert]:
        return [a for s in self.steps for a in alerts_of(s.decided)]

    def types(self) -> list[str]:
        return [a.type.value for a in self.alerts]

    def count(self, type_: str) -> int:
        return self.types().count(type_)

    def sentences(self) -> list[str]:
        return [s.decided.sentence for s in self.steps]


class _Asked:
    """The tests' sink for the core's effects: only the probe requests matter here
    (the oracle answers them); the rest are the assertions' business."""

    def __init__(self) -> None:
        self.models: list[str] = []

    def alert(self, alert: Any) -> None:
        return None

    def audit(self, type: str, data: Any) -> None:
        return None

    def write_pins(self) -> None:
        return None

    def probe(self, models: tuple[str, ...]) -> None:
        self.models.extend(models)

    def mute(self, key: str, until: float) -> None:
        return None
