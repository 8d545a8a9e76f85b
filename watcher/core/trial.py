"""Half-open: a down primary earns its failback with one real turn, not a probe's word.

Probes are the liars of the 20 May story: a one-token probe got 200 while real
traffic got 429. So while the gateway plugin steers (and ``Policy.half_open``), a
probe success outside the cooldown does not bring a primary back. It opens a
*trial* instead:

- one agent, the *canary*, gets its next real turn on the primary: the pin file
  carries ``trial`` in its record, and the plugin then lets that one run's primary
  attempt go to the configured primary instead of the pinned model, with the
  gateway's own chain behind it, so a failed turn still gets served;
- the canary is the most recently active agent whose primary it is and that is
  pinned away from it, not held: the busiest agent answers soonest;
- the turn's run outcome line decides. Success is a real-traffic success: the model
  is up for every agent, and agents frozen by flap detection away from it are
  released (evidence, not a decaying score). Failure keeps the model down without
  escalating its cooldown (one turn is not a failback), and the next trial waits
  ``trial_interval_s`` or the turn's Retry-After, whichever is longer;
- a canary that sends no turn within ``trial_timeout_s`` ends the trial unanswered.

A trial is never a pin change, so it cannot land a failback in failure or feed the
flap score. What it costs is bounded: one real turn per trial, and a trial needs a
probe success first, so a model whose probes lie costs at most one turn per
``trial_interval_s`` plus one probe interval.

When no agent has the model as its primary (it is only a fallback), or the plugin
does not steer, the probe rule (``rise`` probes in a row) brings it back as before.
"""

from __future__ import annotations

from watcher.core._fast import evolve
from watcher.core.cooldown import retry_after_end
from watcher.core.state import ModelHealth
from watcher.core.step import Cause, Decided, Step
from watcher.pins.schema import iso


def trial_id(ref: str, opened_at: float) -> str:
    """The id the plugin runs a trial once for: the model and when it opened."""
    return f"{ref}@{opened_at:.3f}"


def canary_for(step: Step, ref: str) -> str | None:
    """The agent whose next turn tries ``ref``, or None when no agent can."""
    best: tuple[float, str] | None = None
    now = step.now
    for agent_id in step.state.agents_by_model.get(ref, ()):
        agent = step.agents[agent_id]
        if agent.chain[0] != ref or not agent.in_fallback:
            continue
        if agent.hold is not None and agent.hold.active(now):
            continue
        seen = agent.last_lane_ts if agent.last_lane_ts is not None else float("-inf")
        # Most recent activity first; the name breaks ties (a deterministic choice).
        key = (-seen, agent_id)
        if best is None or key < best:
            best = key
    return None if best is None else best[1]


def applies(step: Step, ref: str) -> str | None:
    """The canary when a probe success on ``ref`` should open a trial, else None."""
    if not step.policy.half_open or not step.plugin.steering:
        return None
    return canary_for(step, ref)


def open_trial(
    step: Step, ref: str, health: ModelHealth, canary: str, at: float, cause: Cause
) -> Decided:
    step.set_model(
        ref,
        evolve(
            health,
            probe_streak=0,
            streak_started_at=None,
            trial_agent=canary,
            trial_at=at,
            trial_until=at + step.policy.trial_timeout_s,
        ),
    )
    step.audit("TRIAL_OPENED", cause, model=ref, agent=canary, trial=trial_id(ref, at))
    return step.finish(
        f"probe of {ref} succeeded; half-open: {canary}'s next turn goes to {ref} first, "
        "and it comes back only if that turn succeeds"
    )


def failed_trial_changes(
    health: ModelHealth, at: float, retry_after_s: float | None, step: Step
) -> dict[str, object]:
    """The ModelHealth changes when the canary's turn on the model failed."""
    asked = retry_after_end(step.policy, at, retry_after_s)
    not_before = max(at + step.policy.trial_interval_s, asked or at)
    step.notes.append(
        f"the trial turn of {health.trial_agent} failed: still down, next trial not before "
        f"{iso(not_before)} (no escalation: one turn is not a failback)"
    )
    changes: dict[str, object] = {
        "trial_agent": None,
        "trial_at": None,
        "trial_until": None,
        "trial_failures": health.trial_failures + 1,
        "trial_not_before": not_before,
    }
    if asked is not None and (health.cooldown_until is None or asked > health.cooldown_until):
        changes["cooldown_until"] = asked
    return changes


def expire_trials(step: Step) -> None:
    """On a tick: end the trials whose canary sent no turn in time."""
    now = step.now
    for ref, health in list(step.models.items()):
        if health.trial_until is not None and now >= health.trial_until:
            step.set_model(
                ref,
                evolve(health, trial_agent=None, trial_at=None, trial_until=None,
                       trial_not_before=now),
            )
            step.notes.append(
                f"the trial of {ref} on {health.trial_agent} ended unanswered (no turn by "
                f"{iso(health.trial_until)})"
            )
