"""Config drift: what changed in the chains, said per agent, and the chain check's
findings announced once when they appear and once when they clear.

A chain rewritten behind the operator's back (the gateway's own probe once demoted
the primary of 20 of 31 agents, for 16 hours, with no alert) is never silent: every
change of ``openclaw.json``'s chains is one CHAINS_CHANGED card naming each agent's
change and the writer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from watcher.core.step import Cause, Decided, Step
from watcher.core.transitions import Alert, TransitionType

NOT_THE_BREAKER = "not the breaker"


def chain_diff(
    old: Mapping[str, Sequence[str]], new: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Per agent whose chain changed, what changed: one phrase each, in order."""
    out: dict[str, list[str]] = {}
    for agent in sorted(set(old) | set(new)):
        before, after = list(old.get(agent, ())), list(new.get(agent, ()))
        if before == after:
            continue
        if not before:
            out[agent] = [f"added with chain {' > '.join(after)}"]
            continue
        if not after:
            out[agent] = ["removed from openclaw.json"]
            continue
        said: list[str] = []
        if before[0] != after[0]:
            said.append(f"primary {before[0]} -> {after[0]}")
        added = [m for m in after[1:] if m not in before[1:]]
        dropped = [m for m in before[1:] if m not in after[1:]]
        if added:
            said.append("fallbacks added: " + ", ".join(added))
        if dropped:
            said.append("fallbacks removed: " + ", ".join(dropped))
        kept_before = [m for m in before[1:] if m in after[1:]]
        kept_after = [m for m in after[1:] if m in before[1:]]
        if kept_before != kept_after:
            said.append("fallbacks reordered: " + " > ".join(kept_after))
        out[agent] = said or [f"chain {' > '.join(before)} -> {' > '.join(after)}"]
    return out


def describe(diff: Mapping[str, list[str]]) -> str:
    return "\n".join(f"{agent}: {'; '.join(said)}" for agent, said in sorted(diff.items()))


def chains_changed_alert(
    at: float, diff: Mapping[str, list[str]], writer: str | None,
    moved: Mapping[str, tuple[str, str]],
) -> Alert:
    lines = describe(diff)
    if moved:
        lines += "\n" + "\n".join(
            f"{agent}'s pin moved: {before} -> {after}"
            for agent, (before, after) in sorted(moved.items())
        )
    return Alert(
        type=TransitionType.CHAINS_CHANGED,
        ts=at,
        agents=tuple(sorted(diff)),
        detail=lines,
        extra={"writer": writer or NOT_THE_BREAKER, "agents_changed": str(len(diff))},
    )


def on_chain_lint(step: Step, findings: Sequence[str], *, baseline: bool = False) -> Decided:
    """Announce the findings that are new and the ones that cleared, once each
    (``baseline``: only record them)."""
    now_found = tuple(sorted(set(findings)))
    before = set(step.state.lint)
    new = [f for f in now_found if f not in before]
    cleared = sorted(before - set(now_found))
    if not new and not cleared:
        return step.finish(f"chain check: {len(now_found)} finding(s), none new", quiet=True)
    stepped = Step(replace(step.state, lint=now_found), step.now, step.policy)
    if baseline:
        return stepped.finish(
            f"chain check: {len(now_found)} finding(s) recorded (first start; "
            "lint-config lists them)", quiet=True
        )
    parts = [f"new: {f}" for f in new] + [f"cleared: {f}" for f in cleared]
    agents = sorted({f.partition(":")[0] for f in (*new, *cleared) if ":" in f})
    stepped.alert(
        Alert(
            type=TransitionType.CHAIN_LINT,
            ts=step.now,
            agents=tuple(agents),
            detail="\n".join(parts),
            extra={"findings": str(len(now_found)), "new": str(len(new)),
                   "cleared": str(len(cleared))},
        ),
        Cause(kind="config", actor="openclaw.json", automatic=False),
    )
    return stepped.finish(
        f"chain check: {len(new)} new finding(s), {len(cleared)} cleared", quiet=True
    )
