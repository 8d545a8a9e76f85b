"""``decide(state, event, now, policy, *, jitter) -> Decided``: the whole policy.

Pure: no clock, no I/O, no randomness. ``now`` is the decision time (epoch seconds);
``jitter`` in [-1, 1] comes from the shell's RNG and only spreads cooldowns.
Every call returns the new state, the effects for the shell, and one sentence
saying what was decided (the daemon logs it; the tests assert on it).

Evidence
  Journal records speak about a model *as candidate*. ``candidate_failed`` with a
  class whose ``TAXONOMY[c].health_evidence`` is true counts against the candidate
  (a missing class counts as UNKNOWN); ``occurrences`` (the line plus the gateway's
  suppressed duplicates) all count toward ``Policy.fall``. ``candidate_succeeded`` is
  evidence the candidate serves. ``skip_candidate``, ``probe_cooldown_candidate``,
  gateway-local refusals (GATEWAY_LOCAL) and request errors (FORMAT) say nothing
  about the provider and change nothing. Models in no agent's chain are ignored.
  The event time of a record is its ``ts`` (clamped to ``now``); ageing rules
  (cooldown expiry, hold expiry, flap decay) are checked against ``now``.

Pins
  A model is *down* (``ModelHealth.failing``) from its first counted failure until
  the failback rule lets it up. Model health is shared: a failing model moves every
  agent whose chain holds it. Each agent serves the first chain entry that is not
  down, except that an active operator hold wins, and that a flapping agent is
  frozen: it never moves back up its chain (it still moves down, away from a failing
  model; and if its current entry and every later one are down it may take an
  earlier entry that is up, since a frozen pin on a dead model helps no one).

Chain exhausted
  When every entry of an agent's chain is down, or a ``candidate_failed ... next=none``
  names the last entry of its chain, the agent gets one HARD_FAILURE card (never
  suppressed) and its pin *stays where it is*: moving it to the primary would pour
  new sessions onto a model that may be throttled or paid-for, and the probes decide
  where it goes next (the first entry to come back up takes it). The flag clears
  when the agent moves to an up model or a chain member serves again.

Failback (the cure for 20 May)
  A down model comes back up only when all of these hold: it is outside its
  cooldown; ``rise`` consecutive probes succeeded; and (``traffic_rule``) no
  real-traffic failure of it happened since the first success of that streak. A
  traffic failure resets the streak, and a probe that started before the latest
  traffic failure does not count. A probe success never erases traffic evidence. A
  real-traffic success outside the cooldown brings the model up at once (a real
  request is better evidence than any probe); inside the cooldown it is recorded
  only. Flap freeze is per agent, applied when pins are computed.

Half-open (``watcher.core.trial``)
  While the gateway plugin steers, a down primary is not brought up on probes: a
  probe success outside its cooldown opens a trial, one agent's next real turn on
  it, and only that turn's success (a real-traffic success) brings it up, for every
  agent and out of any flap freeze. A failed trial turn moves no pin and escalates
  nothing. A model that is no agent's primary keeps the probe rule above.

Cooldown
  See ``watcher.core.cooldown``: throttle-class failures (``starts_cooldown``) in
  real traffic start or extend one; a throttled probe of a down model only extends it
  by its Retry-After (``probe_escalates`` restores the old rule). A real turn's
  success starts the history over. A model in cooldown is always down and is never
  probed. THROTTLE_COOLDOWN is announced when a cooldown starts or escalates,
  not on every extension.

Flapping
  See ``watcher.core.flap``: each automatic pin change of an agent is timestamped; a
  bounce (falling back off a model within ``flap_bounce_s`` of failing back to it: the
  failback landed in failure) counts twice and its card says ``extra["bounce"]``.
  After a change, a score at or above ``flap_high_pct`` raises FLAPPING_START; a
  failback that *would* cross it is refused and raises FLAPPING_START instead, so
  the agent stays on its fallback. Ticks decay the score; below ``flap_low_pct``
  FLAPPING_STOP is raised and the pins are recomputed (normal policy resumes).
  Operator moves are deliberate and do not count.

Cards
  One alert per kind of move per event: when one shared model fails and several
  agents make the same move, a single card lists them all (``Alert.agents``), so a
  shared-primary outage is one card, not five. A partial failback (fallback-2 to
  fallback-1) is a RECOVERY card with ``extra["partial"] = "true"``.
  PAID_PROVIDER_SUCCESS / PAID_PROVIDER_FAILURE are edge-triggered per model (the
  first success after a failure or start, the first failure after a success or
  start): a paid model serving all afternoon is one card, not one per request.
  Catch-up evidence updates the state and marks its alerts ``catch_up=True``.
  Every card has an AppendAudit twin with before/after models, cause, evidence
  (journal position or probe id) and the policy version.

Operator
  MuteCards asks the shell to mute one dedup key (``MuteAlerts``), audited and
  announced; AccessRefused only audits a refused attempt. SetServing to the primary:
  that model counts healthy and its cooldown is cleared (the level is kept: the
  history is real). SetServing to a fallback is a hold until
  released. Holds with ``until`` expire on a Tick. A valid hand edit of the pin file
  is adopted agent by agent with the same rules.

Ticks
  The daemon ticks every few seconds (15 s by default): holds expire, flap scores
  decay, and due probes are requested (each down model at most once per
  ``probe_interval_s``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from watcher.core._fast import evolve
from watcher.core.drift import NOT_THE_BREAKER, chain_diff, chains_changed_alert, on_chain_lint
from watcher.core.drills import on_drill
from watcher.core.effects import RequestProbes
from watcher.core.events import (
    AccessRefused,
    ChainLint,
    ChainsChanged,
    ChainStoppedEvidence,
    DrillReported,
    Event,
    FailbackNow,
    Hold,
    LaneHintEvidence,
    MuteCards,
    OutcomeEvidence,
    PinFileEdited,
    PinFileRejected,
    PluginStateEvidence,
    Release,
    SetServing,
    Tick,
    TrafficEvidence,
)
from watcher.core.evidence import ProbeResult
from watcher.core.flap import prune, score
from watcher.core.health import on_chain_stopped, on_lane, on_probe, on_traffic
from watcher.core.operator import (
    on_access_refused,
    on_failback_now,
    on_hold,
    on_mute,
    on_pinfile_edited,
    on_pinfile_rejected,
    on_release,
    on_set_serving,
    override_alert,
)
from watcher.core.outcome import on_outcome, on_plugin_state
from watcher.core.pins import flap_alert, pin_target, probe_targets, repin
from watcher.core.policy import Policy
from watcher.core.state import (
    HEALTHY,
    AgentState,
    State,
    index_agents,
    normalise_chains,
)
from watcher.core.state import initial_state as _initial_state
from watcher.core.step import Cause, Decided, Step
from watcher.core.transitions import Alert, TransitionType
from watcher.core.trial import expire_trials

__all__ = ["Decided", "decide", "initial_state", "probe_targets"]

T = TransitionType


def initial_state(chains: Mapping[str, Iterable[str]], policy: Policy | None = None) -> State:
    """Every agent on its primary, every model healthy (``policy`` is accepted for
    symmetry with ``decide``; the initial state does not depend on it)."""
    del policy
    return _initial_state(chains)


def _on_chains(step: Step, ev: ChainsChanged) -> Decided:
    if ev.error is not None:
        cause = Cause(kind="config", automatic=False)
        step.alert(Alert(type=T.CONFIG_REJECTED, ts=step.now, detail=ev.error), cause)
        return step.finish("gateway config rejected; last good chains kept")
    try:
        chains = normalise_chains(ev.chains)
    except ValueError as exc:
        cause = Cause(kind="config", automatic=False)
        step.alert(Alert(type=T.CONFIG_REJECTED, ts=step.now, detail=str(exc)), cause)
        return step.finish("gateway config rejected; last good chains kept")
    old = step.state
    if chains == dict(old.chains):
        return step.finish("gateway config reloaded; chains unchanged")
    by_model = index_agents(chains)
    models = {ref: old.models.get(ref, HEALTHY) for ref in by_model}
    agents: dict[str, AgentState] = {}
    for agent_id, chain in chains.items():
        prior = old.agents.get(agent_id)
        if prior is None:
            agents[agent_id] = AgentState(chain=chain, serving=chain[0])
            continue
        hold = prior.hold if prior.hold is not None and prior.hold.model in chain else None
        serving = prior.serving if prior.serving in chain else chain[0]
        agents[agent_id] = replace(prior, chain=chain, serving=serving, hold=hold)
    new_state = State(
        chains=chains, agents=agents, models=models, agents_by_model=by_model, plugin=old.plugin,
        lint=old.lint,
        drill=old.drill,
    )
    step2 = Step(new_state, step.now, step.policy)
    cause = Cause(kind="config", automatic=False)
    added = sorted(set(chains) - set(old.chains))
    removed = sorted(set(old.chains) - set(chains))
    changed = sorted(a for a in chains if a in old.chains and old.chains[a] != chains[a])
    for agent_id in sorted(chains):
        agent = step2.agents[agent_id]
        target = pin_target(agent, step2.models, step.now)
        if target is not None and target != agent.serving:
            step2.set_agent(agent_id, replace(agent, serving=target, exhausted=False))
        if target is not None and target == agent.chain[0]:
            step2.set_agent(
                agent_id,
                replace(
                    step2.agents[agent_id], fallback_since=None, failure_class=None, reason=None
                ),
            )
    # An agent the edit moved (its model left the chain) or whose hold it dropped (the
    # held model left the chain) is told, like any other move: a card and an audit
    # record of the move, naming the edit as the actor. A breaker cut lands here too.
    edit = Cause(kind="config", actor="openclaw.json", automatic=False)
    for agent_id in sorted(chains):
        prior = old.agents.get(agent_id)
        if prior is None:
            continue
        after = step2.agents[agent_id].serving
        dropped = prior.hold is not None and step2.agents[agent_id].hold is None
        if after != prior.serving or dropped:
            facts = {"hold_dropped": prior.hold.model} if dropped and prior.hold else {}
            override_alert(
                step2, agent_id, prior.serving, after, step.now, edit, action="chain_changed",
                **facts,
            )
    diff = chain_diff(old.chains, chains)
    moved = {
        a: (old.agents[a].serving, step2.agents[a].serving)
        for a in sorted(chains)
        if a in old.agents and old.agents[a].serving != step2.agents[a].serving
    }
    writer = ev.writer or NOT_THE_BREAKER
    step2.alert(chains_changed_alert(step.now, diff, ev.writer, moved), edit)
    step2.audit(
        "CHAINS_CHANGED", cause, added=added, removed=removed, changed=changed,
        writer=writer, diff=diff, moved={a: list(m) for a, m in moved.items()},
    )
    step2.dirty = True
    return step2.finish(
        f"gateway chains changed by {writer} (added {added or 'none'}, removed "
        f"{removed or 'none'}, changed {changed or 'none'})"
    )


def _on_tick(step: Step) -> Decided:
    now = step.now
    policy = step.policy
    expired: list[str] = []
    for agent_id in sorted(step.agents):
        agent = step.agents[agent_id]
        if agent.hold is not None and not agent.hold.active(now):
            expired.append(f"{agent_id}'s hold on {agent.hold.model} (by {agent.hold.by}) ended")
            cause = Cause(kind="tick", actor=agent.hold.by, automatic=False)
            before = agent.serving
            step.set_agent(agent_id, replace(agent, hold=None))
            # The hold's end is the operator's decision: the move is not a flap.
            repin(step, (agent_id,), now, cause)
            step.drop_alerts_of(agent_id)
            override_alert(
                step, agent_id, before, step.agents[agent_id].serving, now, cause, action="expired"
            )
            agent = step.agents[agent_id]
        if agent.transitions:
            kept = prune(agent.transitions, now, policy)
            flap = score(kept, now, policy)
            if agent.flapping and flap < policy.flap_low_pct:
                agent = replace(agent, flapping=False, flap_score=flap, transitions=kept)
                step.set_agent(agent_id, agent)
                flap_alert(step, agent_id, agent, T.FLAPPING_STOP, now, Cause(kind="tick"))
                repin(step, (agent_id,), now, Cause(kind="tick"))
            elif kept != agent.transitions:
                step.set_agent(agent_id, replace(agent, transitions=kept, flap_score=flap))
        elif agent.flapping:  # flap detection switched off while flapping
            agent = replace(agent, flapping=False, flap_score=0.0)
            step.set_agent(agent_id, agent)
            flap_alert(step, agent_id, agent, T.FLAPPING_STOP, now, Cause(kind="tick"))
            repin(step, (agent_id,), now, Cause(kind="tick"))
    expire_trials(step)
    due: list[str] = []
    for ref in probe_targets(_snapshot(step), now, policy):
        health = step.model(ref)
        last = health.last_probe_requested_at
        if last is None or now - last >= policy.probe_interval_s or last > now:
            due.append(ref)
            # The first request after a cooldown ended also refreshes the pin file, whose
            # transient_throttle_until and "throttled" state have just run out.
            until = health.cooldown_until
            refresh = until is not None and (last is None or last < until)
            step.set_model(ref, evolve(health, last_probe_requested_at=now), visible=refresh)
    if due:
        step.effects.append(RequestProbes(tuple(due)))
        step.notes.append("probing " + ", ".join(due))
    return step.finish("; ".join(expired) if expired else "tick")


def _snapshot(step: Step) -> State:
    return State(
        chains=step.state.chains,
        agents=step.agents,
        models=step.models,
        agents_by_model=step.state.agents_by_model,
        plugin=step.plugin,
        lint=step.state.lint,
        drill=step.state.drill,
    )


def decide(
    state: State, event: Event, now: float, policy: Policy, *, jitter: float = 0.0
) -> Decided:
    """Apply one event at decision time ``now``. Never raises on odd input: what it
    cannot use it ignores, and the sentence says so."""
    step = Step(state, now, policy)
    if isinstance(event, TrafficEvidence):
        return on_traffic(step, event, jitter)
    if isinstance(event, ProbeResult):
        return on_probe(step, event, jitter)
    if isinstance(event, Tick):
        return _on_tick(step)
    if isinstance(event, LaneHintEvidence):
        return on_lane(step, event)
    if isinstance(event, OutcomeEvidence):
        return on_outcome(step, event, jitter)
    if isinstance(event, PluginStateEvidence):
        return on_plugin_state(step, event)
    if isinstance(event, ChainStoppedEvidence):
        return on_chain_stopped(step, event)
    if isinstance(event, Hold):
        return on_hold(step, event)
    if isinstance(event, Release):
        return on_release(step, event)
    if isinstance(event, SetServing):
        return on_set_serving(step, event)
    if isinstance(event, FailbackNow):
        return on_failback_now(step, event)
    if isinstance(event, MuteCards):
        return on_mute(step, event)
    if isinstance(event, AccessRefused):
        return on_access_refused(step, event)
    if isinstance(event, PinFileEdited):
        return on_pinfile_edited(step, event)
    if isinstance(event, PinFileRejected):
        return on_pinfile_rejected(step, event)
    if isinstance(event, ChainsChanged):
        return _on_chains(step, event)
    if isinstance(event, DrillReported):
        return on_drill(step, event)
    if isinstance(event, ChainLint):
        return on_chain_lint(step, event.findings, baseline=event.baseline)
    raise TypeError(f"decide() got an unknown event {type(event).__name__}")
