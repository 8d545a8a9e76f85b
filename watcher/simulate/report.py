"""What a simulation shows: the timeline, the summary, ``--json`` (schema 1), the
comparison table, and the scenario's expectations checked against the summary.

Every number is measured against the scenario's *truth* (the timeline), not against
what the watcher believed: "minutes to failback" is time pinned away from a primary
whose real traffic was fine, and a "failback into failure" is a flip back to a primary
whose real traffic was still failing (the 20 May flap).
"""

from __future__ import annotations

import itertools
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from watcher.simulate.model import Scenario
from watcher.simulate.runner import SimulationResult
from watcher.simulate.scenario import split_check

SCHEMA = 1


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def _minutes(seconds: float) -> float:
    return round(seconds / 60.0, 2)


def _pin_at(changes: Sequence[tuple[float, str]], primary: str, t: float) -> str:
    current = primary
    for when, model in changes:
        if when > t:
            break
        current = model
    return current


def _stretches(intervals: Iterable[tuple[float, float, bool]]) -> list[float]:
    """Lengths of maximal runs of adjacent intervals whose flag is set."""
    out: list[float] = []
    run = 0.0
    for start, end, flag in intervals:
        if flag:
            run += end - start
        elif run:
            out.append(run)
            run = 0.0
    if run:
        out.append(run)
    return out


def _segments(points: Iterable[float], start: float, end: float) -> list[tuple[float, float]]:
    cuts = sorted({start, end, *(p for p in points if start < p < end)})
    return list(itertools.pairwise(cuts))


def _exhaustion_windows(sc: Scenario, agent: str) -> list[tuple[float, float]]:
    """Where every model of the agent's chain failed real traffic (the truth)."""
    chain = sc.chains[agent]
    points = {p for model in chain for p in sc.change_points(model)}
    out: list[tuple[float, float]] = []
    for a, b in _segments(points, sc.start, sc.end):
        if all(not sc.traffic_answer(m, a).ok for m in chain):
            if out and out[-1][1] == a:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
    return out


def summarize(result: SimulationResult) -> dict[str, Any]:
    """The documented ``--json`` shape (``schema: 1``, see ``scenarios/README.md``)."""
    sc = result.scenario
    agents: dict[str, dict[str, Any]] = {}
    incident_windows: list[tuple[float, float]] = []
    exhausted_starts: list[float] = []
    for agent, chain in sorted(sc.chains.items()):
        primary = chain[0]
        changes = [(c.t, c.to_model) for c in result.pin_changes if c.agent == agent]
        points = [t for t, _ in changes] + sc.change_points(primary)
        away_ok: list[tuple[float, float, bool]] = []
        paid_s = away_s = 0.0
        for a, b in _segments(points, sc.start, sc.end):
            pin = _pin_at(changes, primary, a)
            if sc.is_paid(pin):
                paid_s += b - a
            if pin != primary:
                away_s += b - a
            away_ok.append((a, b, pin != primary and sc.traffic_answer(primary, a).ok))
        delays = _stretches(away_ok)
        failbacks = [t for t, model in changes if model == primary]
        into_failure = [t for t in failbacks if not sc.traffic_answer(primary, t).ok]
        requests = [r for r in result.requests if r.agent == agent]
        exhausted = [r.t for r in requests if r.served_by is None]
        exhausted_starts.extend(exhausted)
        incident_windows.extend(_exhaustion_windows(sc, agent))
        agents[agent] = {
            "chain": list(chain),
            "pin_changes": len(changes),
            "failbacks": len(failbacks),
            "failbacks_into_failure": len(into_failure),
            "paid_minutes": _minutes(paid_s),
            "fallback_minutes": _minutes(away_s),
            "minutes_to_failback": _minutes(sum(delays)),
            "max_failback_delay_minutes": _minutes(max(delays, default=0.0)),
            "requests": len(requests),
            "requests_hit_failing_primary": sum(r.hit_failing_primary for r in requests),
            "requests_exhausted": len(exhausted),
            "requests_paid": sum(
                1 for r in requests if r.served_by is not None and sc.is_paid(r.served_by)
            ),
            "final_pin": result.final_pins.get(agent, primary),
            "on_primary_at_end": int(result.final_pins.get(agent, primary) == primary),
        }

    # Incidents: merged windows where some agent's whole chain failed, that real
    # requests actually ran into.
    merged: list[list[float]] = []
    for a, b in sorted(incident_windows):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    incidents = sum(
        1 for a, b in merged if any(a <= t < b + 120.0 for t in exhausted_starts)
    )

    sent = [c for c in result.cards if c.sent]
    suppressed = [c for c in result.cards if not c.sent]
    # "Hides nothing without counting it": every suppressed card shows up in a later
    # card's "+N similar suppressed" footer for its key, or is still pending at the end.
    reported: Counter[str] = Counter()
    for c in sent:
        reported[c.alert.dedup_key] += c.suppressed_since_last
    for key, n in result.dedup_pending.items():
        reported[key] += n
    hidden_by_key: Counter[str] = Counter(c.alert.dedup_key for c in suppressed)
    uncounted = sum(max(0, n - reported[key]) for key, n in hidden_by_key.items())
    cards = {
        "sent": len(sent),
        "suppressed": len(suppressed),
        "suppressed_uncounted": uncounted,
        "sent_by_type": dict(sorted(Counter(c.alert.type.value for c in sent).items())),
        "suppressed_by_type": dict(
            sorted(Counter(c.alert.type.value for c in suppressed).items())
        ),
        "suppressed_by_reason": dict(
            sorted(Counter(str(c.reason) for c in suppressed).items())
        ),
    }

    timeline: list[dict[str, Any]] = []
    for change in result.pin_changes:
        timeline.append({
            "t": _iso(change.t),
            "minute": round((change.t - sc.start) / 60.0, 2),
            "kind": "pin",
            "agent": change.agent,
            "from": change.from_model,
            "to": change.to_model,
        })
    for c in result.cards:
        timeline.append({
            "t": _iso(c.t),
            "minute": round((c.t - sc.start) / 60.0, 2),
            "kind": "card",
            "type": c.alert.type.value,
            "agents": list(c.alert.agents),
            "from": c.alert.from_model,
            "to": c.alert.to_model,
            "failure_class": c.alert.failure_class,
            "outcome": "sent" if c.sent else "suppressed",
            "reason": None if c.reason is None else str(c.reason),
            "suppressed_since_last": c.suppressed_since_last,
        })
    timeline.sort(key=lambda e: (e["minute"], e["kind"] != "pin"))

    def total(key: str) -> Any:
        return sum(a[key] for a in agents.values())

    totals = {
        "pin_changes": total("pin_changes"),
        "failbacks": total("failbacks"),
        "failbacks_into_failure": total("failbacks_into_failure"),
        "paid_minutes": round(total("paid_minutes"), 2),
        "fallback_minutes": round(total("fallback_minutes"), 2),
        "minutes_to_failback": round(total("minutes_to_failback"), 2),
        "max_failback_delay_minutes": max(
            (a["max_failback_delay_minutes"] for a in agents.values()), default=0.0
        ),
        "requests": total("requests"),
        "requests_hit_failing_primary": total("requests_hit_failing_primary"),
        "requests_exhausted": total("requests_exhausted"),
        "requests_paid": total("requests_paid"),
        "chain_exhausted_incidents": incidents,
        "agents_off_primary_at_end": sum(1 - a["on_primary_at_end"] for a in agents.values()),
        "cards_sent": cards["sent"],
        "cards_suppressed": cards["suppressed"],
        "probes": result.probes,
        "lines": result.lines,
        "unparsed_lines": result.unparsed,
        "pin_writes": result.pin_writes,
        "audit_records": result.audit_records,
    }
    return {
        "schema": SCHEMA,
        "scenario": {
            "name": sc.name,
            "description": sc.description,
            "start": _iso(sc.start),
            "end": _iso(sc.end),
            "duration_minutes": _minutes(sc.duration_s),
            "probe_interval_s": result.policy.probe_interval_s,
            "seed": sc.seed,
            "paid_providers": sorted(sc.paid_providers),
        },
        "policy": {"name": result.policy_name, "version": result.policy.version},
        "timeline": timeline,
        "agents": agents,
        "cards": cards,
        "totals": totals,
    }


# -- expectations --------------------------------------------------------------------

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "<": operator.lt, ">": operator.gt,
}


def lookup(summary: Mapping[str, Any], path: str) -> float:
    """A number in the summary by dotted path. A missing last key of a counting table
    (``cards.sent_by_type.HARD_FAILURE``) is 0; a missing table is an error."""
    node: Any = summary
    parts = path.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, Mapping):
            raise KeyError(f"{path}: {'.'.join(parts[:i])} is not a table")
        if part not in node:
            if i == len(parts) - 1 and parts[i - 1:i] and parts[i - 1].endswith(
                    ("_by_type", "_by_reason")):
                return 0.0
            raise KeyError(f"{path}: no {part!r} in the summary")
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise KeyError(f"{path} is not a number")
    return float(node)


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str
    actual: float | None
    held: bool
    error: str | None = None


def check_expectations(summary: Mapping[str, Any], checks: Sequence[str]) -> list[CheckResult]:
    out = []
    for check in checks:
        path, op, expected = split_check(check)
        try:
            actual = lookup(summary, path)
        except KeyError as exc:
            out.append(CheckResult(check, None, False, str(exc.args[0])))
            continue
        out.append(CheckResult(check, actual, _OPS[op](actual, expected)))
    return out


# -- text output -----------------------------------------------------------------------


def _short(model: str | None) -> str:
    return "-" if model is None else model


def format_text(summary: Mapping[str, Any], checks: Sequence[CheckResult] = ()) -> str:
    sc = summary["scenario"]
    lines = [
        f"Scenario {sc['name']} under policy {summary['policy']['name']}",
    ]
    if sc["description"]:
        lines.append("  " + sc["description"].splitlines()[0])
    lines.append(
        f"  {sc['start']} for {sc['duration_minutes']:g} min, probes every "
        f"{sc['probe_interval_s']:g} s, seed {sc['seed']}, paid: "
        f"{', '.join(sc['paid_providers']) or 'none'}"
    )
    lines += ["", "Timeline (UTC)"]
    if not summary["timeline"]:
        lines.append("  (nothing happened)")
    for e in summary["timeline"]:
        t = e["t"][11:19]
        if e["kind"] == "pin":
            lines.append(f"  {t}  pin   {e['agent']}: {e['from']} → {e['to']}")
        else:
            who = ",".join(e["agents"]) or "-"
            move = ""
            if e["from"] or e["to"]:
                move = f" {_short(e['from'])} → {_short(e['to'])}"
            outcome = "sent" if e["outcome"] == "sent" else f"suppressed({e['reason']})"
            footer = (
                f" +{e['suppressed_since_last']} similar suppressed"
                if e["outcome"] == "sent" and e["suppressed_since_last"] else ""
            )
            lines.append(f"  {t}  card  {e['type']} [{who}]{move}  {outcome}{footer}")
    lines += ["", "Summary"]
    header = (
        f"  {'agent':<12} {'flips':>5} {'failbacks':>9} {'into fail':>9} {'paid min':>8} "
        f"{'to failback':>11} {'requests':>8} {'hit failing':>11} {'exhausted':>9}"
    )
    lines.append(header)
    for agent, a in summary["agents"].items():
        lines.append(
            f"  {agent:<12} {a['pin_changes']:>5} {a['failbacks']:>9} "
            f"{a['failbacks_into_failure']:>9} {a['paid_minutes']:>8.1f} "
            f"{a['minutes_to_failback']:>11.1f} {a['requests']:>8} "
            f"{a['requests_hit_failing_primary']:>11} {a['requests_exhausted']:>9}"
        )
    cards = summary["cards"]
    by_type = ", ".join(f"{k} {v}" for k, v in cards["sent_by_type"].items()) or "none"
    lines.append(f"  cards sent: {cards['sent']} ({by_type})")
    if cards["suppressed"]:
        by_reason = ", ".join(f"{k} {v}" for k, v in cards["suppressed_by_reason"].items())
        lines.append(
            f"  cards suppressed: {cards['suppressed']} ({by_reason}); "
            + ("every one counted in a later card or pending"
               if not cards["suppressed_uncounted"]
               else f"{cards['suppressed_uncounted']} NEVER COUNTED anywhere")
        )
    else:
        lines.append("  cards suppressed: 0")
    totals = summary["totals"]
    lines.append(
        f"  minutes on a paid provider: {totals['paid_minutes']:g}; on a fallback while the "
        f"primary was fine: {totals['minutes_to_failback']:g}"
    )
    lines.append(
        f"  requests: {totals['requests']}, {totals['requests_hit_failing_primary']} hit a "
        f"failing primary, {totals['requests_exhausted']} found the chain exhausted "
        f"({totals['chain_exhausted_incidents']} incident(s)); {totals['probes']} probes, "
        f"{totals['lines']} gateway lines"
    )
    if checks:
        held = sum(c.held for c in checks)
        lines += ["", f"Expectations ({held}/{len(checks)} held)"]
        for c in checks:
            mark = "ok  " if c.held else "FAIL"
            got = c.error if c.error else f"actual {c.actual:g}"
            lines.append(f"  {mark} {c.check}  ({got})")
    return "\n".join(lines) + "\n"


# -- the comparison the demo prints -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    scenario: str
    policy: str
    flips: int  # pin changes, all agents
    cards: int  # cards sent
    hidden: int  # cards suppressed (each one counted)
    paid_minutes: float
    minutes_to_failback: float  # on a fallback while the primary was fine
    failbacks_into_failure: int


def comparison_row(summary: Mapping[str, Any]) -> ComparisonRow:
    t = summary["totals"]
    return ComparisonRow(
        scenario=summary["scenario"]["name"],
        policy=summary["policy"]["name"],
        flips=t["pin_changes"],
        cards=t["cards_sent"],
        hidden=t["cards_suppressed"],
        paid_minutes=t["paid_minutes"],
        minutes_to_failback=t["minutes_to_failback"],
        failbacks_into_failure=t["failbacks_into_failure"],
    )


def format_comparison(rows: Sequence[ComparisonRow]) -> str:
    head = (
        f"{'scenario':<44} {'policy':<8} {'flips':>5} {'cards':>5} {'hidden':>6} "
        f"{'paid min':>8} {'min to failback':>15} {'flips into failure':>18}"
    )
    out = [head, "-" * len(head)]
    previous = None
    for r in rows:
        name = r.scenario if r.scenario != previous else ""
        previous = r.scenario
        out.append(
            f"{name:<44} {r.policy:<8} {r.flips:>5} {r.cards:>5} {r.hidden:>6} "
            f"{r.paid_minutes:>8.1f} {r.minutes_to_failback:>15.1f} "
            f"{r.failbacks_into_failure:>18}"
        )
    out.append("")
    out.append("flips: pin changes, all agents. hidden: cards suppressed (dedup, flapping),")
    out.append("  every one counted and shown later as \"+N similar suppressed\".")
    out.append("min to failback: minutes on a fallback while the primary's real traffic was fine.")
    out.append("flips into failure: failbacks onto a primary still failing real traffic.")
    return "\n".join(out) + "\n"
