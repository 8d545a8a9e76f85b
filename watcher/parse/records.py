"""Typed records: what one gateway log line or journal entry becomes.

Normalise first: every line is turned into exactly one of these before anything
classifies it, so classifier and core tests need no journal.

- ``FallbackDecision``: a ``[model-fallback/decision]`` line or its JSONL twin.
- ``ChainStopped``: ``model fallback chain stopped: reason=... candidate=...``.
- ``LaneHint``: ``[diagnostic] lane task error: lane=session:agent:<id>:...``, an
  agent-attribution hint (never a key: concurrent agents interleave).
- ``RunOutcome``: the gateway plugin's ``[fallback-pin] run outcome {...}`` line: what
  really served (or failed) each attempt of one run, by agent.
- ``PluginState``: the plugin's ``[fallback-pin] state {...}`` line: whether the pin
  file steers the gateway right now, and why not.
- ``Unparsed``: a line that carried a fallback marker but could not be read, or
  bytes that could not be decoded. Callers count these; nothing raises.

Lines that are plain gateway chatter parse to ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Decision(StrEnum):
    """The gateway's four ``decision=`` values (there is no "exhausted" one)."""

    CANDIDATE_FAILED = "candidate_failed"
    SKIP_CANDIDATE = "skip_candidate"
    PROBE_COOLDOWN_CANDIDATE = "probe_cooldown_candidate"
    CANDIDATE_SUCCEEDED = "candidate_succeeded"


# The gateway's ``reason=`` vocabulary as of openclaw 2026.9.6. A reason outside
# this set is kept verbatim (newer gateways add reasons) and classified by detail.
KNOWN_REASONS: frozenset[str] = frozenset(
    {
        "auth",
        "auth_permanent",
        "format",
        "rate_limit",
        "overloaded",
        "billing",
        "server_error",
        "timeout",
        "tls_certificate",
        "context_overflow",
        "model_not_found",
        "session_expired",
        "empty_response",
        "no_error_details",
        "unclassified",
        "unknown",
    }
)


@dataclass(frozen=True, slots=True)
class ModelRef:
    """``provider/model``; the provider is the text before the first ``/``.

    The model part may itself contain ``/`` and ``:``
    (``openrouter/openrouter/owl-alpha``, ``ollama/kimi-k2.5:cloud``).
    """

    provider: str
    model: str

    @classmethod
    def parse(cls, ref: str) -> ModelRef:
        provider, sep, model = ref.partition("/")
        if not sep or not provider or not model:
            raise ValueError(f"not a provider/model ref: {ref!r}")
        return cls(provider, model)

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True, slots=True)
class FallbackDecision:
    """One ``model fallback decision`` from the console line or the JSONL file log."""

    decision: Decision
    requested: ModelRef
    candidate: ModelRef
    reason: str
    next: ModelRef | None  # None is ``next=none``: for a failure, the chain is exhausted
    provider_error_type: str | None = None
    detail: str | None = None
    # ``(N duplicates suppressed in last 30s)``: N more identical failures, not zero.
    suppressed_duplicates: int = 0
    http_code: int | None = None  # JSONL ``httpCode``; statuses in detail are found by taxonomy
    ts: float | None = None  # epoch seconds: journal __REALTIME_TIMESTAMP, else an ISO prefix
    session_id: str | None = None
    run_id: str | None = None
    lane: str | None = None
    final_outcome: str | None = None  # JSONL fallbackStepFinalOutcome

    @property
    def occurrences(self) -> int:
        """How many gateway events this line stands for (1 + suppressed duplicates)."""
        return 1 + self.suppressed_duplicates

    @property
    def chain_exhausted(self) -> bool:
        return self.decision is Decision.CANDIDATE_FAILED and self.next is None


@dataclass(frozen=True, slots=True)
class ChainStopped:
    """``model fallback chain stopped: reason=<R> candidate=P/M[ errorName=X]``."""

    reason: str
    candidate: ModelRef
    error_name: str | None = None
    ts: float | None = None


@dataclass(frozen=True, slots=True)
class LaneHint:
    """``[diagnostic] lane task error: lane=session:agent:<agentId>:<rest> ...``."""

    agent_id: str
    lane: str
    error: str | None = None
    error_name: str | None = None
    ts: float | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a run as the plugin saw it: the model really called.

    ``primary``: the run's first attempt, on the agent's configured primary slot;
    ``overridden``: the plugin served that attempt from the pin instead."""

    model: ModelRef
    ok: bool
    primary: bool = False
    overridden: bool = False
    status: int | None = None
    error: str | None = None
    tries: int = 1


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """``[fallback-pin] run outcome {...}`` (contract v1): one run of one agent."""

    agent_id: str
    run_id: str
    ok: bool
    attempts: tuple[Attempt, ...]
    session: str | None = None
    primary: ModelRef | None = None
    pinned: ModelRef | None = None
    model: ModelRef | None = None  # the model that served, or the last one that failed
    status: int | None = None
    error: str | None = None
    ts: float | None = None

    @property
    def primary_attempt(self) -> Attempt | None:
        for attempt in self.attempts:
            if attempt.primary:
                return attempt
        return None


@dataclass(frozen=True, slots=True)
class PluginState:
    """``[fallback-pin] state {...}``: the plugin steers by the pin file, or stands down."""

    steering: bool
    kind: str  # fresh | missing | unreadable | invalid | stale | blocked
    why: str
    pin_file: str | None = None
    ts: float | None = None


@dataclass(frozen=True, slots=True)
class Unparsed:
    """A line that looked relevant but could not be read. ``text`` is a bounded prefix."""

    why: str
    text: str


Record = FallbackDecision | ChainStopped | LaneHint | RunOutcome | PluginState
ParseResult = Record | Unparsed | None
