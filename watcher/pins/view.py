"""The pin file as a view of the core's state: what the gateway reads (fixed field
names, see ``watcher.pins.schema``). Pure: ``now`` is passed in."""

from __future__ import annotations

from watcher.core.state import HEALTHY, AgentState, State
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
    frozen_away: dict[str, float] = {}
    agents: dict[str, AgentPin] = {}
    trials: dict[str, Trial] = {}
    for ref, health in state.models.items():
        if (
            health.trial_agent is not None
            and health.trial_at is not None
            and health.trial_until is not None
        ):
            trials[health.trial_agent] = Trial.trusted(
                model=ref, id=trial_id(ref, health.trial_at), until=iso(health.trial_until) or ""
            )
    for agent_id, agent in sorted(state.agents.items()):
        if agent.flapping:
            for ref in agent.chain[: agent.chain.index(agent.serving)]:
                frozen_away[ref] = max(frozen_away.get(ref, 0.0), agent.flap_score)
        hold = agent.hold
        last = agent.last_event_ts
        for ref in agent.chain:
            seen = state.models.get(ref, HEALTHY).last_event_at
            if seen is not None and (last is None or seen > last):
                last = seen
        agents[agent_id] = AgentPin.trusted(
            primary=agent.chain[0],
            current_serving=agent.serving,
            in_fallback=agent.in_fallback,
            last_event_ts=iso(last),
            transient_throttle_until=iso(throttle_until(state, agent, now)),
            chain=list(agent.chain),
            failure_class=agent.failure_class,
            reason=agent.reason,
            fallback_since=iso(agent.fallback_since),
            hold=None
            if hold is None
            else PinHold.trusted(
                model=hold.model, by=hold.by, until=iso(hold.until), note=hold.note
            ),
            # Never against an operator's hold, and only off the primary.
            trial=trials.get(agent_id)
            if agent.in_fallback and (hold is None or not hold.active(now))
            else None,
        )
    models: dict[str, ModelHealthRecord] = {}
    for ref, health in sorted(state.models.items()):
        status: HealthState = health.health(now)
        if ref in frozen_away and status != "throttled":
            status = "flapping"
        models[ref] = ModelHealthRecord.trusted(
            state=status,
            failure_class=health.failure_class.value if health.failure_class else None,
            since=iso(health.since) if health.failing else None,
            cooldown_until=iso(health.cooldown_until) if health.in_cooldown(now) else None,
            cooldown_level=health.cooldown_level,
            flap_score=round(frozen_away.get(ref, 0.0), 1),
            probe_streak=health.probe_streak,
            last_traffic_failure=iso(health.last_traffic_failure),
        )
    stamp = iso(now)
    # Built unvalidated (``trusted``): the store validates the text it writes, in
    # full, before the gateway can read it; validating here as well ran every agent's
    # checks twice (60 ms of a 6,000-agent write).
    return PinFile.trusted(
        schema_version=SCHEMA_VERSION, updated_at=stamp, heartbeat_at=stamp, agents=agents,
        models=models,
    )
