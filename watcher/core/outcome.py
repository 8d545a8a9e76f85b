"""Evidence from the gateway plugin: run outcome lines and its steering state.

Under the plugin's override the gateway's decision line about a run's primary attempt
names the configured primary even when the call went to the pinned model, and a
successful pinned turn logs no decision line at all. So while the plugin steers:

- a ``candidate_failed`` whose candidate is the run's requested model (the primary
  attempt) is not counted from the decision line (``watcher.core.health``);
- the plugin's run outcome line counts instead: a failed primary attempt is a
  real-traffic failure of the model really called, and the model that served the run
  had a real-traffic success;
- later attempts (the gateway's own chain) are left to their decision lines, which
  name the right model, so nothing is counted twice.

A gateway-local refusal in an outcome (an agent's inline key parked after a 401/402)
is that agent's credential, not the model's health: nothing moves.
"""

from __future__ import annotations

from watcher.classify.table import TAXONOMY, FailureClass
from watcher.core._fast import evolve
from watcher.core.effects import Effect, WritePins
from watcher.core.events import OutcomeEvidence, PluginStateEvidence, TrafficEvidence
from watcher.core.state import PluginView
from watcher.core.step import Decided, Step, event_time
from watcher.parse.records import Attempt, Decision, FallbackDecision, ModelRef, RunOutcome


def on_plugin_state(step: Step, ev: PluginStateEvidence) -> Decided:
    rec = ev.record
    old = step.plugin
    if old.steering == rec.steering and old.kind == rec.kind:
        return step.finish(f"gateway plugin still {_says(rec.steering, rec.why)}", quiet=True)
    step.plugin = PluginView(
        steering=rec.steering, kind=rec.kind, why=rec.why, since=event_time(rec.ts, step.now)
    )
    return step.finish(f"gateway plugin now {_says(rec.steering, rec.why)}", quiet=True)


def _says(steering: bool, why: str) -> str:
    return "steers by the pin file" if steering else f"stands down ({why})"


def on_outcome(step: Step, ev: OutcomeEvidence, jitter: float) -> Decided:
    # Imported here: ``health`` imports this module's siblings, and ``on_traffic`` is
    # the one place traffic evidence is judged, whatever line it came from.
    from watcher.core.health import on_traffic

    rec = ev.record
    at = event_time(rec.ts, step.now)
    agent = step.agents.get(rec.agent_id)
    if agent is None:
        return step.finish(f"run outcome of unknown agent {rec.agent_id!r}, ignored", quiet=True)
    if rec.pinned is not None and not step.plugin.steering:
        # A run served from the pin is proof the plugin steers, whether or not its
        # state line (printed once, when the gateway started) was read.
        step.plugin = PluginView(
            steering=True, kind="fresh", why="a run was served from the pin", since=at
        )
    # The outcome names its agent: cards raised from it are attributed exactly.
    step.set_agent(
        rec.agent_id, evolve(agent, last_lane=rec.session or rec.run_id, last_lane_ts=at)
    )
    step.dirty = False  # attribution is not part of the pin view
    state = step.finish("attributed", quiet=True).state
    heads: list[str] = []
    decisions: list[Decided] = []
    primary = rec.primary_attempt
    if primary is not None and not primary.ok:
        cls = ev.primary_class or FailureClass.UNKNOWN
        if cls is FailureClass.GATEWAY_LOCAL:
            heads.append(
                f"{rec.agent_id}'s primary attempt on {primary.model} was refused or failed "
                "inside the gateway itself (a local cause such as that agent's parked "
                "credential, not the model's health)"
            )
        elif not TAXONOMY[cls].health_evidence:
            heads.append(
                f"{rec.agent_id}'s primary attempt on {primary.model} failed ({cls.value})"
            )
        else:
            traffic = TrafficEvidence(
                _as_decision(rec, primary, cls),
                failure_class=cls,
                signature=ev.primary_signature,
                http_status=primary.status,
                retry_after_s=ev.primary_retry_after_s,
                position=ev.position,
                catch_up=ev.catch_up,
            )
            decided = on_traffic(
                Step(state, step.now, step.policy), traffic, jitter, from_plugin=True
            )
            decisions.append(decided)
            state = decided.state
            heads.append(decided.sentence.rstrip("."))
    if rec.ok and rec.model is not None:
        success = TrafficEvidence(
            FallbackDecision(
                decision=Decision.CANDIDATE_SUCCEEDED,
                requested=rec.primary or rec.model,
                candidate=rec.model,
                reason="unknown",
                next=None,
                ts=rec.ts,
                run_id=rec.run_id,
            ),
            position=ev.position,
            catch_up=ev.catch_up,
        )
        decided = on_traffic(Step(state, step.now, step.policy), success, jitter, from_plugin=True)
        decisions.append(decided)
        state = decided.state
        pinned = " (the pin's model)" if rec.pinned is not None and rec.model == rec.pinned else ""
        heads.append(
            decided.sentence.rstrip(".").replace(
                f"{rec.model} served real traffic",
                f"{rec.model} served {rec.agent_id}'s run{pinned}",
                1,
            )
        )
    elif not rec.ok and not heads:
        heads.append(f"{rec.agent_id}'s run failed on {rec.model}; its decision lines carry it")
    sentence = "run outcome: " + ("; ".join(heads) or f"{rec.agent_id}'s run recorded") + "."
    return Decided(state, _in_order(decisions), sentence)


def _in_order(decisions: list[Decided]) -> tuple[Effect, ...]:
    """The effects of consecutive decisions, cards in the order they were decided, one
    WritePins at the end (as ``Step.finish`` orders a single decision's)."""
    effects: list[Effect] = []
    write = False
    for decided in decisions:
        for effect in decided.effects:
            if isinstance(effect, WritePins):
                write = True
            else:
                effects.append(effect)
    if write:
        effects.append(WritePins())
    return tuple(effects)


def _as_decision(rec: RunOutcome, attempt: Attempt, cls: FailureClass) -> FallbackDecision:
    """The failed primary attempt, stated as the decision line the gateway would have
    written had it named the model it really called."""
    later = rec.attempts[rec.attempts.index(attempt) + 1 :]
    nxt: ModelRef | None = later[0].model if later else None
    return FallbackDecision(
        decision=Decision.CANDIDATE_FAILED,
        requested=rec.primary or attempt.model,
        candidate=attempt.model,
        reason=cls.value,
        next=nxt,
        detail=attempt.error,
        suppressed_duplicates=0,
        http_code=attempt.status,
        ts=rec.ts,
        run_id=rec.run_id,
    )
