"""Operator decisions: hold, release, set, failback-now, and hand edits of the pin file.

The primary set by hand counts healthy and loses its cooldown; a fallback set by hand
is a hold. Refusals are audited and said in the sentence.
"""

from __future__ import annotations

from dataclasses import replace

from watcher.core.effects import MuteAlerts
from watcher.core.events import (
    AccessRefused,
    FailbackNow,
    Hold,
    MuteCards,
    PinFileEdited,
    PinFileRejected,
    Release,
    SetServing,
)
from watcher.core.pins import clear_exhausted, repin
from watcher.core.state import (
    HoldState,
)
from watcher.core.step import Cause, Decided, Step
from watcher.core.transitions import Alert, TransitionType
from watcher.pins.schema import from_iso, iso

T = TransitionType


def _operator_cause(actor: str, kind: str = "operator") -> Cause:
    return Cause(kind=kind, actor=actor, automatic=False)


def override_alert(
    step: Step, agent_id: str, before: str, after: str, at: float, cause: Cause, **extra: str
) -> None:
    step.alert(
        Alert(
            type=T.OPERATOR_OVERRIDE,
            ts=at,
            agents=(agent_id,),
            from_model=before,
            to_model=after,
            extra={"actor": cause.actor or "?", **extra},
        ),
        cause,
        group=False,
    )


def _set_hold(step: Step, agent_id: str, hold: HoldState | None, cause: Cause, action: str) -> None:
    agent = step.agents[agent_id]
    before = agent.serving
    step.set_agent(agent_id, replace(agent, hold=hold, last_event_ts=step.now))
    repin(step, (agent_id,), step.now, cause)
    after = step.agents[agent_id].serving
    key_extra = {"action": action}
    if hold is not None and hold.note:
        key_extra["note"] = hold.note
    # The repin above recorded a generic override card if the pin moved; replace it
    # with one that says what the operator did.
    step.drop_alerts_of(agent_id)
    override_alert(step, agent_id, before, after, step.now, cause, **key_extra)


def _refuse(step: Step, why: str, cause: Cause) -> Decided:
    step.audit("OPERATOR_REFUSED", cause, why=why)
    return step.finish(f"refused: {why}", quiet=True)


def on_hold(step: Step, ev: Hold) -> Decided:
    cause = _operator_cause(ev.actor)
    agent = step.agents.get(ev.agent)
    if agent is None:
        return _refuse(step, f"no agent {ev.agent!r}", cause)
    if ev.model not in agent.chain:
        return _refuse(step, f"{ev.model} is not in {ev.agent}'s chain {list(agent.chain)}", cause)
    if ev.until is not None and ev.until <= step.now:
        return _refuse(step, f"hold until {iso(ev.until)} is already over", cause)
    hold = HoldState(model=ev.model, by=ev.actor, until=ev.until, note=ev.note)
    _set_hold(step, ev.agent, hold, cause, "hold")
    until = f" until {iso(ev.until)}" if ev.until is not None else " until released"
    return step.finish(f"{ev.actor} held {ev.agent} on {ev.model}{until}")


def on_release(step: Step, ev: Release) -> Decided:
    cause = _operator_cause(ev.actor)
    agent = step.agents.get(ev.agent)
    if agent is None:
        return _refuse(step, f"no agent {ev.agent!r}", cause)
    if agent.hold is None:
        return step.finish(f"{ev.agent} has no hold to release")
    _set_hold(step, ev.agent, None, cause, "release")
    return step.finish(f"{ev.actor} released {ev.agent}")


def _set_primary_healthy(step: Step, ref: str) -> None:
    step.set_model(ref, replace(step.model(ref).recovered(), cooldown_until=None))


def _set_serving(step: Step, agent_id: str, model: str, cause: Cause) -> str | None:
    """Apply an operator's choice of model for an agent; returns a refusal or None."""
    agent = step.agents.get(agent_id)
    if agent is None:
        return f"no agent {agent_id!r}"
    if model not in agent.chain:
        return f"{model} is not in {agent_id}'s chain {list(agent.chain)}"
    if model != agent.chain[0]:
        hold = HoldState(model=model, by=cause.actor or "operator")
        _set_hold(step, agent_id, hold, cause, "set")
        return None
    before = agent.serving
    _set_primary_healthy(step, model)
    if agent.flapping:
        step.notes.append(f"flap freeze of {agent_id} lifted by the operator")
    # The operator's choice beats the hold and the flap freeze (the score stays, so a
    # new burst of automatic moves freezes the agent again).
    step.set_agent(agent_id, replace(agent, hold=None, flapping=False, last_event_ts=step.now))
    others = tuple(a for a in step.state.agents_by_model.get(model, ()) if a != agent_id)
    repin(step, (agent_id,), step.now, cause)
    step.drop_alerts_of(agent_id)
    override_alert(
        step, agent_id, before, step.agents[agent_id].serving, step.now, cause, action="set"
    )
    # The model counts healthy for everyone now: agents sharing it fail back normally.
    repin(step, others, step.now, cause._replace(automatic=True))
    clear_exhausted(step, model, step.now)
    return None


def on_set_serving(step: Step, ev: SetServing) -> Decided:
    cause = _operator_cause(ev.actor)
    why = _set_serving(step, ev.agent, ev.model, cause)
    if why is not None:
        return _refuse(step, why, cause)
    return step.finish(f"{ev.actor} set {ev.agent} to {ev.model}")


def on_failback_now(step: Step, ev: FailbackNow) -> Decided:
    cause = _operator_cause(ev.actor)._replace(evidence=ev.probe.probe_id)
    agent = step.agents.get(ev.agent)
    if agent is None:
        return _refuse(step, f"no agent {ev.agent!r}", cause)
    primary = agent.chain[0]
    if ev.probe.model != primary:
        return _refuse(step, f"the probe was of {ev.probe.model}, not the primary {primary}", cause)
    if not ev.probe.ok:
        fc = ev.probe.failure_class.value if ev.probe.failure_class else "unknown"
        return _refuse(step, f"probe of {primary} failed ({fc}); {ev.agent} stays", cause)
    _set_serving(step, ev.agent, primary, cause)
    return step.finish(f"{ev.actor} failed {ev.agent} back to {primary} after a good probe")


def on_mute(step: Step, ev: MuteCards) -> Decided:
    """Mute one dedup key. The cards keep being counted as suppressed (``muted``), so a
    mute hides nothing from ``status``; the confirmation card says who muted what."""
    cause = _operator_cause(ev.actor)
    if not ev.key.strip():
        return _refuse(step, "an empty event key cannot be muted", cause)
    if ev.until <= step.now:
        return _refuse(step, f"mute until {iso(ev.until)} is already over", cause)
    step.effects.append(MuteAlerts(ev.key, ev.until))
    step.audit("CARDS_MUTED", cause, key=ev.key, until=iso(ev.until))
    step.alert(
        Alert(
            type=T.OPERATOR_OVERRIDE,
            ts=step.now,
            extra={
                "actor": ev.actor,
                "action": "mute",
                "key": ev.key,
                "until": iso(ev.until) or "",
            },
        ),
        cause,
        group=False,
    )
    return step.finish(f"{ev.actor} muted {ev.key} until {iso(ev.until)}", quiet=True)


def on_access_refused(step: Step, ev: AccessRefused) -> Decided:
    """Audit a refused attempt; no card (a stranger must not be able to page anyone)."""
    cause = _operator_cause(ev.actor)
    step.audit("ACCESS_REFUSED", cause, action=ev.action, why=ev.why, chat=ev.chat)
    return step.finish(f"refused {ev.actor} ({ev.action}): {ev.why}", quiet=True)


def on_pinfile_edited(step: Step, ev: PinFileEdited) -> Decided:
    cause = _operator_cause(ev.actor, kind="file")
    adopted: list[str] = []
    deleted = sorted(set(step.agents) - set(ev.pins.agents))
    if deleted:
        # Agents are the gateway's (openclaw.json); the pin file only says what serves
        # them. A deletion cannot be adopted: it is undone, and said so.
        step.alert(
            Alert(
                type=T.PIN_FILE_REJECTED,
                ts=step.now,
                agents=tuple(deleted),
                detail=f"agent(s) {', '.join(deleted)} deleted from the pin file: restored. "
                "The agents come from openclaw.json; to change what serves one, use "
                "'failover-watcher pin set|hold' or edit its entry.",
                extra={"restored": ", ".join(deleted)},
            ),
            cause,
        )
        step.notes.append(f"agent(s) {', '.join(deleted)} deleted by hand: restored")
    for agent_id, pin in sorted(ev.pins.agents.items()):
        agent = step.agents.get(agent_id)
        if agent is None:
            step.notes.append(f"unknown agent {agent_id} in the file ignored")
            continue
        wanted_hold: HoldState | None = None
        if pin.hold is not None:
            try:
                until = from_iso(pin.hold.until)
            except ValueError:
                until = None
            wanted_hold = HoldState(pin.hold.model, pin.hold.by, until, pin.hold.note)
        if pin.current_serving not in agent.chain:
            step.notes.append(f"{agent_id}: {pin.current_serving} is not in its chain, ignored")
            continue
        if wanted_hold is not None and wanted_hold.model not in agent.chain:
            step.notes.append(f"{agent_id}: hold on {wanted_hold.model} not in its chain, ignored")
            continue
        if wanted_hold is not None and wanted_hold != agent.hold:
            if wanted_hold.active(step.now):
                # The hold names who placed it (the CLI writes the invoking user, a jq
                # edit whatever ``by`` says): that is the actor, not "the file".
                by = wanted_hold.by if wanted_hold.by not in ("", "file") else ev.actor
                _set_hold(step, agent_id, wanted_hold, _operator_cause(by, kind="file"),
                          "hold")
                adopted.append(f"{agent_id} held on {wanted_hold.model}")
            continue
        if pin.current_serving != agent.serving:
            _set_serving(step, agent_id, pin.current_serving, cause)
            adopted.append(f"{agent_id} -> {pin.current_serving}")
        elif pin.hold is None and agent.hold is not None:
            _set_hold(step, agent_id, None, cause, "release")
            adopted.append(f"{agent_id} released")
    step.dirty = True  # rewrite the file in canonical form either way
    if not adopted:
        return step.finish("pin file edited by hand: nothing to adopt", quiet=bool(deleted))
    return step.finish("adopted a hand edit of the pin file: " + ", ".join(adopted))


def on_pinfile_rejected(step: Step, ev: PinFileRejected) -> Decided:
    cause = Cause(kind="file", automatic=False, evidence=ev.quarantined_to)
    extra = {"quarantined_to": ev.quarantined_to} if ev.quarantined_to else {}
    step.alert(Alert(type=T.PIN_FILE_REJECTED, ts=step.now, detail=ev.error, extra=extra), cause)
    step.dirty = True  # restore the last good state
    where = f", kept as {ev.quarantined_to}" if ev.quarantined_to else ""
    return step.finish(f"invalid pin file rejected{where}; last good pins restored")
