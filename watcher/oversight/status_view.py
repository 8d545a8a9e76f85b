"""``/status`` as one Telegram HTML message: the data of ``failover-watcher status``.

Pure: takes ``watcher.status.collect`` output. Every value is escaped (``cards.esc``);
the message stays within ``BUDGET`` characters by listing the most important things
first (agents, models down) and cutting long lists with "+N more" rather than HTML.
"""

from __future__ import annotations

from typing import Any

from watcher.alerts.cards import esc

BUDGET = 3900  # below Telegram's 4096
MAX_ROWS = 20


def _section(title: str, rows: list[str], limit: int) -> list[str]:
    if not rows:
        return []
    shown = rows[:limit]
    if len(rows) > limit:
        shown.append(f"<i>+{len(rows) - limit} more</i>")
    return ["", f"<b>{title}</b>", *shown]


def _agent_row(agent_id: str, a: dict[str, Any]) -> str:
    where = "primary" if not a["in_fallback"] else f"FALLBACK since {esc(str(a['fallback_since']))}"
    row = f"<code>{esc(agent_id, 40)}</code> → <code>{esc(a['serving'])}</code> ({where}"
    if a["in_fallback"] and a.get("failure_class"):
        row += f", {esc(str(a['failure_class']))}"
    row += ")"
    if a.get("hold"):
        h = a["hold"]
        row += f" ✋ held by {esc(str(h['by']), 60)} until {esc(str(h['until'] or 'released'))}"
    if a.get("flapping"):
        row += f" 🔁 flapping (score {a['flap_score']})"
    elif a.get("flap_score"):
        row += f" · flap score {a['flap_score']}"
    if a.get("chain_exhausted"):
        row += " 🛑 chain exhausted"
    return row


def _model_row(ref: str, m: dict[str, Any]) -> str | None:
    if not m["failing"] and not m["cooldown_left_s"]:
        return None
    row = f"<code>{esc(ref)}</code> down ({esc(str(m['failure_class'] or 'unknown'))})"
    if m["cooldown_left_s"]:
        row += f", cooldown {int(m['cooldown_left_s'])}s left (level {m['cooldown_level']})"
    if m["probe_streak"]:
        row += f", probe streak {m['probe_streak']}"
    return row


def render_status(data: dict[str, Any]) -> str:
    """The ``/status`` reply for ``watcher.status.collect`` data: every section, with
    fewer rows each until it fits (agents and models down first, always)."""
    for limit in (MAX_ROWS, 10, 5, 2):
        text = _render(data, limit)
        if len(text) <= BUDGET:
            return text
    lines = text.split("\n")
    while len("\n".join(lines)) > BUDGET - 60:
        lines.pop()
    return "\n".join([*lines, "<i>(cut: see failover-watcher status)</i>"])


def _render(data: dict[str, Any], limit: int) -> str:
    agents = data["agents"]
    in_fallback = sum(1 for a in agents.values() if a["in_fallback"])
    lines = [
        f"<b>failover-watcher status</b> at {esc(data['now'])}",
        f"{len(agents)} agent(s), {in_fallback} in fallback",
    ]
    lines += _section("Agents", [_agent_row(k, a) for k, a in agents.items()], limit)
    models = [r for k, m in data["models"].items() if (r := _model_row(k, m)) is not None]
    lines += _section("Models down or cooling", models, limit) or ["", "All models healthy."]
    al = data["alerts"]
    lines += ["", f"Outbox: {al['outbox_depth']} waiting"]
    suppressed = [
        f"{v['total']} × <code>{esc(key)}</code> ("
        + ", ".join(f"{esc(r)} {n}" for r, n in v["by_reason"].items())
        + ")"
        for key, v in al["suppressed_last_hour"].items()
    ]
    lines += _section("Suppressed in the last hour", suppressed, limit)
    muted = [
        f"<code>{esc(key)}</code> until {esc(str(until))}"
        for key, until in (al.get("muted") or {}).items()
    ]
    lines += _section("Muted (still counted)", muted, limit)
    recent = [f"<code>{esc(r['key'])}</code>" for r in (al.get("recent_keys") or [])[:5]]
    lines += _section("Recent card keys (for /mute)", recent, limit)
    return "\n".join(lines)
