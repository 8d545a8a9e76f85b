"""What ``status`` (and the Telegram ``/status``) shows: one read-only view of the state.

Reads the daemon's files without taking part in its decisions: the core snapshot,
the outbox, the pin file. ``to_json`` is the stable ``status --json`` shape
(``schema: 1``); ``render_text`` the human one.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from watcher.alerts.dedup import Deduplicator
from watcher.alerts.intake import DEDUP_META
from watcher.alerts.outbox import DEFAULT_FILENAME, UNSENT
from watcher.core.state import State, from_json
from watcher.pins.schema import iso
from watcher.support.statedir import SNAPSHOT_FILENAME

STATUS_SCHEMA = 1


def _outbox_view(path: Path, now: float) -> dict[str, Any]:
    if not path.exists():
        return {
            "depth": 0,
            "by_state": {},
            "suppressed_last_hour": {},
            "muted": {},
            "recent_keys": [],
        }
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        by_state = dict(db.execute("select state, count(*) from cards group by state").fetchall())
        row = db.execute("select value from meta where key = ?", (DEDUP_META,)).fetchone()
    finally:
        db.close()
    suppressed: dict[str, Any] = {}
    muted: dict[str, str | None] = {}
    recent: list[dict[str, Any]] = []
    if row is not None:
        dedup = Deduplicator.from_json(json.loads(row[0]))
        for key, reasons in sorted(dedup.suppressed_last_hour(now).items()):
            suppressed[key] = {
                "total": sum(reasons.values()),
                "by_reason": dict(sorted(reasons.items())),
            }
        muted = {key: iso(until) for key, until in sorted(dedup.mutes(now).items())}
        recent = [{"key": k, "last_seen": iso(ts)} for k, ts in dedup.recent_keys(now)]
    depth = sum(n for s, n in by_state.items() if s in UNSENT)
    return {
        "depth": depth,
        "by_state": by_state,
        "suppressed_last_hour": suppressed,
        "muted": muted,
        "recent_keys": recent,
    }


class StatusError(ValueError):
    """The state directory holds something ``status`` cannot read; says what, in a line."""


def collect(
    state_dir: Path, now: float, *, plugin_check: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything ``status`` shows, as JSON-ready data. Raises FileNotFoundError when the
    watcher has never run in ``state_dir``. ``plugin_check``: what
    ``watcher.gateway.plugin.check_plugin`` found in openclaw.json, shown beside what the
    plugin itself last said."""
    snap_path = state_dir / SNAPSHOT_FILENAME
    text = snap_path.read_text(encoding="utf-8")
    try:
        snap = json.loads(text)
        state: State = from_json(snap["state"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StatusError(
            f"{snap_path} is not a watcher state file ({type(exc).__name__}: {exc}). The "
            "daemon refuses it too; restore it from a backup, or move it away to start "
            "from the pin file"
        ) from None
    agents = {}
    for agent_id, a in sorted(state.agents.items()):
        hold = None
        if a.hold is not None and a.hold.active(now):
            hold = {
                "model": a.hold.model,
                "by": a.hold.by,
                "until": iso(a.hold.until),
                "note": a.hold.note,
            }
        agents[agent_id] = {
            "primary": a.primary,
            "serving": a.serving,
            "in_fallback": a.in_fallback,
            "fallback_since": iso(a.fallback_since),
            "failure_class": a.failure_class,
            "reason": a.reason,
            "hold": hold,
            "flapping": a.flapping,
            "flap_score": round(a.flap_score, 1),
            "chain_exhausted": a.exhausted,
        }
    models = {}
    for ref, h in sorted(state.models.items()):
        left = max(0.0, (h.cooldown_until or 0.0) - now)
        models[ref] = {
            "failing": h.failing,
            "failure_class": str(h.failure_class) if h.failure_class else None,
            "since": iso(h.since),
            "cooldown_until": iso(h.cooldown_until) if left > 0 else None,
            "cooldown_left_s": round(left),
            "cooldown_level": h.cooldown_level,
            "probe_streak": h.probe_streak,
        }
    pos = snap.get("position") or {}
    realtime = pos.get("realtime")
    outbox = _outbox_view(state_dir / DEFAULT_FILENAME, now)
    return {
        "schema": STATUS_SCHEMA,
        "now": iso(now),
        "agents": agents,
        "models": models,
        "journal": {
            "source": pos.get("source"),
            "last_entry": iso(realtime),
            # How far behind the journal the daemon was at its last batch (what the
            # journal_lag_seconds metric says), not the age of the last entry: a quiet
            # journal is not a lagging watcher.
            "lag_s": None if snap.get("lag_s") is None else round(float(snap["lag_s"]), 3),
            "last_entry_age_s": round(now - realtime, 1) if realtime else None,
            "state_written": iso(snap.get("written_at")),
        },
        "plugin": {
            "steering": state.plugin.steering,
            "kind": state.plugin.kind,
            "why": state.plugin.why,
            "since": iso(state.plugin.since),
            "config": plugin_check,
        },
        "drill": None if state.drill is None else {
            "at": iso(state.drill.at),
            "agents": {
                agent: {"working_depth": d, "members": n, "cross_provider_ok": cross}
                for agent, (d, n, cross) in sorted(state.drill.agents.items())
            },
        },
        "alerts": {
            "outbox_depth": outbox["depth"],
            "outbox_by_state": outbox["by_state"],
            "suppressed_last_hour": outbox["suppressed_last_hour"],
            "muted": outbox["muted"],
            "recent_keys": outbox["recent_keys"],
        },
    }


def _ago(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def render_text(data: dict[str, Any]) -> str:
    lines = [f"failover-watcher status at {data['now']}", "", "Agents:"]
    for agent_id, a in data["agents"].items():
        where = "on primary" if not a["in_fallback"] else f"IN FALLBACK since {a['fallback_since']}"
        line = f"  {agent_id:<12} {a['serving']:<36} {where}"
        if a["in_fallback"] and a["failure_class"]:
            line += f" ({a['failure_class']})"
        if a["hold"]:
            h = a["hold"]
            line += f" [held by {h['by']} until {h['until'] or 'released'}]"
        if a["flapping"]:
            line += f" [FLAPPING score {a['flap_score']}]"
        if a["chain_exhausted"]:
            line += " [CHAIN EXHAUSTED]"
        lines.append(line)
    lines += ["", "Models:"]
    for ref, m in data["models"].items():
        if not m["failing"] and not m["cooldown_left_s"]:
            lines.append(f"  {ref:<36} healthy")
            continue
        bits = [f"down ({m['failure_class'] or 'unknown'}) since {m['since']}"]
        if m["cooldown_left_s"]:
            bits.append(f"cooldown {_ago(m['cooldown_left_s'])} left (level {m['cooldown_level']})")
        if m["probe_streak"]:
            bits.append(f"probe streak {m['probe_streak']}")
        lines.append(f"  {ref:<36} " + "; ".join(bits))
    j = data["journal"]
    lag = f"{j['lag_s']}s" if j["lag_s"] is not None else "n/a"
    age = f" ({_ago(j['last_entry_age_s'])} ago)" if j.get("last_entry_age_s") is not None else ""
    lines += [
        "",
        f"Journal: {j['source'] or 'n/a'}, last entry {j['last_entry'] or 'n/a'}{age}, "
        f"lag at the last batch {lag}",
    ]
    pl = data.get("plugin") or {}
    said = "steers by the pin file" if pl.get("steering") else f"not steering ({pl.get('why')})"
    lines.append(f"Gateway plugin: {said}, since {pl.get('since') or 'n/a'}")
    cfg = pl.get("config")
    if cfg is not None:
        if cfg["ok"]:
            lines.append(f"  openclaw.json loads it for this pin file ({cfg['pin_file']})")
        for problem in cfg["problems"]:
            lines.append(f"  ! {problem}")
    drill = data.get("drill")
    if drill is None:
        lines.append("Last drill: never (failover-watcher drill, or [drill] schedule)")
    else:
        weak = [a for a, d in drill["agents"].items()
                if d["working_depth"] < 2 or not d["cross_provider_ok"]]
        lines.append(f"Last drill: {drill['at']}, {len(drill['agents'])} agent(s), "
                     + (f"degraded: {', '.join(weak)}" if weak else "none degraded"))
    al = data["alerts"]
    lines.append(f"Outbox: {al['outbox_depth']} waiting {al['outbox_by_state']}")
    sup = al["suppressed_last_hour"]
    if sup:
        lines.append("Suppressed in the last hour:")
        for key, v in sup.items():
            reasons = ", ".join(f"{r} {n}" for r, n in v["by_reason"].items())
            lines.append(f"  {v['total']:>4}  {key}  ({reasons})")
    else:
        lines.append("Suppressed in the last hour: none")
    muted = al.get("muted") or {}
    if muted:
        lines.append("Muted (still counted as suppressed, reason muted):")
        for key, until in muted.items():
            lines.append(f"  {key}  until {until}")
    return "\n".join(lines)
