"""The pin file as a view of the core's state: what the gateway reads (fixed field
names, see ``watcher.pins.schema``). Pure: ``now`` is passed in."""

from __future__ import annotations

import json
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


def throttle_until(state: State, agent: AgentState, now: float) -> float | None:
    """The latest cooldown among the chain entries the agent is pinned away from."""
    latest: float | None = None
    for ref in agent.chain:
        if ref == agent.serving:
            break
        until = state.models.get(ref, HEALTHY).cooldown_until
        if until is not None and now < until and (latest is None or until > latest):
            latest = until
    return latest


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
    ``watcher.pins.schema.dumps`` writes (a test holds it to that). At 6,000 agents a
    batch's pin text went from 150 ms to a few (``bench/scale.py``).
    """

    def __init__(self) -> None:
        self._agents: dict[str, tuple[tuple[Any, ...], AgentPin, str]] = {}
        self._models: dict[str, tuple[tuple[Any, ...], ModelHealthRecord, str]] = {}
        # The ids in file order, kept while the chains (the same object from state to
        # state until they change) and the number of models stay: sorting 9,000 ids
        # was a sixth of a batch's write.
        self._order: tuple[Any, int, list[str], list[str]] | None = None

    def _ids(self, state: State) -> tuple[list[str], list[str]]:
        order = self._order
        if order is None or order[0] is not state.chains or order[1] != len(state.models):
            order = (state.chains, len(state.models), sorted(state.agents),
                     sorted(state.models))
            self._order = order
        return order[2], order[3]

    def render(self, state: State, now: float) -> tuple[PinFile, bytes]:
        """The pin file for ``state`` at ``now``, and its text (validated)."""
        models_of = state.models
        trials: dict[str, tuple[str, float, float]] = {}
        for ref, health in models_of.items():
            if (
                health.trial_agent is not None
                and health.trial_at is not None
                and health.trial_until is not None
            ):
                trials[health.trial_agent] = (ref, health.trial_at, health.trial_until)
        frozen_away: dict[str, float] = {}
        agents: dict[str, AgentPin] = {}
        agent_parts: list[str] = []
        cache = self._agents
        fresh: dict[str, tuple[tuple[Any, ...], AgentPin, str]] = {}
        agent_ids, model_ids = self._ids(state)
        agents_of = state.agents
        for agent_id in agent_ids:
            agent = agents_of[agent_id]
            if agent.flapping:
                for ref in agent.chain[: agent.chain.index(agent.serving)]:
                    frozen_away[ref] = max(frozen_away.get(ref, 0.0), agent.flap_score)
            hold = agent.hold
            trial = (
                trials.get(agent_id)
                # Never against an operator's hold, and only off the primary.
                if agent.in_fallback and (hold is None or not hold.active(now))
                else None
            )
            key = (
                agent, tuple(models_of.get(ref) for ref in agent.chain),
                throttle_until(state, agent, now), trial,
            )
            hit = cache.get(agent_id)
            if hit is None or hit[0] != key:
                pin = _agent_pin(state, agent, key[2], trial)
                hit = (key, pin, _fragment(agent_id, pin, AgentPin))
            fresh[agent_id] = hit
            agents[agent_id] = hit[1]
            agent_parts.append(hit[2])
        self._agents = fresh
        models: dict[str, ModelHealthRecord] = {}
        model_parts: list[str] = []
        mcache = self._models
        mfresh: dict[str, tuple[tuple[Any, ...], ModelHealthRecord, str]] = {}
        for ref in model_ids:
            health = models_of[ref]
            status: HealthState = health.health(now)
            if ref in frozen_away and status != "throttled":
                status = "flapping"
            mkey = (health, status, health.in_cooldown(now), frozen_away.get(ref, 0.0))
            mhit = mcache.get(ref)
            if mhit is None or mhit[0] != mkey:
                record = _model_record(health, status, mkey[2], mkey[3])
                mhit = (mkey, record, _fragment(ref, record, ModelHealthRecord))
            mfresh[ref] = mhit
            models[ref] = mhit[1]
            model_parts.append(mhit[2])
        self._models = mfresh
        stamp = iso(now)
        # Built unvalidated (``trusted``), each record's fragment validated as it was
        # made (``_fragment``): validating the whole file again ran every agent's checks
        # once more per batch.
        pins = PinFile.trusted(
            schema_version=SCHEMA_VERSION, updated_at=stamp, heartbeat_at=stamp,
            agents=agents, models=models,
        )
        head = json.dumps(stamp)
        text = (
            f'{{\n  "schema_version": {SCHEMA_VERSION},\n  "updated_at": {head},\n'
            f'  "heartbeat_at": {head},\n'
            f'  "agents": {_section(agent_parts)},\n  "models": {_section(model_parts)}\n}}\n'
        )
        return pins, text.encode()


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


def _fragment(key: str, record: AgentPin | ModelHealthRecord, kind: type[_Record]) -> str:
    """``"key": {...}`` as it sits in the file (indented two levels), its record
    validated from that very text."""
    body = record.model_dump_json(indent=2)
    kind.model_validate_json(body)  # raises on a record the file must never hold
    return f"    {json.dumps(key, ensure_ascii=False)}: " + body.replace("\n", "\n    ")


def _section(parts: list[str]) -> str:
    return "{\n" + ",\n".join(parts) + "\n  }" if parts else "{}"
