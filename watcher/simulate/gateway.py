"""A model of the OpenClaw gateway's fallback behaviour, as the log contract describes it.

The simulator must feed the watcher what a real gateway would print, so the real
parser and taxonomy run on it. For one request of one agent, at virtual time ``t``:

- the request starts at the model the pin file names for the agent (the gateway reads
  the pin on every new session) and walks the rest of the chain on failure;
- a rate limit (429, slot full) is retried on the same model a few times with a
  doubling backoff before the decision line, so that line comes after the retries;
- before each ``candidate_failed`` the gateway prints the
  ``[diagnostic] lane task error: lane=session:agent:<id>:main ...`` hint;
- after a rate limit the gateway parks that model in its own short cooldown and
  ``skip_candidate``\\s it on later requests ("Provider x is in cooldown"); the last
  chain entry is always tried;
- identical ``auth`` failure lines within 30 s are folded into the next one as
  ``(N duplicates suppressed in last 30s)``, as the gateway does;
- a candidate that answers after earlier failures logs ``candidate_succeeded``; a
  first-try success logs nothing; the last failure of an exhausted chain says
  ``next=none``, followed by ``model fallback chain stopped``.

Simplification, stated: the walk is computed when the request starts (answers are
read from the timeline at each attempt's own time, so retries can outlast a window),
and the lines carry their own later timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from watcher.simulate.model import Answer, Scenario

RATE_LIMITED = ("429", "slot_full")
ATTEMPT_LATENCY_S = 0.4  # a failed (non-timeout) attempt's round trip
STEP_S = 0.01  # spacing between lines printed "at once"

_DETAIL: dict[str, tuple[str, str]] = {
    # kind -> (reason=, detail=)
    "429": ("rate_limit", '429 {"error":"rate_limit_exceeded"}'),
    "slot_full": (
        "rate_limit",
        "429 concurrency limit reached: all 3 model slots are busy, try another model",
    ),
    "5xx": ("server_error", "500 Internal Server Error"),
    "503": ("overloaded", "503 The server is overloaded or not ready yet."),
    "timeout": ("timeout", "request timed out after {ms}ms"),
    "401": ("auth", '401 {"error":"unauthorized: token expired or invalid"}'),
}
_LANE_ERROR: dict[str, str] = {
    "429": "⚠️ API rate limit reached. Please try again later.",
    "slot_full": "⚠️ API rate limit reached. Please try again later.",
    "5xx": "Internal Server Error",
    "503": "The server is overloaded or not ready yet.",
    "timeout": "Request timed out.",
    "401": "Unauthorized",
}


def iso_ms(ts: float) -> str:
    """``2026-05-20T14:00:03.120+00:00``: the prefix ``openclaw gateway run`` prints."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class LogLine:
    ts: float
    text: str


@dataclass(frozen=True)
class RequestOutcome:
    """One request of one agent, as the gateway handled it."""

    agent: str
    started: float
    finished: float
    requested: str  # where the walk started (the pinned model)
    served_by: str | None  # None: the chain was exhausted
    tried: tuple[str, ...]  # candidates actually called (skips excluded)
    lines: tuple[LogLine, ...]


@dataclass
class _Fold:
    last_printed: float
    pending: int = 0


@dataclass
class GatewayModel:
    """The gateway's behaviour for a scenario; holds only the gateway's own state
    (its skip cooldowns and folded auth lines)."""

    scenario: Scenario
    cooldown_until: dict[str, float] = field(default_factory=dict)
    _folds: dict[tuple[str, str, str], _Fold] = field(default_factory=dict)

    def handle(self, agent: str, pinned: str, t: float) -> RequestOutcome:
        chain = self.scenario.chains[agent]
        start = chain.index(pinned) if pinned in chain else 0
        candidates = chain[start:]
        requested = candidates[0]
        gw = self.scenario.gateway
        clock = t
        lines: list[LogLine] = []
        tried: list[str] = []
        earlier_trouble = False
        for i, cand in enumerate(candidates):
            nxt = candidates[i + 1] if i + 1 < len(candidates) else None
            if nxt is not None and self.cooldown_until.get(cand, float("-inf")) > clock:
                provider = cand.partition("/")[0]
                lines.append(LogLine(clock, _decision(
                    clock, "skip_candidate", requested, cand, "rate_limit", nxt,
                    f"Provider {provider} is in cooldown")))
                clock += STEP_S
                earlier_trouble = True
                continue
            tried.append(cand)
            began = clock
            answer, clock = self._attempt(cand, clock)
            if answer.ok:
                if earlier_trouble:
                    lines.append(LogLine(clock, _decision(
                        clock, "candidate_succeeded", requested, cand, "unknown", nxt, None)))
                return RequestOutcome(agent, t, clock, requested, cand, tuple(tried),
                                      tuple(lines))
            earlier_trouble = True
            reason, detail = _DETAIL[answer.kind]
            detail = detail.replace("{ms}", str(int(gw.timeout_s * 1000)))
            if answer.retry_after_s is not None:
                detail += f" (Retry-After: {answer.retry_after_s:g})"
            lines.append(LogLine(clock, _lane(clock, agent, answer.kind, clock - began)))
            clock += STEP_S
            line = self._maybe_fold(clock, requested, cand, reason, nxt, detail)
            if line is not None:
                lines.append(LogLine(clock, line))
            if answer.kind in RATE_LIMITED and gw.cooldown_s > 0:
                self.cooldown_until[cand] = clock + gw.cooldown_s
            clock += STEP_S
            if nxt is None:
                lines.append(LogLine(clock, (
                    f"{iso_ms(clock)} [model-fallback/decision] model fallback chain stopped: "
                    f"reason={reason} candidate={cand} errorName=FailoverError")))
        return RequestOutcome(agent, t, clock, requested, None, tuple(tried), tuple(lines))

    def _attempt(self, model: str, clock: float) -> tuple[Answer, float]:
        """One call, plus same-model retries on a rate limit. Returns the final answer
        and the time it came back."""
        gw = self.scenario.gateway
        answer = self.scenario.traffic_answer(model, clock)
        if answer.ok:
            return answer, clock
        if answer.kind == "timeout":
            return answer, clock + gw.timeout_s
        clock += ATTEMPT_LATENCY_S
        delay = gw.retry_backoff_s
        retries = 0
        while answer.kind in RATE_LIMITED and retries < gw.rate_limit_retries:
            clock += delay
            delay *= 2
            retries += 1
            answer = self.scenario.traffic_answer(model, clock)
            if answer.ok:
                return answer, clock
            if answer.kind == "timeout":
                return answer, clock + gw.timeout_s
            clock += ATTEMPT_LATENCY_S
        return answer, clock

    def _maybe_fold(self, clock: float, requested: str, cand: str, reason: str,
                    nxt: str | None, detail: str) -> str | None:
        """Print a decision line, or fold an identical auth line into the next one."""
        if reason != "auth":
            return _decision(clock, "candidate_failed", requested, cand, reason, nxt, detail)
        key = (requested, cand, nxt or "none")
        fold = self._folds.get(key)
        window = self.scenario.gateway.auth_dedup_s
        if fold is not None and clock - fold.last_printed < window:
            fold.pending += 1
            return None
        pending = fold.pending if fold is not None else 0
        self._folds[key] = _Fold(clock)
        line = _decision(clock, "candidate_failed", requested, cand, reason, nxt, detail)
        if pending:
            line += f" ({pending} duplicates suppressed in last {window:g}s)"
        return line


def _decision(ts: float, decision: str, requested: str, candidate: str, reason: str,
              nxt: str | None, detail: str | None) -> str:
    line = (
        f"{iso_ms(ts)} [model-fallback/decision] model fallback decision: "
        f"decision={decision} requested={requested} candidate={candidate} reason={reason} "
        f"next={nxt or 'none'}"
    )
    if detail:
        line += f" detail={detail}"
    return line


def _lane(ts: float, agent: str, kind: str, duration_s: float) -> str:
    return (
        f"{iso_ms(ts)} [diagnostic] lane task error: lane=session:agent:{agent}:main "
        f"durationMs={int(duration_s * 1000)} error=\"{_LANE_ERROR[kind]}\" "
        "errorName=FailoverError"
    )
