"""The fallback-pin plugin's lines (``[fallback-pin] run outcome {json}`` and
``state {json}``), contract version ``PLUGIN_CONTRACT`` (the README's line
contract). Anything else the plugin says is chatter."""

from __future__ import annotations

import json
from typing import Any

from watcher.parse._fields import (
    MAX_DETAIL_CHARS,
    _bounded,
    _iso_ts,
    _opt_int,
    _opt_str,
    _ref,
)
from watcher.parse.records import (
    Attempt,
    ModelRef,
    ParseResult,
    PluginState,
    RunOutcome,
    Unparsed,
)

PLUGIN_CONTRACT = 1
_OUTCOME_MARK = "run outcome "
_STATE_MARK = "state "


def _plugin(body: str, prefix: str, ts: float | None, line: str) -> ParseResult:
    """``run outcome {json}`` or ``state {json}``; anything else the plugin says
    (an agent warning, a hook error) is chatter for the core."""
    if body.startswith(_OUTCOME_MARK):
        kind = "outcome"
        payload = body[len(_OUTCOME_MARK) :]
    elif body.startswith(_STATE_MARK):
        kind = "state"
        payload = body[len(_STATE_MARK) :]
    else:
        return None
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError):
        return Unparsed(f"plugin {kind} line is not JSON", _bounded(line))
    if not isinstance(obj, dict):
        return Unparsed(f"plugin {kind} line is not an object", _bounded(line))
    if obj.get("v") != PLUGIN_CONTRACT:
        return Unparsed(f"plugin {kind} line of unknown version {obj.get('v')!r}", _bounded(line))
    ts = ts if ts is not None else _iso_ts(prefix)
    try:
        return _outcome(obj, ts) if kind == "outcome" else _state(obj, ts)
    except (ValueError, TypeError) as exc:
        return Unparsed(f"plugin {kind} line: {str(exc)[:120]}", _bounded(line))


def _state(obj: dict[str, Any], ts: float | None) -> PluginState:
    steering = obj.get("steering")
    if not isinstance(steering, bool):
        raise ValueError("steering is not true or false")
    return PluginState(
        steering=steering,
        kind=_opt_str(obj.get("kind")) or "unknown",
        why=_opt_str(obj.get("why")) or "",
        pin_file=_opt_str(obj.get("pin_file")),
        ts=ts,
    )


def _opt_ref(value: object) -> ModelRef | None:
    return _ref(value) if isinstance(value, str) and value else None


def _outcome(obj: dict[str, Any], ts: float | None) -> RunOutcome:
    agent = obj.get("agent")
    run = obj.get("run")
    if not isinstance(agent, str) or not agent or not isinstance(run, str) or not run:
        raise ValueError("agent and run are required")
    outcome = obj.get("outcome")
    if outcome not in ("ok", "error"):
        raise ValueError(f"outcome {str(outcome)[:20]!r} is neither ok nor error")
    raw = obj.get("attempts")
    attempts: list[Attempt] = []
    for item in raw[:16] if isinstance(raw, list) else ():
        if not isinstance(item, dict) or not isinstance(item.get("model"), str):
            raise ValueError("an attempt has no model")
        error = _opt_str(item.get("error"))
        attempts.append(
            Attempt(
                model=_ref(item["model"]),
                ok=item.get("ok") is True,
                primary=item.get("primary") is True,
                overridden=item.get("overridden") is True,
                status=_opt_int(item.get("status")),
                error=error[:MAX_DETAIL_CHARS] if error else None,
                tries=_opt_int(item.get("tries")) or 1,
            )
        )
    error = _opt_str(obj.get("error"))
    return RunOutcome(
        agent_id=agent[:200],
        run_id=run[:200],
        ok=outcome == "ok",
        attempts=tuple(attempts),
        session=_opt_str(obj.get("session")),
        primary=_opt_ref(obj.get("primary")),
        pinned=_opt_ref(obj.get("pinned")),
        model=_opt_ref(obj.get("model")),
        status=_opt_int(obj.get("status")),
        error=error[:MAX_DETAIL_CHARS] if error else None,
        ts=ts,
    )


