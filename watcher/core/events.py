"""What ``decide`` reacts to: evidence, operator decisions, config changes, ticks.

A finished probe is a ``watcher.core.evidence.ProbeResult`` (shared with the probe
client), passed to ``decide`` as is.

Evidence arrives already classified (the shell runs ``watcher.classify.taxonomy.classify``),
so the core needs no parser and tests build events from plain records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from watcher.classify.table import FailureClass
from watcher.core.evidence import ProbeResult
from watcher.parse.records import ChainStopped, FallbackDecision, LaneHint, PluginState, RunOutcome
from watcher.pins.schema import PinFile


@dataclass(frozen=True, slots=True)
class TrafficEvidence:
    """One ``[model-fallback/decision]`` record about a model as *candidate*.

    ``position`` is where it came from (journal cursor, file offset) for the audit.
    ``catch_up`` marks history replayed at start-up: state is updated, and alerts are
    flagged so the sender records rather than announces them.
    """

    record: FallbackDecision
    failure_class: FailureClass | None = None
    signature: str = ""
    http_status: int | None = None
    retry_after_s: float | None = None
    position: str | None = None
    catch_up: bool = False


@dataclass(frozen=True, slots=True)
class ChainStoppedEvidence:
    """``model fallback chain stopped``: the gateway gave up on this request."""

    record: ChainStopped
    failure_class: FailureClass | None = None
    signature: str = ""
    position: str | None = None
    catch_up: bool = False


@dataclass(frozen=True, slots=True)
class LaneHintEvidence:
    """A ``lane task error`` line naming an agent: attribution for cards, never a key."""

    record: LaneHint
    position: str | None = None
    catch_up: bool = False


@dataclass(frozen=True, slots=True)
class OutcomeEvidence:
    """The gateway plugin's ``run outcome`` line: what really served one agent's run.

    ``primary_class`` (and its signature, Retry-After) classify the run's primary
    attempt when it failed: under an override that attempt went to the pinned model,
    which the gateway's own decision line does not name."""

    record: RunOutcome
    primary_class: FailureClass | None = None
    primary_signature: str = ""
    primary_retry_after_s: float | None = None
    position: str | None = None
    catch_up: bool = False


@dataclass(frozen=True, slots=True)
class PluginStateEvidence:
    """The gateway plugin steers by the pin file, or stands down (``record.why``).

    The shell raises one too (``kind="not_configured"``) when ``openclaw.json`` does not
    load the plugin the way the pin needs."""

    record: PluginState
    position: str | None = None
    catch_up: bool = False


@dataclass(frozen=True, slots=True)
class Hold:
    """Operator: keep ``agent`` on ``model`` (a member of its chain) until released."""

    agent: str
    model: str
    until: float | None = None
    note: str | None = None
    actor: str = "operator"


@dataclass(frozen=True, slots=True)
class Release:
    """Operator: drop the agent's hold; normal policy decides its pin again."""

    agent: str
    actor: str


@dataclass(frozen=True, slots=True)
class SetServing:
    """Operator: put the agent on ``model``. The primary: that model counts healthy
    and its cooldown is cleared. A fallback: a hold until released."""

    agent: str
    model: str
    actor: str


@dataclass(frozen=True, slots=True)
class FailbackNow:
    """Operator: fail the agent back to its primary now, on the strength of ``probe``
    (a probe of the primary the shell ran just before). Refused if it failed."""

    agent: str
    actor: str
    probe: ProbeResult


@dataclass(frozen=True, slots=True)
class MuteCards:
    """Operator: suppress cards whose dedup key is ``key`` until ``until``. Muted cards
    are still counted (reason ``muted``) and shown in ``status``; nothing is hidden."""

    key: str
    until: float
    actor: str


@dataclass(frozen=True, slots=True)
class AccessRefused:
    """Someone tried an operator action and was refused before it reached the policy
    (not allowlisted, a stale button). Changes nothing; the audit keeps who and why."""

    actor: str
    action: str
    why: str
    chat: str | None = None


@dataclass(frozen=True, slots=True)
class PinFileEdited:
    """A valid pin file that differs from what the watcher last wrote: a human edit."""

    pins: PinFile
    actor: str = "file"


@dataclass(frozen=True, slots=True)
class PinFileRejected:
    """An invalid pin file was quarantined to ``quarantined_to`` and the last good one
    restored by the store."""

    error: str
    quarantined_to: str | None = None


@dataclass(frozen=True, slots=True)
class ChainsChanged:
    """``openclaw.json`` was reloaded. ``error`` set: it was broken, keep the last good
    chains (``chains`` is ignored) and raise CONFIG_REJECTED."""

    chains: Mapping[str, tuple[str, ...]]
    error: str | None = None
    # Who wrote the file: "failover-breaker" (its ledger names the text), or None.
    writer: str | None = None


@dataclass(frozen=True, slots=True)
class ChainLint:
    """The chain check (``watcher.gateway.lint``) ran on the current ``openclaw.json``:
    its findings, one sentence each. New ones and cleared ones are announced once."""

    findings: tuple[str, ...]
    baseline: bool = False  # the first start: record them, announce nothing


@dataclass(frozen=True, slots=True)
class DrillSummary:
    """One agent's line of a chain drill (``watcher.probe.drill``)."""

    agent: str
    working_depth: int
    members: int
    cross_provider_ok: bool
    degraded: bool
    line: str  # its members, compact: "p/a ok 120ms, q/b throttle, r/c not probed"


@dataclass(frozen=True, slots=True)
class DrillReported:
    """A scheduled drill finished: one summary per agent."""

    agents: tuple[DrillSummary, ...]


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed. The daemon ticks every few seconds (15 s by default): holds expire,
    flap scores decay, due probes are requested."""


OperatorEvent = Hold | Release | SetServing | FailbackNow | MuteCards | PinFileEdited
Event = (
    TrafficEvidence
    | ChainStoppedEvidence
    | LaneHintEvidence
    | OutcomeEvidence
    | PluginStateEvidence
    | ProbeResult
    | OperatorEvent
    | AccessRefused
    | PinFileRejected
    | ChainsChanged
    | ChainLint
    | DrillReported
    | Tick
)
