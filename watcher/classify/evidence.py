"""The classify stage: a parsed record becomes one classified core event.

source -> parse -> **classify** -> decide. The daemon, ``replay`` and the simulator
all go through here, so they cannot disagree on what a line means.
"""

from __future__ import annotations

from dataclasses import replace

from watcher.classify.taxonomy import classify, classify_outcome
from watcher.core.events import (
    ChainStoppedEvidence,
    LaneHintEvidence,
    OutcomeEvidence,
    PluginStateEvidence,
    TrafficEvidence,
)
from watcher.parse._construct import constructor
from watcher.parse.records import (
    ChainStopped,
    FallbackDecision,
    LaneHint,
    ParseResult,
    PluginState,
    RunOutcome,
)
from watcher.support.redaction import redact

_new_traffic = constructor(TrafficEvidence)  # ``TrafficEvidence(...)``, 1.4 µs sooner

Evidence = (
    TrafficEvidence
    | ChainStoppedEvidence
    | LaneHintEvidence
    | OutcomeEvidence
    | PluginStateEvidence
)


def to_event(
    record: ParseResult, *, position: str | None = None, catch_up: bool = False
) -> Evidence | None:
    """The core event for ``record``; None for chatter and unparsed lines.

    Free text from the gateway (``detail``, a lane line's ``error``) is redacted here,
    after classification, so a key a provider echoed in its error never reaches the
    state, the audit, the pin file or a card (``watcher.support.redaction``)."""
    if isinstance(record, FallbackDecision):
        c = classify(record)
        if record.detail:
            detail = redact(record.detail)
            if detail != record.detail:  # most details hold no key: keep the record
                record = replace(record, detail=detail)
        return _new_traffic(
            record,
            failure_class=c.failure_class,
            signature=c.signature,
            http_status=c.http_status,
            retry_after_s=c.retry_after_s,
            position=position,
            catch_up=catch_up,
        )
    if isinstance(record, ChainStopped):
        c = classify(record)
        return ChainStoppedEvidence(
            record,
            failure_class=c.failure_class,
            signature=c.signature,
            position=position,
            catch_up=catch_up,
        )
    if isinstance(record, LaneHint):
        if record.error:
            error = redact(record.error)
            if error != record.error:
                record = replace(record, error=error)
        return LaneHintEvidence(record, position=position, catch_up=catch_up)
    if isinstance(record, RunOutcome):
        return _outcome(record, position, catch_up)
    if isinstance(record, PluginState):
        return PluginStateEvidence(record, position=position, catch_up=catch_up)
    return None


def _outcome(record: RunOutcome, position: str | None, catch_up: bool) -> OutcomeEvidence:
    """Classify the run's failed primary attempt (the one the plugin may have served
    from the pin) by its status and error text, as a probe's answer is classified."""
    attempts = tuple(
        a if not a.error or (clean := redact(a.error)) == a.error else replace(a, error=clean)
        for a in record.attempts
    )
    error = redact(record.error) if record.error else None
    if attempts != record.attempts or error != record.error:
        record = replace(record, attempts=attempts, error=error)
    primary = record.primary_attempt
    if primary is None or primary.ok:
        return OutcomeEvidence(record, position=position, catch_up=catch_up)
    c = classify_outcome(None, primary.status, primary.error or "")
    return OutcomeEvidence(
        record,
        primary_class=c.failure_class,
        primary_signature=c.signature,
        primary_retry_after_s=c.retry_after_s,
        position=position,
        catch_up=catch_up,
    )
