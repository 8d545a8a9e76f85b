"""Model health from evidence: real-traffic records, probe results and lane lines.

The evidence rules and the failback rule are described in ``watcher.core.decide``.
"""

from __future__ import annotations

from typing import Any

from watcher.classify.table import TAXONOMY, FailureClass
from watcher.core import trial
from watcher.core._fast import evolve
from watcher.core.cooldown import next_cooldown, retry_after_end
from watcher.core.events import (
    ChainStoppedEvidence,
    LaneHintEvidence,
    TrafficEvidence,
)
from watcher.core.evidence import ProbeResult
from watcher.core.pins import bring_up, clear_exhausted, exhaust, lane_extra, repin
from watcher.core.state import (
    ModelHealth,
)
from watcher.core.step import Cause, Decided, Step, event_time
from watcher.core.transitions import Alert, TransitionType
from watcher.parse.records import Decision
from watcher.pins.schema import iso

T = TransitionType


# Plain ``str`` values of the enums, looked up instead of read through ``.value`` (an
# enum property costs a Python call on every traffic event).
_DECISION: dict[Decision, str] = {d: d.value for d in Decision}
_CLASS: dict[FailureClass, str] = {c: c.value for c in FailureClass}
# (health evidence, starts a cooldown) per class, in one lookup.
_EVIDENCE: dict[FailureClass, tuple[bool, bool]] = {
    c: (info.health_evidence, info.starts_cooldown) for c, info in TAXONOMY.items()
}


def on_traffic(
    step: Step, ev: TrafficEvidence, jitter: float, *, from_plugin: bool = False
) -> Decided:
    """``from_plugin``: the evidence is the gateway plugin's run outcome, restated as a
    decision record (``watcher.core.outcome``)."""
    rec = ev.record
    ref = str(rec.candidate)
    agents = step.state.agents_by_model.get(ref)
    decision = rec.decision
    if agents is None:
        return step.finish(f"{_DECISION[decision]} of {ref}: in no agent's chain, ignored")
    if (
        not from_plugin
        and step.plugin.steering
        and decision is Decision.CANDIDATE_FAILED
        and rec.requested == rec.candidate
    ):
        return step.finish(
            f"{ref} failed on a run's primary attempt while the gateway plugin steers: "
            "not counted from this line (under an override it names the configured primary); "
            "the plugin's run outcome reports the model really called"
        )
    if decision is Decision.SKIP_CANDIDATE or decision is Decision.PROBE_COOLDOWN_CANDIDATE:
        return step.finish(
            f"{_DECISION[decision]} of {ref} ({rec.reason}): not evidence about the provider"
        )
    ts = rec.ts
    at = step.now if ts is None or ts > step.now else ts
    if decision is Decision.CANDIDATE_SUCCEEDED:
        cause = Cause("traffic", ev.position, None, rec.reason, rec.detail, ev.catch_up)
        return _traffic_success(step, ref, at, cause)
    failure_class = ev.failure_class or FailureClass.UNKNOWN
    evidence, starts_cooldown = _EVIDENCE[failure_class]
    if not evidence:
        return step.finish(
            f"{ref} refused ({_CLASS[failure_class]}, {rec.reason}): "
            "not evidence about the provider"
        )
    cause = Cause(
        "traffic", ev.position, _CLASS[failure_class], rec.reason, rec.detail, ev.catch_up
    )
    return _traffic_failure(
        step, ev, ref, agents, at, failure_class, starts_cooldown, cause, jitter
    )


def _traffic_success(step: Step, ref: str, at: float, cause: Cause) -> Decided:
    health = step.model(ref)
    _paid(step, ref, True, health, at, cause)
    step.set_model(
        ref,
        evolve(health, last_traffic_ok=True, fail_count=0, last_event_at=at),
        visible=health.last_traffic_ok is not True or health.fail_count != 0,
    )
    head = f"{ref} served real traffic"
    if health.failing:
        if health.in_cooldown(step.now):
            step.notes.append(f"inside its cooldown until {iso(health.cooldown_until)}: still down")
        else:
            bring_up(step, ref, at, cause, "a real request succeeded")
    clear_exhausted(step, ref, at)
    return step.finish(head)


def _traffic_failure(
    step: Step,
    ev: TrafficEvidence,
    ref: str,
    agents: tuple[str, ...],
    at: float,
    failure_class: FailureClass,
    starts_cooldown: bool,
    cause: Cause,
    jitter: float,
) -> Decided:
    policy = step.policy
    rec = ev.record
    health = step.model(ref)
    if (
        failure_class is FailureClass.TIMEOUT
        and health.last_traffic_ok is True
        and health.last_event_at is not None
        and 0 <= at - health.last_event_at < policy.lane_hint_window_s
    ):
        # A timeout is logged when it ends, up to the gateway's timeout after its call
        # began: one ending this soon after a real success may have begun before it,
        # the tail of the incident that success ended. It takes nothing down.
        return step.finish(
            f"{ref} timed out in real traffic {at - health.last_event_at:.1f} s after it "
            "served one: the call may have begun before that success, not counted"
        )
    if health.last_traffic_ok is not False:
        _paid(step, ref, False, health, at, cause)
    last_failure = health.last_traffic_failure
    occurrences = rec.occurrences
    fail_count = health.fail_count + occurrences
    changes: dict[str, Any] = {
        "last_traffic_failure": at if last_failure is None or at > last_failure else last_failure,
        "last_traffic_ok": False,
        "fail_count": fail_count,
        "last_event_at": at,
    }
    if health.failing:
        changes["failure_class"] = failure_class
        changes["reason"] = rec.reason
    if policy.traffic_rule and health.probe_streak:
        changes["probe_streak"] = 0
        changes["streak_started_at"] = None
        step.notes.append("probe streak reset by real traffic")
    throttled = policy.cooldown and starts_cooldown
    if health.failing and health.trial_open:
        changes.update(trial.failed_trial_changes(health, at, ev.retry_after_s, step))
    elif throttled:
        changes.update(_throttle(step, ref, health, at, ev.retry_after_s, jitter, cause))
    went_down = not health.failing and (throttled or fail_count >= policy.fall)
    if went_down:
        changes["failure_class"] = failure_class
        changes["reason"] = rec.reason
        changes["failing"] = True
        changes["since"] = at
    step.set_model(ref, evolve(health, **changes))
    count = f" x{occurrences}" if occurrences > 1 else ""
    head = f"{ref} failed in real traffic{count} ({_CLASS[failure_class]}, {rec.reason})"
    if went_down:
        repin(step, agents, at, cause)
    elif not health.failing:
        step.notes.append(f"{fail_count}/{policy.fall} failures: still up")
    if rec.next is None:
        for agent_id in agents:
            agent = step.agents[agent_id]
            if agent.chain[-1] == ref and not agent.exhausted:
                exhaust(step, agent_id, agent, at, cause)
    if step.alerts:
        extra = lane_extra(step, agents, at)
        if extra:
            for key, alert in list(step.alerts.items()):
                step.alerts[key] = evolve(alert, extra={**alert.extra, **extra})
    return step.finish(head)


def _throttle(
    step: Step,
    ref: str,
    health: ModelHealth,
    at: float,
    retry_after_s: float | None,
    jitter: float,
    cause: Cause,
) -> dict[str, Any]:
    """Start or extend the model's cooldown; returns the ModelHealth changes."""
    cd = next_cooldown(
        until=health.cooldown_until,
        level=health.cooldown_level,
        last_throttle_at=health.last_throttle_at,
        at=at,
        retry_after_s=retry_after_s,
        policy=step.policy,
        jitter=jitter,
    )
    last = at if health.last_throttle_at is None else max(at, health.last_throttle_at)
    if cd.started or cd.escalated:
        agents = step.state.agents_by_model.get(ref, ())
        step.alert(
            Alert(
                type=T.THROTTLE_COOLDOWN,
                ts=at,
                agents=agents,
                from_model=ref,
                failure_class=cause.failure_class,
                reason=cause.reason,
                detail=cause.detail,
                cooldown_until=cd.until,
                catch_up=cause.catch_up,
                extra={"level": str(cd.level)},
            ),
            cause,
        )
    elif cd.until != health.cooldown_until:
        step.notes.append(f"cooldown of {ref} extended to {iso(cd.until)}")
    return {"cooldown_until": cd.until, "cooldown_level": cd.level, "last_throttle_at": last}


def _retry_after_only(
    step: Step, ref: str, health: ModelHealth, at: float, retry_after_s: float | None
) -> dict[str, Any]:
    until = retry_after_end(step.policy, at, retry_after_s)
    if until is None or (health.cooldown_until is not None and until <= health.cooldown_until):
        return {}
    step.notes.append(f"cooldown of {ref} extended to {iso(until)} by the probe's Retry-After")
    return {"cooldown_until": until}


def _paid(step: Step, ref: str, ok: bool, health: ModelHealth, at: float, cause: Cause) -> None:
    if not step.policy.is_paid(ref) or health.last_traffic_ok is ok:
        return
    step.alert(
        Alert(
            type=T.PAID_PROVIDER_SUCCESS if ok else T.PAID_PROVIDER_FAILURE,
            ts=at,
            agents=step.state.agents_by_model.get(ref, ()),
            to_model=ref,
            failure_class=None if ok else cause.failure_class,
            reason=None if ok else cause.reason,
            detail=None if ok else cause.detail,
            catch_up=cause.catch_up,
        ),
        cause,
    )


def on_chain_stopped(step: Step, ev: ChainStoppedEvidence) -> Decided:
    rec = ev.record
    return step.finish(
        f"chain stopped at {rec.candidate} ({rec.reason}): recorded, the decision lines "
        "carry the evidence"
    )


def on_lane(step: Step, ev: LaneHintEvidence) -> Decided:
    rec = ev.record
    agent = step.agents.get(rec.agent_id)
    if agent is None:
        return step.finish(f"lane line names unknown agent {rec.agent_id!r}, ignored")
    at = event_time(rec.ts, step.now)
    step.set_agent(rec.agent_id, evolve(agent, last_lane=rec.lane, last_lane_ts=at))
    step.dirty = False  # attribution is not part of the pin view
    return step.finish(f"lane line attributes the next failure to {rec.agent_id}")


def on_probe(step: Step, probe: ProbeResult, jitter: float) -> Decided:
    policy = step.policy
    ref = probe.model
    if ref not in step.state.agents_by_model:
        return step.finish(f"probe of {ref}: in no agent's chain, ignored")
    at = event_time(probe.started_at, step.now)
    health = step.model(ref)
    cause = Cause(
        kind="probe",
        evidence=probe.probe_id,
        failure_class=None if probe.failure_class is None else probe.failure_class.value,
        reason=probe.detail or None,
    )
    if probe.ok:
        if not policy.failback:
            return step.finish(f"probe of {ref} succeeded; this policy never fails back")
        if not health.failing:
            return step.finish(f"probe of {ref} succeeded; it is already up")
        if health.in_cooldown(step.now):
            return step.finish(
                f"probe of {ref} succeeded inside its cooldown until "
                f"{iso(health.cooldown_until)}: not counted"
            )
        if (
            policy.traffic_rule
            and health.last_traffic_failure is not None
            and at <= health.last_traffic_failure
        ):
            return step.finish(
                f"probe of {ref} succeeded but started before the last real-traffic failure: "
                "not counted"
            )
        if health.trial_open:
            return step.finish(
                f"probe of {ref} succeeded; its trial on {health.trial_agent} is open: "
                "the real turn decides"
            )
        canary = trial.applies(step, ref)
        if canary is not None:
            return trial.open_trial(step, ref, health, canary, at, cause)
        streak = health.probe_streak + 1
        started = health.streak_started_at if health.probe_streak else at
        if streak >= policy.rise:
            return _bring_up_or_finish(step, ref, at, cause, streak)
        step.set_model(ref, evolve(health, probe_streak=streak, streak_started_at=started))
        return step.finish(
            f"probe {streak}/{policy.rise} of {ref} succeeded; waiting for {policy.rise} in a row"
        )
    failure_class = probe.failure_class or FailureClass.UNKNOWN
    if not TAXONOMY[failure_class].health_evidence:
        return step.finish(
            f"probe of {ref} failed ({failure_class.value}): not evidence about the provider"
        )
    cause = cause._replace(failure_class=failure_class.value)
    updated = evolve(health, probe_streak=0, streak_started_at=None)
    if policy.cooldown and TAXONOMY[failure_class].starts_cooldown:
        if policy.probe_escalates or not health.failing:
            updated = evolve(
                updated, **_throttle(step, ref, updated, at, probe.retry_after_s, jitter, cause)
            )
        else:
            # Weak evidence: the model stays down and is probed again next interval;
            # only real traffic escalates, and only a Retry-After extends the cooldown.
            updated = evolve(
                updated, **_retry_after_only(step, ref, updated, at, probe.retry_after_s)
            )
    head = f"probe of {ref} failed ({failure_class.value})"
    if not health.failing:
        updated = evolve(
            updated,
            failing=True,
            failure_class=failure_class,
            reason=probe.detail or None,
            since=at,
        )
        step.set_model(ref, updated)
        repin(step, step.state.agents_by_model[ref], at, cause)
    else:
        step.set_model(ref, updated, visible=updated != health)
        step.notes.append("still down")
    return step.finish(head)


def _bring_up_or_finish(step: Step, ref: str, at: float, cause: Cause, streak: int) -> Decided:
    bring_up(step, ref, at, cause, f"{streak} probes in a row, no real-traffic failure")
    return step.finish(f"probe {streak}/{step.policy.rise} of {ref} succeeded")
