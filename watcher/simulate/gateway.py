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

With the fallback-pin plugin (``[gateway] plugin = true``, the default), as the real
plugin and gateway behave (``gateway-plugin/index.js``, ``tests/gateway``):

- every run starts at the configured primary; the plugin serves that first attempt
  from the pinned model, and the gateway's decision line about it still names the
  configured primary; the rest of the chain follows it;
- when the agent's pin record carries a ``trial`` for its primary that this gateway
  has not run yet, that one run is not overridden: it tries the primary first;
- every run ends with the plugin's ``[fallback-pin] run outcome {...}`` line naming
  the model each attempt really called; the gateway's start prints its ``state``.

Simplification, stated: the walk is computed when the request starts (answers are
read from the timeline at each attempt's own time, so retries can outlast a window),
and the lines carry their own later timestamps.
"""

from __future__ import annotations

import json
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
_STATUS: dict[str, int] = {"429": 429, "slot_full": 429, "5xx": 500, "503": 503, "401": 401}
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


@dataclass(frozen=True, slots=True)
class PinnedTrial:
    """A pin record's ``trial``: the next run tries ``model`` first, once per ``id``."""

    model: str
    id: str
    until: float


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
    trial: bool = False  # the plugin ran a trial turn on the primary


@dataclass
class _Attempt:
    model: str
    primary: bool
    overridden: bool
    ok: bool = False
    status: int | None = None
    error: str | None = None
    tries: int = 1


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
    used_trials: set[str] = field(default_factory=set)  # the plugin's, per process
    runs: int = 0
    _folds: dict[tuple[str, str, str], _Fold] = field(default_factory=dict)

    def state_line(self, t: float) -> LogLine:
        """What the plugin prints when the gateway starts and finds a fresh pin file."""
        body = {"v": 1, "steering": True, "kind": "fresh", "why": "pin file fresh",
                "pin_file": "sim:fallback-state.json"}
        return LogLine(t, f"{iso_ms(t)} [plugins] [fallback-pin] state {json.dumps(body)}")

    def handle(
        self, agent: str, pinned: str, t: float, trial: PinnedTrial | None = None
    ) -> RequestOutcome:
        chain = self.scenario.chains[agent]
        if not self.scenario.gateway.plugin:
            start = chain.index(pinned) if pinned in chain else 0
            return self._walk(agent, t, chain[start:], chain[start], None)
        primary = chain[0]
        is_trial = (
            trial is not None and pinned != primary and trial.model == primary
            and trial.id not in self.used_trials and t < trial.until
            and self.cooldown_until.get(primary, float("-inf")) <= t
        )
        if is_trial:
            assert trial is not None
            self.used_trials.add(trial.id)
        override = None if is_trial or pinned == primary or pinned not in chain else pinned
        return self._walk(agent, t, chain, primary, override, trial=is_trial)

    def _walk(
        self, agent: str, t: float, candidates: tuple[str, ...], requested: str,
        override: str | None, *, trial: bool = False,
    ) -> RequestOutcome:
        """Walk ``candidates``; with the plugin (``override`` is the pinned model, or
        None when the run is not overridden) the first one is the primary attempt."""
        plugin = self.scenario.gateway.plugin
        gw = self.scenario.gateway
        clock = t
        lines: list[LogLine] = []
        tried: list[str] = []
        attempts: list[_Attempt] = []
        earlier_trouble = False
        served: str | None = None
        for i, named in enumerate(candidates):
            nxt = candidates[i + 1] if i + 1 < len(candidates) else None
            called = override if (plugin and i == 0 and override is not None) else named
            if nxt is not None and self.cooldown_until.get(called, float("-inf")) > clock:
                provider = named.partition("/")[0]
                lines.append(LogLine(clock, _decision(
                    clock, "skip_candidate", requested, named, "rate_limit", nxt,
                    f"Provider {provider} is in cooldown")))
                clock += STEP_S
                earlier_trouble = True
                continue
            tried.append(called)
            attempt = _Attempt(called, primary=plugin and i == 0,
                               overridden=plugin and i == 0 and override is not None)
            attempts.append(attempt)
            began = clock
            answer, clock, tries = self._attempt(called, clock)
            attempt.tries = tries
            if answer.ok:
                attempt.ok = True
                if earlier_trouble:
                    lines.append(LogLine(clock, _decision(
                        clock, "candidate_succeeded", requested, named, "unknown", nxt, None)))
                served = called
                break
            earlier_trouble = True
            reason, detail = _DETAIL[answer.kind]
            detail = detail.replace("{ms}", str(int(gw.timeout_s * 1000)))
            if answer.retry_after_s is not None:
                detail += f" (Retry-After: {answer.retry_after_s:g})"
            attempt.status = _STATUS.get(answer.kind)
            attempt.error = detail
            lines.append(LogLine(clock, _lane(clock, agent, answer.kind, clock - began)))
            clock += STEP_S
            line = self._maybe_fold(clock, requested, named, reason, nxt, detail)
            if line is not None:
                lines.append(LogLine(clock, line))
            if answer.kind in RATE_LIMITED and gw.cooldown_s > 0:
                self.cooldown_until[called] = clock + gw.cooldown_s
            clock += STEP_S
            if nxt is None:
                lines.append(LogLine(clock, (
                    f"{iso_ms(clock)} [model-fallback/decision] model fallback chain stopped: "
                    f"reason={reason} candidate={named} errorName=FailoverError")))
        if plugin:
            clock += STEP_S
            lines.append(LogLine(clock, self._outcome_line(
                clock, agent, candidates[0], override, attempts, served, trial)))
        return RequestOutcome(agent, t, clock, override or candidates[0], served,
                              tuple(tried), tuple(lines), trial)

    def _outcome_line(
        self, clock: float, agent: str, primary: str, pinned: str | None,
        attempts: list[_Attempt], served: str | None, trial: bool,
    ) -> str:
        self.runs += 1
        last = attempts[-1] if attempts else None
        body = {
            "v": 1,
            "agent": agent,
            "run": f"sim-run-{self.runs}",
            "session": f"agent:{agent}:main",
            "primary": primary,
            "pinned": pinned,
            "trial": "sim-trial" if trial else None,
            "model": served or (last.model if last else pinned or primary),
            "outcome": "ok" if served else "error",
            "status": None if served or last is None else last.status,
            "error": None if served or last is None else last.error,
            "attempts": [
                {"model": a.model, "primary": a.primary, "overridden": a.overridden,
                 "ok": a.ok, "status": a.status, "error": a.error, "tries": a.tries}
                for a in attempts
            ],
        }
        return f"{iso_ms(clock)} [plugins] [fallback-pin] run outcome {json.dumps(body)}"

    def _attempt(self, model: str, clock: float) -> tuple[Answer, float, int]:
        """One call, plus same-model retries on a rate limit. Returns the final answer,
        the time it came back, and how many calls it took."""
        gw = self.scenario.gateway
        answer = self.scenario.traffic_answer(model, clock)
        if answer.ok:
            return answer, clock, 1
        if answer.kind == "timeout":
            return answer, clock + gw.timeout_s, 1
        clock += ATTEMPT_LATENCY_S
        delay = gw.retry_backoff_s
        retries = 0
        while answer.kind in RATE_LIMITED and retries < gw.rate_limit_retries:
            clock += delay
            delay *= 2
            retries += 1
            answer = self.scenario.traffic_answer(model, clock)
            if answer.ok:
                return answer, clock, retries + 1
            if answer.kind == "timeout":
                return answer, clock + gw.timeout_s, retries + 1
            clock += ATTEMPT_LATENCY_S
        return answer, clock, retries + 1

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
