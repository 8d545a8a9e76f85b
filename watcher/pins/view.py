"""The pin file as a view of the core's state: what the gateway reads (fixed field
names, see ``watcher.pins.schema``). Pure: ``now`` is passed in."""

from __future__ import annotations

import heapq
import json
import math
from itertools import compress
from operator import is_not
from typing import Any

from watcher.core.state import HEALTHY, AgentState, ModelHealth, State
from watcher.core.trial import trial_id
from watcher.pins.schema import (
    SCHEMA_VERSION,
    AgentPin,
    HealthState,
    ModelHealthRecord,
    PinFile,
    Trial,
    iso,
)
from watcher.pins.schema import Hold as PinHold

_Record = AgentPin | ModelHealthRecord


def cooldowns_away(state: State, agent: AgentState, now: float) -> tuple[float | None, float]:
    """The latest and the earliest end of the cooldowns still running among the chain
    entries the agent is pinned away from: the first is its throttle end in the file,
    the second when ``now`` alone next changes that (``math.inf``: never)."""
    latest: float | None = None
    earliest = math.inf
    for ref in agent.chain:
        if ref == agent.serving:
            break
        until = state.models.get(ref, HEALTHY).cooldown_until
        if until is not None and now < until:
            if latest is None or until > latest:
                latest = until
            earliest = min(earliest, until)
    return latest, earliest


def to_pinfile(state: State, now: float) -> PinFile:
    """The file the gateway reads: one record per agent, model health in its own part,
    each sorted by id (the state's maps iterate in hash order)."""
    return PinView().render(state, now)[0]


class PinView:
    """``to_pinfile`` and the file's text, for one writer over successive states.

    Each agent's record, and its JSON fragment, is made again only when something it
    shows changed: its ``AgentState``, the health records of its chain (the state's
    persistent maps keep an unchanged one the same object), its throttle end and its
    trial as of ``now``. Likewise each model's. A new fragment is validated on its own
    as it is made; the text is the fragments joined, byte for byte what
    ``watcher.pins.schema.dumps`` writes (a test holds it to that).

    Nor is an unchanged record even looked at. Against the state it last rendered, the
    view finds the agents and models whose objects changed (one identity test each),
    the agents of those models, and the records whose time ran out: each record keeps
    the earliest time at which ``now`` alone changes it (a cooldown or a hold ending),
    in a heap. Only those are keyed and compared as above. A state with other chains,
    another number of models, or a clock gone back is rendered in full.
    At 6,000 agents a batch's pin text went from 150 ms to a few; finding its work this
    way, a batch's whole pin write went from 47-69 ms to 22-25 (``bench/scale.py``).
    """

    def __init__(self) -> None:
        self._agents: dict[str, tuple[tuple[Any, ...], AgentPin, bytes]] = {}
        self._models: dict[str, tuple[tuple[Any, ...], ModelHealthRecord, bytes]] = {}
        # The ids in file order, kept while the chains (the same object from state to
        # state until they change) and the number of models stay: sorting 9,000 ids
        # was a sixth of a batch's write.
        self._order: tuple[Any, int, list[str], list[str]] | None = None
        self._last: float | None = None  # the ``now`` of the last render
        self._agent_text: list[bytes] = []  # fragments in file order
        self._model_text: list[bytes] = []
        self._agent_objs: list[AgentState] = []  # what they were made from, in file order
        self._model_objs: list[ModelHealth] = []
        self._agent_pins: dict[str, AgentPin] = {}
        self._model_pins: dict[str, ModelHealthRecord] = {}
        self._agent_at: dict[str, int] = {}  # id -> its place in the file
        self._model_at: dict[str, int] = {}
        # When ``now`` alone next changes a record: a heap of (when, is_model, id), and
        # each record's live entry (an entry that is not is stale, skipped when popped).
        self._expiry: list[tuple[float, bool, str]] = []
        self._expires: dict[tuple[bool, str], float] = {}
        self._trials: dict[str, tuple[str, float, float]] = {}  # agent -> (model, at, until)
        self._trial_of: dict[str, str] = {}  # model -> the agent of its open trial
        self._flapping: set[str] = set()
        self._frozen: dict[str, float] = {}  # model -> the flap score that freezes it

    def _ids(self, state: State) -> tuple[list[str], list[str], bool]:
        order = self._order
        if order is None or order[0] is not state.chains or order[1] != len(state.models):
            order = (state.chains, len(state.models), sorted(state.agents),
                     sorted(state.models))
            self._order = order
            return order[2], order[3], True
        return order[2], order[3], False

    def render(self, state: State, now: float) -> tuple[PinFile, bytes]:
        """The pin file for ``state`` at ``now``, and its text (validated)."""
        agent_ids, model_ids, reordered = self._ids(state)
        last = self._last
        # Each id's object now, in file order: one C-level pass over each map.
        agent_objs = list(map(state.agents.__getitem__, agent_ids))
        model_objs = list(map(state.models.__getitem__, model_ids))
        if reordered or last is None or now < last:
            self._start_over(state, agent_ids, model_ids)
            agents_due: set[str] | list[str] = agent_ids
            models_due: set[str] | list[str] = model_ids
        else:
            agents_due, models_due = self._due(
                state, (agent_ids, agent_objs), (model_ids, model_objs), now
            )
        self._last = now
        self._agent_objs, self._model_objs = agent_objs, model_objs
        for agent_id in agents_due:
            self._agent(state, agent_id, now)
        frozen: dict[str, float] = {}
        for agent_id in self._flapping:
            agent = state.agents[agent_id]
            for ref in agent.chain[: agent.chain.index(agent.serving)]:
                frozen[ref] = max(frozen.get(ref, 0.0), agent.flap_score)
        if frozen != self._frozen:
            if isinstance(models_due, set):  # (a full render has every model due, in order)
                models_due |= frozen.keys() | self._frozen.keys()
            self._frozen = frozen
        for ref in models_due:
            self._model(state, ref, now)
        stamp = iso(now)
        # Built unvalidated (``trusted``), each record's fragment validated as it was
        # made (``_fragment``): validating the whole file again ran every agent's checks
        # once more per batch.
        pins = PinFile.trusted(
            schema_version=SCHEMA_VERSION, updated_at=stamp, heartbeat_at=stamp,
            agents=dict(self._agent_pins), models=dict(self._model_pins),
        )
        head = json.dumps(stamp)
        opening = (
            f'{{\n  "schema_version": {SCHEMA_VERSION},\n  "updated_at": {head},\n'
            f'  "heartbeat_at": {head},\n  "agents": '
        )
        # One join of bytes made once per record: at 6,000 agents the file is 3.5 MB,
        # and each concatenation of it as text, and its encoding, was another copy.
        return pins, b"".join((
            opening.encode(), *_section(self._agent_text), b',\n  "models": ',
            *_section(self._model_text), b"\n}\n",
        ))

    def _start_over(self, state: State, agent_ids: list[str], model_ids: list[str]) -> None:
        self._agents = {a: hit for a, hit in self._agents.items() if a in state.agents}
        self._models = {m: hit for m, hit in self._models.items() if m in state.models}
        self._agent_at = {a: i for i, a in enumerate(agent_ids)}
        self._model_at = {m: i for i, m in enumerate(model_ids)}
        self._agent_text = [b""] * len(agent_ids)
        self._model_text = [b""] * len(model_ids)
        # Filled in file order: every record is due in a full render.
        self._agent_pins, self._model_pins = {}, {}
        self._expiry, self._expires = [], {}
        self._flapping = set()
        self._trials, self._trial_of = {}, {}
        for ref, health in state.models.items():
            self._note_trial(ref, health)

    def _note_trial(self, ref: str, health: ModelHealth) -> set[str]:
        """Record ``ref``'s open trial; returns the agents whose trial changed."""
        touched: set[str] = set()
        before = self._trial_of.pop(ref, None)
        if before is not None and self._trials.get(before, ("",))[0] == ref:
            del self._trials[before]
            touched.add(before)
        if (
            health.trial_agent is not None
            and health.trial_at is not None
            and health.trial_until is not None
        ):
            self._trials[health.trial_agent] = (ref, health.trial_at, health.trial_until)
            self._trial_of[ref] = health.trial_agent
            touched.add(health.trial_agent)
        return touched

    def _due(
        self,
        state: State,
        agents: tuple[list[str], list[AgentState]],
        models: tuple[list[str], list[ModelHealth]],
        now: float,
    ) -> tuple[set[str], set[str]]:
        """The agents and models whose records may differ from the last render's: each
        id with its object now, in file order, against those of the last render."""
        (agent_ids, agent_objs), (model_ids, model_objs) = agents, models
        models_due = set(compress(model_ids, map(is_not, model_objs, self._model_objs)))
        agents_due = set(compress(agent_ids, map(is_not, agent_objs, self._agent_objs)))
        by_model = state.agents_by_model
        for ref in models_due:
            agents_due.update(by_model.get(ref, ()))
            agents_due |= self._note_trial(ref, state.models[ref])
        expiry, expires = self._expiry, self._expires
        while expiry and expiry[0][0] <= now:
            when, is_model, key = heapq.heappop(expiry)
            if expires.get((is_model, key)) == when:
                del expires[is_model, key]
                (models_due if is_model else agents_due).add(key)
        return agents_due, models_due

    def _expire_at(self, is_model: bool, key: str, when: float) -> None:
        """Make ``when`` the record's next expiry (``math.inf``: none)."""
        expires = self._expires
        if expires.get((is_model, key), math.inf) == when:
            return
        if when == math.inf:
            del expires[is_model, key]
            return
        expires[is_model, key] = when
        heapq.heappush(self._expiry, (when, is_model, key))
        if len(self._expiry) > 4 * len(expires) + 64:  # mostly stale: keep it bounded
            self._expiry = [(w, m, k) for (m, k), w in expires.items()]
            heapq.heapify(self._expiry)

    def _agent(self, state: State, agent_id: str, now: float) -> None:
        agent = state.agents[agent_id]
        models_of = state.models
        hold = agent.hold
        trial = (
            self._trials.get(agent_id)
            # Never against an operator's hold, and only off the primary.
            if agent.in_fallback and (hold is None or not hold.active(now))
            else None
        )
        throttle, due = cooldowns_away(state, agent, now)
        key = (agent, tuple(models_of.get(ref) for ref in agent.chain), throttle, trial)
        hit = self._agents.get(agent_id)
        if hit is None or hit[0] != key:
            pin = _agent_pin(state, agent, throttle, trial)
            hit = self._agents[agent_id] = (key, pin, _fragment(agent_id, pin, AgentPin))
            self._agent_pins[agent_id] = pin
            self._agent_text[self._agent_at[agent_id]] = hit[2]
        elif self._agent_pins.get(agent_id) is not hit[1]:  # a full render, from the cache
            self._agent_pins[agent_id] = hit[1]
            self._agent_text[self._agent_at[agent_id]] = hit[2]
        if agent.flapping:
            self._flapping.add(agent_id)
        else:
            self._flapping.discard(agent_id)
        # When ``now`` alone next changes this record: a cooldown it is pinned away
        # from ends, or its hold does.
        if hold is not None and hold.until is not None and now < hold.until < due:
            due = hold.until
        self._expire_at(False, agent_id, due)

    def _model(self, state: State, ref: str, now: float) -> None:
        health = state.models[ref]
        frozen = self._frozen.get(ref, 0.0)
        status: HealthState = health.health(now)
        if ref in self._frozen and status != "throttled":
            status = "flapping"
        mkey = (health, status, health.in_cooldown(now), frozen)
        mhit = self._models.get(ref)
        if mhit is None or mhit[0] != mkey:
            record = _model_record(health, status, mkey[2], mkey[3])
            mhit = self._models[ref] = (mkey, record, _fragment(ref, record, ModelHealthRecord))
            self._model_pins[ref] = record
            self._model_text[self._model_at[ref]] = mhit[2]
        elif self._model_pins.get(ref) is not mhit[1]:
            self._model_pins[ref] = mhit[1]
            self._model_text[self._model_at[ref]] = mhit[2]
        until = health.cooldown_until
        self._expire_at(True, ref, until if until is not None and now < until else math.inf)


def _agent_pin(
    state: State, agent: AgentState, throttle: float | None,
    trial: tuple[str, float, float] | None,
) -> AgentPin:
    last = agent.last_event_ts
    for ref in agent.chain:
        seen = state.models.get(ref, HEALTHY).last_event_at
        if seen is not None and (last is None or seen > last):
            last = seen
    hold = agent.hold
    return AgentPin.trusted(
        primary=agent.chain[0],
        current_serving=agent.serving,
        in_fallback=agent.in_fallback,
        last_event_ts=iso(last),
        transient_throttle_until=iso(throttle),
        chain=list(agent.chain),
        failure_class=agent.failure_class,
        reason=agent.reason,
        fallback_since=iso(agent.fallback_since),
        hold=None
        if hold is None
        else PinHold.trusted(model=hold.model, by=hold.by, until=iso(hold.until), note=hold.note),
        trial=None
        if trial is None
        else Trial.trusted(model=trial[0], id=trial_id(trial[0], trial[1]),
                           until=iso(trial[2]) or ""),
    )


def _model_record(
    health: ModelHealth, status: HealthState, cooling: bool, frozen: float
) -> ModelHealthRecord:
    return ModelHealthRecord.trusted(
        state=status,
        failure_class=health.failure_class.value if health.failure_class else None,
        since=iso(health.since) if health.failing else None,
        cooldown_until=iso(health.cooldown_until) if cooling else None,
        cooldown_level=health.cooldown_level,
        flap_score=round(frozen, 1),
        probe_streak=health.probe_streak,
        last_traffic_failure=iso(health.last_traffic_failure),
    )


def _fragment(key: str, record: AgentPin | ModelHealthRecord, kind: type[_Record]) -> bytes:
    """``"key": {...}`` as it sits in the file (indented two levels), its record
    validated from that very text."""
    body = record.model_dump_json(indent=2)
    kind.model_validate_json(body)  # raises on a record the file must never hold
    return (f"    {json.dumps(key, ensure_ascii=False)}: " + body.replace("\n", "\n    ")).encode()


def _section(parts: list[bytes]) -> tuple[bytes, ...]:
    return (b"{\n", b",\n".join(parts), b"\n  }") if parts else (b"{}",)
