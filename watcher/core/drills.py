"""Scheduled chain drills as transitions: one DRILL_REPORT card per drill, and one
CHAIN_DEGRADED card (never suppressed) for each agent that lost its working depth of
2 or its working cross-provider fallback since the last drill (or is degraded at its
first). The drill itself runs in the shell (``watcher.probe.drill``); this decides
what to say about it, from the summary and the last drill kept in the state."""

from __future__ import annotations

from dataclasses import replace

from watcher.core.events import DrillReported
from watcher.core.state import DrillView
from watcher.core.step import Cause, Decided, Step
from watcher.core.transitions import Alert, TransitionType

MAX_TABLE_LINES = 40  # one line per agent; the card renderer clips the rest


def on_drill(step: Step, ev: DrillReported) -> Decided:
    previous = step.state.drill
    view = DrillView(
        at=step.now,
        agents={s.agent: (s.working_depth, s.members, s.cross_provider_ok) for s in ev.agents},
    )
    stepped = Step(replace(step.state, drill=view), step.now, step.policy)
    cause = Cause(kind="drill", actor="scheduled drill", automatic=False)
    summaries = sorted(ev.agents, key=lambda s: s.agent)
    degraded = [s for s in summaries if s.degraded]
    table = [
        f"{s.agent}: {s.working_depth}/{s.members} working, "
        f"cross-provider {'yes' if s.cross_provider_ok else 'NO'}: {s.line}"
        for s in summaries
    ][:MAX_TABLE_LINES]
    stepped.alert(
        Alert(
            type=TransitionType.DRILL_REPORT,
            ts=step.now,
            detail="\n".join(table),
            extra={"agents": str(len(summaries)), "degraded": str(len(degraded))},
        ),
        cause,
    )
    lost = [s for s in degraded if previous is None or previous.sound(s.agent)]
    for s in lost:
        why = []
        if s.working_depth < 2:
            why.append(f"working depth {s.working_depth} of {s.members} (needs 2)")
        if not s.cross_provider_ok:
            why.append("no working fallback on another provider")
        stepped.alert(
            Alert(
                type=TransitionType.CHAIN_DEGRADED,
                ts=step.now,
                agents=(s.agent,),
                detail="; ".join(why) + f"\n{s.line}",
                extra={"working_depth": str(s.working_depth)},
            ),
            cause,
            group=False,
        )
    return stepped.finish(
        f"drill: {len(summaries)} agent(s), {len(degraded)} degraded"
        + (f", {len(lost)} newly ({', '.join(s.agent for s in lost)})" if lost else ""),
        quiet=True,
    )
