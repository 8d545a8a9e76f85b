"""Pins: which chain entry each agent serves, and the card every move makes.

The rules (first entry not down, holds win, flap freeze, exhaustion) are described
in ``watcher.core.decide``; this module is their implementation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from watcher.core._fast import evolve
from watcher.core.flap import prune, score
from watcher.core.policy import Policy
from watcher.core.state import (
    HEALTHY,
    AgentState,
    ModelHealth,
    State,
)
from watcher.core.step import Cause, Step
from watcher.core.transitions import Alert, TransitionType

T = TransitionType


def pin_target(agent: AgentState, models: Mapping[str, ModelHealth], now: float) -> str | None:
    """The entry this agent should serve, or None when every entry is down."""
    hold = agent.hold
    if hold is not None and hold.active(now) and hold.model in agent.chain:
        return hold.model
    chain = agent.chain
    first_up: str | None = None
    for ref in chain:
        if not models.get(ref, HEALTHY).failing:
            first_up = ref
            break
    if first_up is None:
        return None
    if agent.flapping and first_up != agent.serving:
        current = chain.index(agent.serving)
        if chain.index(first_up) < current:
            for ref in chain[current:]:
                if not models.get(ref, HEALTHY).failing:
                    return ref
    return first_up


def repin(step: Step, agent_ids: Iterable[str], at: float, cause: Cause) -> None:
    """Recompute the pins of these agents and record every move as a card."""
    policy = step.policy
    for agent_id in agent_ids:
        agent = step.agents[agent_id]
        target = pin_target(agent, step.models, step.now)
        if target is None:
            if not agent.exhausted:
                exhaust(step, agent_id, agent, at, cause)
            continue
        if target == agent.serving:
            continue
        chain = agent.chain
        old_i, new_i = chain.index(agent.serving), chain.index(target)
        failback = new_i < old_i
        # A bounce: falling back off the very model this agent was failed back to moments
        # ago. The failback landed in failure (the 20 May signature): it counts twice.
        bounce = (
            cause.automatic
            and not failback
            and agent.last_failback_to == agent.serving
            and agent.last_failback_at is not None
            and at - agent.last_failback_at <= policy.flap_bounce_s
        )
        transitions = agent.transitions
        if cause.automatic and policy.flap_detection:
            marks = (at, at) if bounce else (at,)
            transitions = prune((*transitions, *marks), at, policy)
            flap = score(transitions, at, policy)
            # A failback on a real turn's success is evidence, not a probe's word: it
            # is never refused as a flap.
            if (
                failback
                and not agent.flapping
                and flap >= policy.flap_high_pct
                and cause.kind != "traffic"
            ):
                agent = evolve(agent, flapping=True, flap_score=flap)
                step.set_agent(agent_id, agent)
                flap_alert(step, agent_id, agent, T.FLAPPING_START, at, cause)
                frozen_target = pin_target(agent, step.models, step.now)
                if frozen_target is None or frozen_target == agent.serving:
                    continue
                target = frozen_target
                new_i = chain.index(target)
                failback = new_i < old_i
            agent = evolve(agent, flap_score=flap)
        old_model = step.model(agent.serving)
        moved = evolve(
            agent,
            serving=target,
            transitions=transitions,
            exhausted=False,
            last_event_ts=at,
        )
        if failback and cause.automatic:
            moved = evolve(moved, last_failback_to=target, last_failback_at=at)
        if new_i == 0:
            moved = evolve(moved, fallback_since=None, failure_class=None, reason=None)
        elif old_i == 0 or not failback:
            fc = old_model.failure_class.value if old_model.failure_class else cause.failure_class
            moved = evolve(
                moved,
                fallback_since=moved.fallback_since if old_i else at,
                failure_class=fc,
                reason=old_model.reason or cause.reason,
            )
        step.set_agent(agent_id, moved)
        if not cause.automatic:
            type_, extra = T.OPERATOR_OVERRIDE, {"action": "repin"}
        elif new_i == 0:
            type_, extra = T.RECOVERY, {}
        elif failback:
            type_, extra = T.RECOVERY, {"partial": "true"}
        else:
            type_, extra = T.FALLBACK_FIRED, ({"bounce": "true"} if bounce else {})
        failure_class = (
            None
            if failback
            else (old_model.failure_class.value if old_model.failure_class else cause.failure_class)
        )
        step.alert(
            Alert(
                type=type_,
                ts=at,
                agents=(agent_id,),
                from_model=agent.serving,
                to_model=target,
                failure_class=failure_class,
                reason=None if failback else (old_model.reason or cause.reason),
                detail=cause.detail,
                cooldown_until=old_model.cooldown_until if old_model.in_cooldown(at) else None,
                catch_up=cause.catch_up,
                extra=extra,
            ),
            cause,
        )
        if (
            cause.automatic
            and policy.flap_detection
            and not moved.flapping
            and moved.flap_score >= policy.flap_high_pct
            and not (failback and cause.kind == "traffic")
        ):
            moved = evolve(moved, flapping=True)
            step.set_agent(agent_id, moved)
            flap_alert(step, agent_id, moved, T.FLAPPING_START, at, cause)


def exhaust(step: Step, agent_id: str, agent: AgentState, at: float, cause: Cause) -> None:
    step.set_agent(agent_id, evolve(agent, exhausted=True, last_event_ts=at))
    step.alert(
        Alert(
            type=T.HARD_FAILURE,
            ts=at,
            agents=(agent_id,),
            from_model=agent.serving,
            to_model=agent.serving,
            failure_class=cause.failure_class,
            reason=cause.reason,
            detail=cause.detail,
            catch_up=cause.catch_up,
            extra={"why": "chain exhausted"},
        ),
        cause,
    )


def flap_alert(
    step: Step, agent_id: str, agent: AgentState, type_: TransitionType, at: float, cause: Cause
) -> None:
    step.alert(
        Alert(
            type=type_,
            ts=at,
            agents=(agent_id,),
            from_model=agent.chain[0],
            to_model=agent.serving,
            flap_score=round(agent.flap_score, 1),
            catch_up=cause.catch_up,
        ),
        cause,
        group=False,
    )


def clear_exhausted(step: Step, model: str, at: float) -> None:
    for agent_id in step.state.agents_by_model.get(model, ()):
        agent = step.agents[agent_id]
        if agent.exhausted and pin_target(agent, step.models, step.now) is not None:
            step.set_agent(agent_id, evolve(agent, exhausted=False, last_event_ts=at))


def lane_extra(step: Step, agent_ids: tuple[str, ...], at: float) -> dict[str, str]:
    window = step.policy.lane_hint_window_s
    for agent_id in agent_ids:
        agent = step.agents[agent_id]
        if agent.last_lane_ts is not None and 0 <= at - agent.last_lane_ts <= window:
            return {"attributed_to": agent_id}
    return {}


def bring_up(step: Step, ref: str, at: float, cause: Cause, why: str) -> None:
    health = step.model(ref).recovered()
    if cause.kind == "traffic":
        # A real turn succeeded: the recovery is proven, not a probe's word. The
        # cooldown history starts over (the next throttle is a new incident, not a
        # repeat to escalate), and flap freezes away from it are released.
        health = evolve(health, cooldown_level=0, last_throttle_at=None)
    step.set_model(ref, health)
    step.notes.append(f"{ref} is up again ({why})")
    if cause.kind == "traffic":
        release_frozen(step, ref, at, cause)
    repin(step, step.state.agents_by_model.get(ref, ()), at, cause)
    clear_exhausted(step, ref, at)


def probe_targets(state: State, now: float, policy: Policy) -> list[str]:
    """Down models some agent is pinned away from, outside cooldown, for an agent that
    could actually move back (not held, not frozen by flap detection). Sorted. None at
    all under a policy without failback."""
    if not policy.failback:
        return []
    wanted: set[str] = set()
    for agent in state.agents.values():
        if agent.hold is not None and agent.hold.active(now):
            continue
        chain = agent.chain
        current = chain.index(agent.serving)
        serving_down = state.models.get(agent.serving, HEALTHY).failing
        # A frozen agent's primary is still probed under half-open: a trial turn is
        # the evidence that releases the freeze, and it moves no pin.
        trials = policy.half_open and state.plugin.steering
        if agent.flapping and not serving_down and not trials:
            continue
        for ref in chain[: current + 1]:
            health = state.models.get(ref, HEALTHY)
            if (
                health.failing
                and not health.in_cooldown(now)
                and not health.trial_open
                and (health.trial_not_before is None or now >= health.trial_not_before)
            ):
                wanted.add(ref)
    return sorted(wanted)


def release_frozen(step: Step, ref: str, at: float, cause: Cause) -> None:
    """A real turn on ``ref`` succeeded: agents frozen away from it by flap detection
    are released now, on that evidence, instead of waiting for their score to decay."""
    for agent_id in step.state.agents_by_model.get(ref, ()):
        agent = step.agents[agent_id]
        chain = agent.chain
        if not agent.flapping or chain.index(ref) >= chain.index(agent.serving):
            continue
        agent = evolve(agent, flapping=False)
        step.set_agent(agent_id, agent)
        flap_alert(step, agent_id, agent, T.FLAPPING_STOP, at, cause)
        step.notes.append(f"{agent_id}'s flap freeze released: a real turn on {ref} succeeded")
