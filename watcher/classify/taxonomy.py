"""Classify a fallback decision, a chain stop or an HTTP outcome into a ``FailureClass``.

The classes and what they mean for policy are the table in ``watcher.classify.table``
(re-exported here). The *signatures* are an ordered list of data rows
(``watcher.classify.signatures``), each naming one piece of evidence and the class it
implies. Tests enumerate them, and
every one must have a positive sample in ``tests/vectors/`` (fail2ban ``failJSON``).

Four inputs are combined: the decision, the gateway's ``reason``, an HTTP status (the
JSONL ``httpCode``, or one found in the detail: a leading ``429``, ``HTTP 503``,
``status 401``) and detail-text signatures. Signatures sit in tiers; the first tier
with a matching signature decides, and inside a tier the first match in list order wins
(the vector test fails if two signatures of different classes in the deciding tier
claim one sample line). Tiers, and why in this order:

0. ``decision``: ``candidate_succeeded`` and ``probe_cooldown_candidate`` are not
   failures; a 2xx HTTP outcome is a success.
1. ``local``: the gateway refused by itself (its own cooldown, an auth profile it
   parked, a skip that never reached the provider). Not provider-health evidence,
   whatever the reason says; counting it would double-count the original failure.
2. ``specific``: detail phrases that refine a generic status or reason (billing text
   on a 429, "no API key" on an auth failure, context overflow in a 400).
3. ``text``: the gateway's own message patterns and their kin (throttle, overloaded,
   timeout, connection, auth, server error, model not found).
4. ``reason``: an informative gateway ``reason``.
5. ``status``: the HTTP status, when neither text nor an informative reason decided.
   This is how ``reason=unknown detail=429 ...`` becomes a throttle.
6. ``fallback``: nothing recognised: ``unknown``.

Pure: no clock, no I/O. Results are memoised (details repeat a lot in a throttle wave).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from watcher.classify.signatures import (
    CHAIN_STOPPED,
    OUTCOME,
    SIGNATURES,
    TIERS,
    Signature,
)
from watcher.classify.table import TAXONOMY, TAXONOMY_VERSION, ClassInfo, FailureClass
from watcher.parse.records import ChainStopped, Decision, FallbackDecision
from watcher.support.regex import absent, lowered, needed_lower

__all__ = [
    "CHAIN_STOPPED",
    "OUTCOME",
    "SIGNATURES",
    "TAXONOMY",
    "TAXONOMY_VERSION",
    "TIERS",
    "ClassInfo",
    "Classification",
    "Evidence",
    "FailureClass",
    "Signature",
    "classify",
    "classify_outcome",
    "evidence_of",
    "find_http_status",
    "find_retry_after",
    "matching_signatures",
    "outcome_evidence",
]

@dataclass(frozen=True, slots=True)
class Classification:
    """What one failure (or non-failure) was. ``failure_class`` None: not a failure."""

    failure_class: FailureClass | None
    signature: str  # id of the Signature that decided
    http_status: int | None = None
    retry_after_s: float | None = None

    @property
    def info(self) -> ClassInfo | None:
        return TAXONOMY[self.failure_class] if self.failure_class is not None else None


_BY_TIER: tuple[tuple[Signature, ...], ...] = tuple(
    tuple(s for s in SIGNATURES if s.tier == tier) for tier in TIERS
)

_LEADING_STATUS = re.compile(r"\s*(?:\[|\()?([45]\d\d)\b(?![.\d%])")
_STATUS_IN_TEXT = re.compile(
    r"\bHTTP(?:/\d(?:\.\d)?)?[ :]\s*([1-5]\d\d)\b"
    r"|\b(?:status|status[_ ]code|statusCode|http[_ ]?code|error[_ ]code)\b\"?\s*[:=]?\s*\"?"
    r"([1-5]\d\d)\b",
    re.IGNORECASE,
)
_RETRY_AFTER = re.compile(
    r"retry[- _]after\"?\s*[:=]?\s*\"?(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|sec|seconds?|m|min"
    r"|minutes?)?\b"
    r"|(?:try again|retry) in (?:about )?(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|sec|seconds?|m"
    r"|min|minutes?)\b",
    re.IGNORECASE,
)


# Strings one of which each pattern's every match holds: a text with none of them is
# not searched (a substring test costs a tenth of the search, and most details hold
# no Retry-After).
_STATUS_NEEDS = needed_lower(_STATUS_IN_TEXT)
_RETRY_NEEDS = needed_lower(_RETRY_AFTER)


def find_http_status(text: str) -> int | None:
    """An HTTP status in free text: a leading ``429``/``404 {...}``, ``HTTP 503``,
    ``HTTP/1.1 502``, ``status 401``, ``"status": 429``, ``error code: 529``."""
    if not text:
        return None
    m = _LEADING_STATUS.match(text)
    if m:
        return int(m.group(1))
    head = text[:4096]
    m = None if absent(_STATUS_NEEDS, head) else _STATUS_IN_TEXT.search(head)
    if m:
        return int(m.group(1) or m.group(2))
    return None


def find_retry_after(text: str) -> float | None:
    """``Retry-After: 30``, ``retry after 20s``, ``try again in 1.5 minutes`` -> seconds."""
    if not text:
        return None
    head = text[:4096]
    m = None if absent(_RETRY_NEEDS, head) else _RETRY_AFTER.search(head)
    if not m:
        return None
    value = float(m.group(1) or m.group(3))
    unit = (m.group(2) or m.group(4) or "s").lower()
    if unit.startswith("ms") or unit.startswith("milli"):
        return value / 1000.0
    if unit.startswith("m"):
        return value * 60.0
    return value


def matching_signatures(
    context: str, reason: str | None, status: int | None, text: str
) -> list[Signature]:
    """Every signature that claims this evidence, in precedence order (for tests and
    ``classify --explain``-style tooling); the first one decides."""
    return [s for s in SIGNATURES if s.matches(context, reason, status, text)]


CACHED_TEXT_CHARS = 512
"""Only evidence whose text is at most this long is memoised.

Real details are short and repeat (the same provider error, line after line), so the
cache pays; hostile ones are long and unique, and a cache keyed on 8 KiB texts would
hold hundreds of MiB (measured: 257 MiB for 8,192 emoji details). Long texts are
classified afresh each time instead, which keeps the cache under a few MiB."""


def _decide(context: str, reason: str | None, status: int | None, text: str) -> Classification:
    if len(text) <= CACHED_TEXT_CHARS:
        return _decide_cached(context, reason, status, text)
    return _decide_uncached(context, reason, status, text)


def _decide_uncached(
    context: str, reason: str | None, status: int | None, text: str
) -> Classification:
    lower = lowered(text)
    for tier in _BY_TIER:
        for sig in tier:
            if sig.matches(context, reason, status, text, lower):
                return Classification(sig.failure_class, sig.id, status, find_retry_after(text))
    raise AssertionError("fallback.unknown matches everything")  # pragma: no cover


_decide_cached = lru_cache(maxsize=2048)(_decide_uncached)


Evidence = tuple[str, str | None, int | None, str]
"""(context, reason, HTTP status, text): everything a signature looks at."""


def evidence_of(record: FallbackDecision | ChainStopped) -> Evidence:
    """The four inputs of a log record: decision (or ``chain_stopped``), reason, HTTP
    status (``httpCode``, else one found in the detail) and the text (detail plus
    ``providerErrorType=``, or ``errorName``)."""
    if isinstance(record, FallbackDecision):
        return _decision_evidence(
            record.decision, record.reason, record.detail, record.provider_error_type,
            record.http_code,
        )
    text = record.error_name or ""
    return (CHAIN_STOPPED, record.reason, find_http_status(text), text)


def outcome_evidence(reason: str | None, status: int | None, text: str) -> Evidence:
    """The four inputs of an HTTP outcome; a status missing is looked for in the text."""
    text = text[:8192]
    return (OUTCOME, reason, status if status is not None else find_http_status(text), text)


def classify(record: FallbackDecision | ChainStopped) -> Classification:
    """Classify one fallback decision or chain stop from its decision, reason, HTTP
    status and detail text."""
    if isinstance(record, FallbackDecision) and (
        record.detail is None or len(record.detail) <= CACHED_TEXT_CHARS
    ):
        return _classify_decision(
            record.decision, record.reason, record.detail, record.provider_error_type,
            record.http_code,
        )
    return _decide(*evidence_of(record))


@lru_cache(maxsize=2048)
def _classify_decision(
    decision: Decision,
    reason: str,
    detail: str | None,
    provider_error_type: str | None,
    http_code: int | None,
) -> Classification:
    """``classify`` of a decision record, memoised on the fields it reads: a failing
    model repeats one line, and finding the status in its detail is a regex search."""
    return _decide(
        *_decision_evidence(decision, reason, detail, provider_error_type, http_code)
    )


def _decision_evidence(
    decision: Decision,
    reason: str,
    detail: str | None,
    provider_error_type: str | None,
    http_code: int | None,
) -> Evidence:
    text = detail or ""
    if provider_error_type:
        text = f"{text} providerErrorType={provider_error_type}"
    text = text[:8192]
    status = http_code if http_code is not None else find_http_status(text)
    return (decision.value, reason, status, text)


def classify_outcome(reason: str | None, status: int | None, text: str) -> Classification:
    """Classify an HTTP outcome (a probe): the status, and the body or error text.
    A 2xx is a success here; whether its body is a usable answer from the right model
    (MALFORMED, WRONG_MODEL) is the probe client's call, not a text signature's."""
    return _decide(*outcome_evidence(reason, status, text))
