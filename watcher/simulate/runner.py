"""Run a scenario through the real watcher on a virtual clock: no sleeping.

What is simulated and what is real:

- simulated: the gateway (``watcher.simulate.gateway``), the model endpoints (the
  scenario's timeline), and time itself (a heap of timestamped events, so a simulated
  day takes seconds of wall time);
- real: the parser (``parse_line``) and taxonomy (``classify``) on every line the
  gateway prints; the pure core (``decide`` under the given ``Policy``, jitter from a
  seeded RNG so a run is deterministic); the core's ticks asking for probes (it picks
  the targets with ``probe_targets``, each at most once per probe interval), and the
  probe client judging each answer; the ``PinStore`` writing ``fallback-state.json``
  in a temporary directory; the dedup that counts; and the card renderer (cards go
  to a list instead of Telegram).

The gateway reads the pin file itself (the bytes on disk, as the real gateway does)
after each watcher write, so a request starts where the *file* says.
"""

from __future__ import annotations

import heapq
import os
import random
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC
from pathlib import Path
from typing import Any

from watcher.alerts.cards import render
from watcher.alerts.dedup import Deduplicator, DedupPolicy, SuppressionReason
from watcher.classify.evidence import to_event
from watcher.core.decide import decide, initial_state
from watcher.core.effects import carry
from watcher.core.events import Tick
from watcher.core.policy import Policy
from watcher.core.state import State
from watcher.core.transitions import Alert
from watcher.parse.lines import parse_line
from watcher.parse.records import Unparsed
from watcher.pins import schema as pinfile
from watcher.pins.store import PIN_FILENAME, PinStore
from watcher.pins.view import to_pinfile
from watcher.simulate.gateway import GatewayModel, PinnedTrial
from watcher.simulate.model import Scenario
from watcher.simulate.probes import SimulatedProbes

# Event kinds, in the order they run when they share a timestamp.
_LINE, _PROBE_RESULT, _REQUEST, _PROBES_ASKED, _TICK = range(5)


@dataclass(frozen=True, slots=True)
class PinChange:
    """The pin file's ``current_serving`` for ``agent`` changed (as the gateway saw it)."""

    t: float
    agent: str
    from_model: str
    to_model: str


@dataclass(frozen=True, slots=True)
class CardEvent:
    """One alert the core emitted and what dedup did with it."""

    t: float
    alert: Alert
    sent: bool
    reason: SuppressionReason | None
    suppressed_since_last: int  # the footer's N when sent; the running count when not
    text: str | None  # the rendered card, when sent


@dataclass(frozen=True, slots=True)
class RequestRecord:
    t: float
    agent: str
    requested: str  # where the gateway started (the pin)
    served_by: str | None  # None: chain exhausted
    hit_failing_primary: bool  # the primary was called while its traffic was failing
    trial: bool = False  # a half-open trial turn (the plugin tried the primary first)


@dataclass
class SimulationResult:
    scenario: Scenario
    policy_name: str
    policy: Policy
    pin_changes: list[PinChange] = field(default_factory=list)
    cards: list[CardEvent] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    sentences: list[tuple[float, str]] = field(default_factory=list)
    lines: int = 0  # lines the gateway printed
    unparsed: int = 0  # of those, lines the parser could not read (should be 0)
    probes: int = 0
    audit_records: int = 0
    pin_writes: int = 0
    final_pins: dict[str, str] = field(default_factory=dict)
    dedup_pending: dict[str, int] = field(default_factory=dict)  # key -> unsent suppressed
    wall_s: float = 0.0


def _arrivals(scenario: Scenario, agent: str, rng: random.Random) -> list[float]:
    """Evenly spaced request times per traffic window, with a seeded phase per agent."""
    out: list[float] = []
    phase = rng.random()
    for window in scenario.traffic.get(agent, ()):
        if window.rpm <= 0:
            continue
        step = 60.0 / window.rpm
        t = window.start + phase * step
        while t < window.end and t < scenario.end:
            out.append(t)
            t += step
    return out


class Simulation:
    """One run of one scenario under one policy. Use ``run_scenario`` unless you need
    the pieces (tests inspect ``state`` and ``store`` after ``run``)."""

    def __init__(
        self,
        scenario: Scenario,
        policy: Policy,
        policy_name: str,
        workdir: Path,
        dedup_policy: DedupPolicy | None = None,
    ) -> None:
        self.scenario = scenario
        self.policy = policy
        self.result = SimulationResult(scenario, policy_name, policy)
        self.rng = random.Random(scenario.seed)
        self.gateway = GatewayModel(scenario)
        self.store = PinStore(workdir / PIN_FILENAME, clock=lambda: self.now)
        self.dedup = Deduplicator(dedup_policy)
        self.state: State = initial_state(scenario.chains, policy)
        self.now = scenario.start
        self._queue: list[tuple[float, int, int, Any]] = []
        self._seq = 0
        self._pins = {agent: chain[0] for agent, chain in scenario.chains.items()}
        self._trials: dict[str, PinnedTrial | None] = {}
        self._probe_seq = 0
        self._in_flight: set[str] = set()
        self._position = 0

    # -- the event queue ---------------------------------------------------------------

    def _push(self, t: float, kind: int, payload: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (t, kind, self._seq, payload))

    def run(self) -> SimulationResult:
        started = time.perf_counter()
        sc = self.scenario
        self._write_pins()  # the gateway's first read: everyone on the primary
        if sc.gateway.plugin:  # the plugin says it steers as the gateway starts
            line = self.gateway.state_line(sc.start)
            self._push(line.ts, _LINE, line.text)
        for agent in sorted(sc.chains):
            for t in _arrivals(sc, agent, self.rng):
                self._push(t, _REQUEST, agent)
        self._push(sc.start + sc.tick_interval_s, _TICK)
        with SimulatedProbes() as probes:
            self._probes = probes
            while self._queue:
                t, kind, _, payload = heapq.heappop(self._queue)
                if t > sc.end:
                    break
                self.now = t
                self._handle(kind, payload)
        self.result.final_pins = dict(self._pins)
        self.result.dedup_pending = {
            key: self.dedup.pending(key) for key in {c.alert.dedup_key for c in self.result.cards}
        }
        self.result.wall_s = time.perf_counter() - started
        return self.result

    def _handle(self, kind: int, payload: Any) -> None:
        if kind == _REQUEST:
            self._request(payload)
        elif kind == _LINE:
            self._line(payload)
        elif kind == _PROBE_RESULT:
            self._in_flight.discard(payload.model)
            self._apply(payload)
        elif kind == _PROBES_ASKED:
            self._probe(payload)
        elif kind == _TICK:
            self._apply(Tick())
            self._push(self.now + self.scenario.tick_interval_s, _TICK)

    # -- the gateway's side ---------------------------------------------------------------

    def _request(self, agent: str) -> None:
        sc = self.scenario
        primary = sc.chains[agent][0]
        outcome = self.gateway.handle(
            agent, self._pins[agent], self.now, self._trials.get(agent)
        )
        hit = primary in outcome.tried and not sc.traffic_answer(primary, self.now).ok
        self.result.requests.append(
            RequestRecord(
                self.now, agent, outcome.requested, outcome.served_by, hit, outcome.trial
            )
        )
        for line in outcome.lines:
            self._push(line.ts, _LINE, line.text)

    def _line(self, text: str) -> None:
        """One printed line through the real parser and taxonomy, then the core."""
        self.result.lines += 1
        self._position += 1
        position = f"sim:{self._position}"
        record = parse_line(text)
        if record is None or isinstance(record, Unparsed):
            self.result.unparsed += 1
            return
        event = to_event(record, position=position)
        if event is None:  # pragma: no cover - records above always make an event
            raise TypeError(type(record))
        self._apply(event)

    # -- the watcher's probes ---------------------------------------------------------------

    def _probe(self, model: str) -> None:
        if model in self._in_flight:
            return
        self._in_flight.add(model)
        answer = self.scenario.probe_answer(model, self.now)
        result, latency = self._probes.probe(model, answer, self.now)
        self._probe_seq += 1
        result = replace(result, latency_s=latency, probe_id=f"sim-probe-{self._probe_seq}")
        self.result.probes += 1
        self._push(self.now + latency, _PROBE_RESULT, result)

    # -- the core and its effects ------------------------------------------------------------

    def _apply(self, event: Any) -> None:
        decided = decide(
            self.state, event, self.now, self.policy, jitter=self.rng.uniform(-1.0, 1.0)
        )
        self.state = decided.state
        if decided.sentence:
            self.result.sentences.append((self.now, decided.sentence))
        sink = _SimEffects(self)
        carry(decided.effects, sink)
        if sink.write:  # coalesced: one write per applied event, as the daemon batches
            self._write_pins()

    def _write_pins(self) -> None:
        pins = to_pinfile(self.state, self.now)
        self.store.update(lambda _read: pins)
        self.result.pin_writes += 1
        # What the gateway reads on its next session: the bytes on disk.
        on_disk = pinfile.loads(self.store.path.read_bytes())
        for agent, pin in on_disk.agents.items():
            before = self._pins.get(agent)
            if before is not None and before != pin.current_serving:
                self.result.pin_changes.append(
                    PinChange(self.now, agent, before, pin.current_serving)
                )
            self._pins[agent] = pin.current_serving
            trial = pin.trial
            self._trials[agent] = (
                None if trial is None
                else PinnedTrial(trial.model, trial.id, pinfile.from_iso(trial.until) or 0.0)
            )

    def _alert(self, alert: Alert) -> None:
        flapping = [a for a, s in self.state.agents.items() if s.flapping]
        for verdict in self.dedup.decide(alert, self.now, flapping):
            text = None
            if verdict.send:
                text = render(
                    verdict.alert, suppressed_since_last=verdict.suppressed_since_last, tz=UTC
                )
            self.result.cards.append(
                CardEvent(
                    self.now,
                    verdict.alert,
                    verdict.send,
                    verdict.reason,
                    verdict.suppressed_since_last,
                    text,
                )
            )


class _SimEffects:
    """The simulator's sink for the core's effects (``watcher.core.effects.carry``):
    cards through the real dedup, audit records counted, one coalesced pin write,
    probes on the scenario's answers, mutes ignored (no operator in a scenario)."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.write = False

    def alert(self, alert: Alert) -> None:
        self.sim._alert(alert)

    def audit(self, type: str, data: Mapping[str, Any]) -> None:
        self.sim.result.audit_records += 1

    def write_pins(self) -> None:
        self.write = True

    def probe(self, models: tuple[str, ...]) -> None:
        for model in models:
            self.sim._push(self.sim.now, _PROBES_ASKED, model)

    def mute(self, key: str, until: float) -> None:
        return None


def _scratch_dir() -> Path:
    """A private temporary directory, on tmpfs when there is one. The PinStore fsyncs
    every write exactly as in production; on a busy disk those fsyncs were 70 % of a
    run's wall time, on tmpfs they cost nothing."""
    shm = Path("/dev/shm")  # noqa: S108 - mkdtemp makes a private 0700 directory in it
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="failover-sim-", dir=base))


def run_scenario(
    scenario: Scenario,
    policy: Policy,
    policy_name: str = "default",
    *,
    workdir: Path | None = None,
) -> SimulationResult:
    """Run ``scenario`` under ``policy``; the pin file lives in ``workdir`` (a fresh
    private temporary directory, removed afterwards, when not given)."""
    if workdir is not None:
        return Simulation(scenario, policy, policy_name, workdir).run()
    scratch = _scratch_dir()
    try:
        return Simulation(scenario, policy, policy_name, scratch).run()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
