"""Turn one gateway log line (or one OpenClaw JSONL record) into one typed record.

Normalise first: everything downstream (taxonomy, core, replay, classify) sees
``FallbackDecision``, ``ChainStopped``, ``LaneHint``, ``Unparsed`` or ``None``, never
raw text. The input format is ``reference/openclaw-log-contract.md``; every variant it
lists is accepted because older gateways keep printing older variants.

Why the shape of this module:
- Most journal lines are chatter. ``parse_line`` rejects them with one or two substring
  checks before any regex or decoding, so chatter costs almost nothing.
- A line that carries a fallback marker but cannot be read becomes ``Unparsed``, which
  callers count: a silent drop would hide exactly the format drift we must notice.
- Nothing raises. Hostile input (binary, huge, ANSI, near misses) yields a result.
- Pure: no clock, no I/O. Time comes from the journal (``ts=``) or the line itself.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from watcher.parse._construct import constructor
from watcher.parse._fields import (
    PLAUSIBLE_TS,
    UNPARSED_PREFIX_CHARS,
    _bounded,
    _iso_ts,
    _opt_int,
    _opt_str,
    _plausible,
    _ref,
)
from watcher.parse.plugin import _plugin
from watcher.parse.records import (
    ChainStopped,
    Decision,
    FallbackDecision,
    LaneHint,
    ModelRef,
    ParseResult,
    Unparsed,
)

__all__ = [
    "MAX_LINE_CHARS",
    "PLAUSIBLE_TS",
    "UNPARSED_PREFIX_CHARS",
    "parse_any",
    "parse_jsonl",
    "parse_line",
]

MAX_LINE_CHARS = 64 * 1024
"""Longer lines are cut to this prefix before parsing (a bounded record, bounded memory)."""

# Substrings that make a line worth a closer look. Everything else is chatter.
_FAST_MARK = "fallback"
_FAST_MARK_B = b"fallback"
_LANE_MARK = "lane task error"
_LANE_MARK_B = b"lane task error"

_DECISION_MARK = "model fallback decision:"
_STOPPED_MARK = "model fallback chain stopped:"
_SUBSYSTEM_MARK = "[model-fallback"  # [model-fallback/decision] and the older [model-fallback]
# The gateway plugin's lines (gateway-plugin/index.js; contract v1 in the README).
PLUGIN_MARK = "[fallback-pin] "
# ``[model-fallback] Model "P/M" not found. Fell back to "P/N".``: a summary of two
# decision lines already read, so chatter.
_SUMMARY = re.compile(r'\s*Model ".*" not found\. Fell back to ".*"\.?\s*$')

# Terminal escapes (ECMA-48): CSI (ESC [ or the C1 byte U+009B, parameters, final),
# OSC (ESC ] text, ended by BEL or ESC backslash, bounded so an unterminated one cannot eat
# the line), then any other ESC sequence (intermediates, one final byte). A stray ESC
# left over is dropped too: the gateway's sanitizer deletes control characters, so one
# found here is noise, and leaving it would hide the marker it sits next to.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]{0,512}(?:\x07|\x1b\\)"
    r"|\x1b[ -/]*[0-~]"
    r"|\x1b"
)
_SUPPRESSED = re.compile(r"\s*\((\d{1,9}) duplicates? suppressed in last \d+\s*s\)\s*$")
_LANE_ERROR = re.compile(r'\berror="((?:[^"\\]|\\.)*)"?')
_ERROR_NAME = re.compile(r"\berrorName=(\S+)")

_REQUIRED = ("decision", "requested", "candidate", "reason", "next")
_DECISIONS: dict[str, Decision] = {d.value: d for d in Decision}


def parse_line(line: str | bytes, *, ts: float | None = None) -> ParseResult:
    """Parse one console/journal line. ``ts`` (journal ``__REALTIME_TIMESTAMP`` in epoch
    seconds) wins over any timestamp printed in the text. Never raises."""
    if isinstance(line, str):
        if _FAST_MARK not in line and _LANE_MARK not in line:
            return None
        text = line
    else:
        try:
            if type(line) is not bytes:  # bytearray, memoryview: search their bytes
                line = bytes(line[: MAX_LINE_CHARS * 4])
            if _FAST_MARK_B not in line and _LANE_MARK_B not in line:
                return None
            text = bytes(line[: MAX_LINE_CHARS * 4]).decode("utf-8", errors="replace")
        except Exception as exc:  # a bytes-like that misbehaves: still never raise
            return Unparsed(f"undecodable input ({type(exc).__name__})", "")
    try:
        return _parse_text(text, ts)
    except Exception as exc:  # defensive: the contract is "never raises"
        return Unparsed(f"parser error ({type(exc).__name__})", _bounded(text))


def parse_jsonl(line: str | bytes, *, ts: float | None = None) -> ParseResult:
    """Parse one OpenClaw JSONL file-log record, or the flat ``consoleStyle: "json"`` form,
    into the same records as ``parse_line``. Never raises."""
    try:
        if isinstance(line, str):
            text = line
        else:
            text = bytes(line[: MAX_LINE_CHARS * 4]).decode("utf-8", errors="replace")
        if _FAST_MARK not in text and _LANE_MARK not in text:
            return None
        return _parse_json_text(text[:MAX_LINE_CHARS], ts)
    except Exception as exc:
        return Unparsed(f"parser error ({type(exc).__name__})", _bounded(str(line)[:1000]))


def parse_any(line: str | bytes, *, ts: float | None = None) -> ParseResult:
    """JSONL for a line that starts with ``{``, the console format otherwise
    (what ``classify`` and ``replay`` use on mixed input)."""
    try:
        if isinstance(line, str):
            is_json = line[:64].lstrip().startswith("{")
        else:
            is_json = bytes(line[:64]).lstrip().startswith(b"{")
    except Exception:  # not text at all: parse_line turns it into Unparsed
        is_json = False
    if is_json:
        return parse_jsonl(line, ts=ts)
    return parse_line(line, ts=ts)


# -- console lines ----------------------------------------------------------------------


def _parse_text(text: str, ts: float | None) -> ParseResult:
    if len(text) > MAX_LINE_CHARS:
        text = text[:MAX_LINE_CHARS]
    if "\x1b" in text or "\x9b" in text:
        text = _ANSI.sub("", text)
    if "\x00" in text:
        text = text.replace("\x00", "")

    i = text.find(_DECISION_MARK)
    p = text.find(PLUGIN_MARK)
    if p >= 0 and (i < 0 or p < i):
        return _plugin(text[p + len(PLUGIN_MARK) :], text[:p], ts, text)
    if i >= 0:
        return _decision_memo(text[i + len(_DECISION_MARK) :], text[:i], ts, text)
    i = text.find(_STOPPED_MARK)
    if i >= 0:
        return _chain_stopped(text[i + len(_STOPPED_MARK) :], text[:i], ts, text)
    i = text.find(_SUBSYSTEM_MARK)
    j = text.find("{")
    if (
        j >= 0
        and (i < 0 or j < i)
        and (j == len(text) - len(text.lstrip()) or '"decision"' in text)
    ):
        # consoleStyle "json" on stderr, possibly behind a syslog prefix.
        return _parse_json_text(text[j:], ts if ts is not None else _iso_ts(text[:j]))
    if i >= 0:
        close = text.find("]", i)
        body = text[close + 1 :] if close >= 0 else ""
        if "decision=" in body:
            return _decision(body, text[:i], ts, text)
        if _SUMMARY.match(body):
            return None
        return Unparsed("fallback marker without a decision", _bounded(text))
    if _LANE_MARK in text:
        return _lane(text, ts)
    if "decision=" in text and "requested=" in text:
        # Mentions fallbacks and carries the decision fields, but its marker is mangled
        # (escape garbage, a cut): counted as unparsed, never silently taken for chatter.
        return Unparsed("decision fields without a fallback marker", _bounded(text))
    return None  # chatter that merely mentions fallbacks


# A failing model repeats one decision line, word for word after its timestamp: the
# fields of a body read once are kept (least recently used out), keyed on the body, and
# the next line with that body costs a lookup and a record. Bodies over
# _MEMO_BODY_CHARS are parsed afresh, never kept.
_MEMO_SIZE = 2048
_MEMO_BODY_CHARS = 512
_Fields = tuple[Decision, ModelRef, ModelRef, str, ModelRef | None, str | None, str | None, int]
_new_decision = constructor(FallbackDecision)  # ``FallbackDecision(...)``, 1.1 µs sooner


def _decision_memo(body: str, prefix: str, ts: float | None, line: str) -> ParseResult:
    """``_decision``, memoised on ``body``; the time is the line's own."""
    fields = _body_fields(body) if len(body) <= _MEMO_BODY_CHARS else None
    if fields is None:  # long, or unparsed: an Unparsed names the whole line
        return _decision(body, prefix, ts, line)
    return _new_decision(*fields, ts=ts if ts is not None else _iso_ts(prefix))


@lru_cache(maxsize=_MEMO_SIZE)
def _body_fields(body: str) -> _Fields | None:
    record = _decision(body, "", None, body)
    if not isinstance(record, FallbackDecision):
        return None
    return (
        record.decision, record.requested, record.candidate, record.reason, record.next,
        record.provider_error_type, record.detail, record.suppressed_duplicates,
    )


def _decision(body: str, prefix: str, ts: float | None, line: str) -> ParseResult:
    """``decision=<D> requested=<P/M> candidate=<P/M> reason=<R>[ providerErrorType=<T>]
    next=<P/M>|none[ detail=<text to end of line>][ (<N> duplicates suppressed ...)]``."""
    suppressed = 0
    if body.endswith(")") or body.rstrip().endswith(")"):  # cheap guard before the regex
        m = _SUPPRESSED.search(body, max(0, len(body) - 96))
        if m:
            suppressed = int(m.group(1))
            body = body[: m.start()]
    detail: str | None = None
    d = body.find(" detail=")
    if d >= 0:
        detail = body[d + 8 :].strip() or None
        head = body[:d]
    elif body.lstrip().startswith("detail="):
        return Unparsed("detail= before the decision fields", _bounded(line))
    else:
        head = body
    fields: dict[str, str] = {}
    for token in head.split():
        key, eq, value = token.partition("=")
        if eq and key not in fields:
            fields[key] = value
    missing = [k for k in _REQUIRED if k not in fields]
    if missing:
        return Unparsed("missing " + ", ".join(f"{k}=" for k in missing), _bounded(line))
    decision = _DECISIONS.get(fields["decision"])
    if decision is None:
        return Unparsed(f"unknown decision {fields['decision'][:40]!r}", _bounded(line))
    reason = fields["reason"]
    if not reason:
        return Unparsed("empty reason=", _bounded(line))
    try:
        requested = _ref(fields["requested"])
        candidate = _ref(fields["candidate"])
        nxt = None if fields["next"] == "none" else _ref(fields["next"])
    except ValueError as exc:
        return Unparsed(str(exc)[:120], _bounded(line))
    return _new_decision(
        decision=decision,
        requested=requested,
        candidate=candidate,
        reason=reason,
        next=nxt,
        provider_error_type=fields.get("providerErrorType") or None,
        detail=detail,
        suppressed_duplicates=suppressed,
        ts=ts if ts is not None else _iso_ts(prefix),
    )



def _chain_stopped(body: str, prefix: str, ts: float | None, line: str) -> ParseResult:
    """``model fallback chain stopped: reason=<R> candidate=P/M[ errorName=X]``."""
    fields: dict[str, str] = {}
    for token in body.split():
        key, eq, value = token.partition("=")
        if eq and key not in fields:
            fields[key] = value
    if not fields.get("reason") or "candidate" not in fields:
        return Unparsed("chain stopped without reason= and candidate=", _bounded(line))
    try:
        candidate = _ref(fields["candidate"])
    except ValueError as exc:
        return Unparsed(str(exc)[:120], _bounded(line))
    return ChainStopped(
        reason=fields["reason"],
        candidate=candidate,
        error_name=fields.get("errorName") or None,
        ts=ts if ts is not None else _iso_ts(prefix),
    )


def _lane(text: str, ts: float | None) -> ParseResult:
    """``[diagnostic] lane task error: lane=session:agent:<id>:<rest> ... error="..."
    errorName=X``. Lanes that name no agent are chatter for us."""
    i = text.find(_LANE_MARK)
    rest = text[i + len(_LANE_MARK) :]
    j = rest.find("lane=")
    if j < 0:
        return Unparsed("lane task error without lane=", _bounded(text))
    lane = rest[j + 5 :].split(None, 1)[0] if rest[j + 5 :].strip() else ""
    if not lane.startswith("session:agent:"):
        return None
    agent_id = lane[len("session:agent:") :].split(":", 1)[0]
    if not agent_id:
        return Unparsed("lane names no agent id", _bounded(text))
    em = _LANE_ERROR.search(rest)
    nm = _ERROR_NAME.search(rest)
    return LaneHint(
        agent_id=agent_id,
        lane=lane,
        error=em.group(1).replace('\\"', '"') if em else None,
        error_name=nm.group(1) if nm else None,
        ts=ts if ts is not None else _iso_ts(text[:i]),
    )


# -- JSONL ------------------------------------------------------------------------------


def _parse_json_text(text: str, ts: float | None) -> ParseResult:
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return Unparsed("invalid JSON", _bounded(text))
    if not isinstance(obj, dict):
        return Unparsed("JSON line is not an object", _bounded(text))
    fields = obj.get("1")
    if not isinstance(fields, dict):
        fields = obj  # consoleStyle "json": the same fields, flat
    if ts is None:
        ts = _json_ts(obj)
    if "decision" in fields and _is_decision_record(obj, fields):
        return _json_decision(fields, ts, text)
    # A text message logged through the JSON logger (chain stopped, lane errors): the
    # logger spreads its arguments over "1", "2", ...; rejoin the string parts.
    parts = [obj[k] for k in ("1", "2", "3", "4", "message", "msg") if isinstance(obj.get(k), str)]
    joined = " ".join(parts)
    if _STOPPED_MARK in joined or _LANE_MARK in joined or PLUGIN_MARK in joined:
        result = _parse_text(joined, ts)
        if result is not None:
            return result
    if "model-fallback/decision" in text or "model_fallback_decision" in text:
        return Unparsed("fallback JSON record without decision fields", _bounded(text))
    return None


def _is_decision_record(obj: dict[str, Any], fields: dict[str, Any]) -> bool:
    if fields.get("event") == "model_fallback_decision":
        return True
    for key in ("0", "subsystem", "2", "message", "msg"):
        value = obj.get(key)
        if isinstance(value, str) and ("model-fallback" in value or "fallback decision" in value):
            return True
    return "candidateProvider" in fields or "requestedProvider" in fields


def _json_decision(fields: dict[str, Any], ts: float | None, text: str) -> ParseResult:
    decision = _DECISIONS.get(str(fields.get("decision")))
    if decision is None:
        return Unparsed(f"unknown decision {str(fields.get('decision'))[:40]!r}", _bounded(text))
    requested = _json_ref(fields, "requested")
    candidate = _json_ref(fields, "candidate")
    if requested is None or candidate is None:
        return Unparsed("missing requested/candidate provider and model", _bounded(text))
    nxt = _json_ref(fields, "nextCandidate")
    reason = fields.get("reason")
    detail = _opt_str(fields.get("errorPreview"))
    if detail is not None:
        detail = detail[:MAX_LINE_CHARS]
    return _new_decision(
        decision=decision,
        requested=requested,
        candidate=candidate,
        reason=str(reason) if isinstance(reason, str) and reason else "unknown",
        next=nxt,
        provider_error_type=_opt_str(fields.get("providerErrorType")),
        detail=detail,
        suppressed_duplicates=_opt_int(fields.get("suppressedDuplicateCount")) or 0,
        http_code=_opt_int(fields.get("httpCode")),
        ts=ts,
        session_id=_opt_str(fields.get("sessionId")),
        run_id=_opt_str(fields.get("runId")),
        lane=_opt_str(fields.get("lane")),
        final_outcome=_opt_str(fields.get("fallbackStepFinalOutcome")),
    )


def _json_ref(fields: dict[str, Any], stem: str) -> ModelRef | None:
    provider = fields.get(stem + "Provider")
    model = fields.get(stem + "Model")
    if not isinstance(model, str) or not model:
        return None
    if isinstance(provider, str) and provider:
        return ModelRef(provider, model)
    try:  # some builds log the full ref in the model field
        return ModelRef.parse(model)
    except ValueError:
        return None


def _json_ts(obj: dict[str, Any]) -> float | None:
    meta = obj.get("_meta")
    for value in (obj.get("time"), meta.get("date") if isinstance(meta, dict) else None):
        if isinstance(value, str):
            parsed = _iso_ts(value)
            if parsed is not None:
                return parsed
        elif isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            seconds = _plausible(float(value) / 1000.0 if value > 1e11 else float(value))
            if seconds is not None:
                return seconds
    return None
