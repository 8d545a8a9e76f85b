"""The failure classes and what each one means for policy (contract 2 of DESIGN.md).

This module is the *table*: class -> (transient, provider-health evidence, starts a
throttle cooldown). The signatures that map a line to a class live in
``watcher.classify.taxonomy``. Bump ``TAXONOMY_VERSION`` whenever either changes meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

TAXONOMY_VERSION = "2026.12.2"


class FailureClass(StrEnum):
    THROTTLE = "throttle"  # rate limit, quota, too many requests, slot/concurrency full
    OVERLOADED = "overloaded"  # provider at capacity / 503 / 529
    SERVER_ERROR = "server_error"  # other 5xx, outage, upstream broke
    TIMEOUT = "timeout"
    CONNECTION = "connection"  # refused, reset, DNS: nothing answered
    AUTH = "auth"  # 401/403 that may clear (token refresh, transient auth wave)
    AUTH_PERMANENT = "auth_permanent"  # no key, revoked key
    BILLING = "billing"  # 402, out of credit
    MODEL_NOT_FOUND = "model_not_found"
    FORMAT = "format"  # 400/422, context overflow: the request, not the provider
    WRONG_MODEL = "wrong_model"  # a probe answered by another model on the same socket
    MALFORMED = "malformed"  # a probe got 200 with an unreadable or empty body
    GATEWAY_LOCAL = "gateway_local"  # the gateway refused locally (its own cooldown)
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ClassInfo:
    transient: bool  # expected to clear by itself
    health_evidence: bool  # says something about the provider/model's health
    starts_cooldown: bool  # starts (or extends) a throttle cooldown
    summary: str


TAXONOMY: dict[FailureClass, ClassInfo] = {
    FailureClass.THROTTLE: ClassInfo(True, True, True, "rate limited or slots full; back off"),
    FailureClass.OVERLOADED: ClassInfo(True, True, True, "provider at capacity; back off"),
    FailureClass.SERVER_ERROR: ClassInfo(True, True, False, "provider error or outage"),
    FailureClass.TIMEOUT: ClassInfo(True, True, False, "no answer in time"),
    FailureClass.CONNECTION: ClassInfo(True, True, False, "endpoint unreachable"),
    FailureClass.AUTH: ClassInfo(True, True, False, "authentication failed, may clear"),
    FailureClass.AUTH_PERMANENT: ClassInfo(False, True, False, "credentials missing or revoked"),
    FailureClass.BILLING: ClassInfo(False, True, False, "out of credit or plan limit"),
    FailureClass.MODEL_NOT_FOUND: ClassInfo(False, True, False, "model does not exist there"),
    FailureClass.FORMAT: ClassInfo(False, False, False, "request rejected; not provider health"),
    FailureClass.WRONG_MODEL: ClassInfo(True, True, False, "another model answered the probe"),
    FailureClass.MALFORMED: ClassInfo(True, True, False, "unreadable or empty answer"),
    FailureClass.GATEWAY_LOCAL: ClassInfo(True, False, False, "gateway refused locally"),
    FailureClass.UNKNOWN: ClassInfo(True, True, False, "failed for an unrecognised reason"),
}
