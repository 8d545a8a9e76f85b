"""What a scenario is, as data: the answers models give (``Answer``), when
(``Window``, ``TimelineEntry``, ``TrafficWindow``), how the gateway behaves, and the
frozen ``Scenario`` itself. Reading a scenario file is ``watcher.simulate.scenario``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

AnswerKind = Literal["ok", "429", "5xx", "503", "timeout", "401", "wrong_model", "slot_full"]
ANSWER_KINDS: tuple[str, ...] = (
    "ok", "429", "5xx", "503", "timeout", "401", "wrong_model", "slot_full"
)
_ANSWER_ALIASES = {"200": "ok", "500": "5xx", "502": "5xx"}

POLICY_NAMES = ("default", "naive", "original")  # the policies an [expect] table may name


class ScenarioError(ValueError):
    """A scenario file that cannot be simulated; ``problems`` lists every reason."""

    def __init__(self, problems: list[str], source: str = "scenario") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class Answer:
    """What one request (or probe) to a model gets at some instant."""

    kind: AnswerKind
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    def __str__(self) -> str:
        if self.retry_after_s is not None:
            return f"{self.kind}(retry_after={self.retry_after_s:g}s)"
        return self.kind


OK = Answer("ok")


@dataclass(frozen=True, slots=True)
class Window:
    """One timeline entry: from ``start`` (inclusive) to ``end`` (exclusive)."""

    start: float
    end: float
    traffic: Answer
    probe: Answer

    def covers(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """Windows for one model ref, or for every model of a provider (``ollama/*``)."""

    pattern: str
    windows: tuple[Window, ...]

    def matches(self, model: str) -> bool:
        if self.pattern.endswith("/*"):
            return model.startswith(self.pattern[:-1])
        return model == self.pattern


@dataclass(frozen=True, slots=True)
class TrafficWindow:
    start: float
    end: float
    rpm: float


@dataclass(frozen=True, slots=True)
class GatewayBehaviour:
    """How the simulated gateway walks a chain (see ``watcher.simulate.gateway``)."""

    rate_limit_retries: int = 3  # same-model retries after a 429 before the decision line
    retry_backoff_s: float = 2.0  # first retry delay; doubles on each retry
    timeout_s: float = 30.0  # how long a timed-out attempt takes
    cooldown_s: float = 60.0  # gateway's own skip cooldown after a rate limit; 0 = off
    auth_dedup_s: float = 30.0  # identical auth lines within this window are folded
    plugin: bool = True  # the fallback-pin plugin steers (False: the stock gateway)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    start: float  # epoch seconds
    end: float
    probe_interval_s: float
    tick_interval_s: float
    seed: int
    chains: Mapping[str, tuple[str, ...]]  # agent -> primary first
    paid_providers: frozenset[str]
    traffic: Mapping[str, tuple[TrafficWindow, ...]]
    timeline: tuple[TimelineEntry, ...]
    gateway: GatewayBehaviour = GatewayBehaviour()
    expect: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    source: str | None = None  # where it was read from
    _windows_cache: dict[str, tuple[Window, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def duration_s(self) -> float:
        return self.end - self.start

    @property
    def models(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for chain in self.chains.values():
            for model in chain:
                seen.setdefault(model, None)
        return tuple(seen)

    def is_paid(self, model: str) -> bool:
        return model.partition("/")[0] in self.paid_providers

    def windows_for(self, model: str) -> tuple[Window, ...]:
        """Every window that applies to ``model``, in file order (later ones win)."""
        cached = self._windows_cache.get(model)
        if cached is None:
            cached = tuple(w for e in self.timeline if e.matches(model) for w in e.windows)
            self._windows_cache[model] = cached
        return cached

    def traffic_answer(self, model: str, t: float) -> Answer:
        for window in reversed(self.windows_for(model)):
            if window.covers(t):
                return window.traffic
        return OK

    def probe_answer(self, model: str, t: float) -> Answer:
        for window in reversed(self.windows_for(model)):
            if window.covers(t):
                return window.probe
        return OK

    def change_points(self, model: str) -> list[float]:
        """Instants where ``model``'s answers may change (window edges), sorted."""
        points = {self.start, self.end}
        for w in self.windows_for(model):
            points.update(p for p in (w.start, w.end) if self.start <= p <= self.end)
        return sorted(points)
