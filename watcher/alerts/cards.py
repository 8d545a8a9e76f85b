"""Render an ``Alert`` as one Telegram card (HTML parse mode). Pure: no clock, no I/O.

Rules that keep a card valid whatever the gateway logged:
- every interpolated value is clipped on the raw text, then escaped with ``html.escape``
  (so a clip never lands inside ``&amp;``), and the markup around it is ours alone;
- a card never exceeds ``CARD_BUDGET`` characters (below Telegram's 4096, leaving room
  for the sender's one-line notes). If the full card would, a shorter fallback card is
  rendered instead: no detail, agents truncated with "+K more". HTML is never cut.
"""

from __future__ import annotations

import html
from datetime import datetime, tzinfo

from watcher.core.transitions import Alert, TransitionType

TELEGRAM_LIMIT = 4096
CARD_BUDGET = 3800  # the sender may append short notes (possible repeat, drops)

DETAIL_CLIP = 1200
VALUE_CLIP = 160  # model ids, agent ids, reasons, extra values
EXTRA_KEY_CLIP = 40
MAX_EXTRAS = 12
FALLBACK_AGENTS = 8
FALLBACK_VALUE_CLIP = 80

TITLES: dict[TransitionType, str] = {
    TransitionType.FALLBACK_FIRED: "↪️ Fallback fired",
    TransitionType.HARD_FAILURE: "🛑 Hard failure: fallback chain exhausted",
    TransitionType.PAID_PROVIDER_SUCCESS: "💳 Paid provider now serving",
    TransitionType.PAID_PROVIDER_FAILURE: "💸 Paid provider failed",
    TransitionType.RECOVERY: "✅ Recovered: back on primary",
    TransitionType.THROTTLE_COOLDOWN: "⏳ Throttle cooldown started",
    TransitionType.FLAPPING_START: "🔁 Flapping: pin oscillating",
    TransitionType.FLAPPING_STOP: "⏹️ Flapping stopped",
    TransitionType.OPERATOR_OVERRIDE: "✋ Operator override adopted",
    TransitionType.PIN_FILE_REJECTED: "🚫 Pin file edit rejected",
    TransitionType.CONFIG_REJECTED: "⚠️ Gateway config rejected",
    TransitionType.PROBE_BUDGET_EXHAUSTED: "🪫 Probe budget exhausted",
    TransitionType.PLUGIN_INACTIVE: "🔌 The pin steers nothing",
    TransitionType.AUDIT_TAMPERED: "🧾 Audit log did not verify",
    TransitionType.SUPPRESSION_DOMINANT: "🙈 Suppression outweighs alerting",
    TransitionType.BREAKER_TRIPPED: "🔌 Breaker tripped: paid provider disabled",
    TransitionType.BREAKER_RESET: "🔋 Breaker reset: provider restored",
    TransitionType.CHAINS_CHANGED: "🧬 Fallback chains changed",
    TransitionType.CHAIN_LINT: "🩺 Chain check",
    TransitionType.DRILL_REPORT: "🧪 Chain drill",
    TransitionType.CHAIN_DEGRADED: "🧯 Fallback chain degraded",
}


def esc(text: str, limit: int = VALUE_CLIP) -> str:
    """Escape ``text`` into at most ``limit`` characters of HTML: the only way a foreign
    value enters a card.

    The cut happens on the raw text, one whole character at a time, before its escaped
    form is added, so it can never fall inside ``&amp;``; and since the limit counts
    escaped characters, a value full of ``&`` cannot grow fivefold past the budget.
    """
    escaped = html.escape(text, quote=False)
    if len(escaped) <= limit:
        return escaped
    out: list[str] = []
    size = 0
    for ch in text:
        piece = html.escape(ch, quote=False)
        if size + len(piece) > limit - 1:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out) + "…"


def format_time(ts: float, tz: tzinfo) -> str:
    """The card's clock text. A time no calendar can show (a lying log line's year 1 or
    10000, NaN) prints as its number: a card is never lost to a bad date."""
    try:
        return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S %Z")
    except (ValueError, OverflowError, OSError):
        return f"{ts!r} (epoch seconds, out of range)"


def _agents_line(agents: tuple[str, ...], limit: int | None, vclip: int) -> str | None:
    if not agents:
        return None
    shown = agents if limit is None else agents[:limit]
    names = ", ".join(f"<code>{esc(a, vclip)}</code>" for a in shown)
    hidden = len(agents) - len(shown)
    if hidden:
        names = f"{names} +{hidden} more".strip()
    label = "Agent" if len(agents) == 1 else f"Agents ({len(agents)})"
    return f"{label}: {names}"


def _model_line(alert: Alert, vclip: int) -> str | None:
    src = f"<code>{esc(alert.from_model, vclip)}</code>" if alert.from_model else None
    dst = f"<code>{esc(alert.to_model, vclip)}</code>" if alert.to_model else None
    if src is None and dst is None:
        return None
    return f"Model: {src or '(none)'} → {dst or '(none)'}"


def _class_line(alert: Alert, vclip: int) -> str | None:
    parts = []
    if alert.failure_class:
        parts.append(f"Class: <b>{esc(alert.failure_class, vclip)}</b>")
    if alert.reason:
        parts.append(f"reason: <code>{esc(alert.reason, vclip)}</code>")
    return " · ".join(parts) if parts else None


def _footer(suppressed_since_last: int) -> str | None:
    if suppressed_since_last <= 0:
        return None
    return f"<i>+{suppressed_since_last} similar suppressed since the last card</i>"


def _lines(
    alert: Alert,
    suppressed_since_last: int,
    tz: tzinfo,
    *,
    full: bool,
    agent_limit: int | None = None,
    vclip: int = VALUE_CLIP,
) -> list[str | None]:
    lines: list[str | None] = [
        f"<b>{TITLES[alert.type]}</b>",
        _agents_line(alert.agents, agent_limit, vclip),
        _model_line(alert, vclip),
        _class_line(alert, vclip),
    ]
    if alert.cooldown_until is not None:
        lines.append(f"Cooldown until: {format_time(alert.cooldown_until, tz)}")
    if alert.flap_score is not None:
        lines.append(f"Flap score: {alert.flap_score:g}")
    if full:
        for key in sorted(alert.extra)[:MAX_EXTRAS]:
            lines.append(f"{esc(key, EXTRA_KEY_CLIP)}: {esc(str(alert.extra[key]))}")
        if len(alert.extra) > MAX_EXTRAS:
            lines.append(f"(+{len(alert.extra) - MAX_EXTRAS} more facts)")
        if alert.detail:
            lines.append(f"<pre>{esc(alert.detail, DETAIL_CLIP)}</pre>")
    else:
        lines.append("<i>(shortened: full detail in the audit log)</i>")
    lines.append(f"Time: {format_time(alert.ts, tz)}")
    lines.append(_footer(suppressed_since_last))
    return lines


def render(alert: Alert, *, suppressed_since_last: int, tz: tzinfo) -> str:
    """The card for ``alert``, with "+N similar suppressed" when N > 0."""
    card = _join(_lines(alert, suppressed_since_last, tz, full=True))
    if len(card) <= CARD_BUDGET:
        return card
    # Escaping can grow a clipped value fivefold (every "&" becomes "&amp;"), so shrink
    # the agent list until the card fits; with no agents listed it always fits.
    for limit in (FALLBACK_AGENTS, 4, 1, 0):
        short = _join(
            _lines(
                alert,
                suppressed_since_last,
                tz,
                full=False,
                agent_limit=limit,
                vclip=FALLBACK_VALUE_CLIP,
            )
        )
        if len(short) <= CARD_BUDGET:
            return short
    raise AssertionError("fallback card exceeds the budget")  # unreachable: values clipped


def _join(lines: list[str | None]) -> str:
    return "\n".join(line for line in lines if line)
