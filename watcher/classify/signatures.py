"""The signature table: the ordered data rows that ``watcher.classify.taxonomy``
matches a fallback decision, a chain stop or an HTTP outcome against.

Each row names one piece of evidence and the class it implies; tiers and their order
are explained in ``watcher.classify.taxonomy``. Every row must have a positive sample
in ``tests/vectors/`` (fail2ban ``failJSON``). Data, not logic: add a row here, a
sample there, and bump ``TAXONOMY_VERSION`` when a class's meaning changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from watcher.classify.table import FailureClass
from watcher.parse.records import Decision
from watcher.support.regex import holds_one, needed_lower

OUTCOME = "outcome"
"""Context of ``classify_outcome``: an HTTP answer (a probe), not a log line."""
CHAIN_STOPPED = "chain_stopped"
"""Context of a ``model fallback chain stopped`` line."""

TIERS: tuple[str, ...] = ("decision", "local", "specific", "text", "reason", "status", "fallback")


@dataclass(frozen=True, slots=True)
class Signature:
    """One piece of evidence and the class it implies. Every given condition must hold.

    ``contexts``: decision values, ``"outcome"`` or ``"chain_stopped"`` (None: any).
    ``reasons`` / ``not_reasons``: the gateway reason is / is not one of these.
    ``statuses``: the HTTP status is one of these. ``pattern``: searched in the text
    (detail, providerErrorType, errorName, or a response body), case-insensitive.
    ``no_status``: only when no HTTP status is known, so a real provider status on the
    same line outranks a gateway-local phrase riding along with it.
    """

    id: str
    failure_class: FailureClass | None
    tier: str
    summary: str
    contexts: frozenset[str] | None = None
    reasons: frozenset[str] | None = None
    not_reasons: frozenset[str] | None = None
    statuses: frozenset[int] | None = None
    pattern: re.Pattern[str] | None = None
    no_status: bool = False
    # ``pattern`` without IGNORECASE, for a text already lower-cased (see ``lowered``),
    # and strings one of which is in every text it matches (None: none known).
    lower_pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    needs: tuple[str, ...] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        pattern = self.pattern
        if pattern is not None and pattern.flags & re.IGNORECASE and pattern.pattern.islower():
            # No capital in the source: no \W, \S, \B or \D, no capital literal, so on an
            # ASCII text, searching it case-blind is searching its lower case exactly.
            # Case-blind, the regex engine loses its literal-prefix scan: 2x slower.
            flags = pattern.flags & ~re.IGNORECASE
            object.__setattr__(self, "lower_pattern", re.compile(pattern.pattern, flags))
            object.__setattr__(self, "needs", needed_lower(pattern))

    def matches(
        self, context: str, reason: str | None, status: int | None, text: str,
        lower: str | None = None,
    ) -> bool:
        """``lower``: ``lowered(text)``, when the caller tries many signatures on one text."""
        if self.contexts is not None and context not in self.contexts:
            return False
        if self.no_status and status is not None:
            return False
        if self.reasons is not None and reason not in self.reasons:
            return False
        if self.not_reasons is not None and reason in self.not_reasons:
            return False
        if self.statuses is not None and status not in self.statuses:
            return False
        return self.finds(text, lower)

    def finds(self, text: str, lower: str | None = None) -> bool:
        """The pattern, if any, is in ``text``; ``lower`` as in ``matches``."""
        if self.pattern is None:
            return True
        if lower is not None and self.lower_pattern is not None:
            needs = self.needs
            if needs is not None and not holds_one(needs, lower):
                return False  # a substring test is 10-50x cheaper than the search
            return self.lower_pattern.search(lower) is not None
        return self.pattern.search(text) is not None


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _set(*items: str) -> frozenset[str]:
    return frozenset(items)


_FAILED = _set(Decision.CANDIDATE_FAILED.value, CHAIN_STOPPED, OUTCOME)
_NOT_SKIP = _set(Decision.CANDIDATE_FAILED.value, CHAIN_STOPPED, OUTCOME)
_ANY_FAILURE = _set(
    Decision.CANDIDATE_FAILED.value, Decision.SKIP_CANDIDATE.value, CHAIN_STOPPED, OUTCOME
)
# A skip carrying one of these reasons still says something lasting about the candidate.
_SKIP_TELLS = _set("auth", "auth_permanent", "billing", "model_not_found")

C = FailureClass

SIGNATURES: tuple[Signature, ...] = (
    # 0. decision: not failures.
    Signature(
        "decision.candidate_succeeded",
        None,
        "decision",
        "a candidate answered after earlier failures",
        contexts=_set(Decision.CANDIDATE_SUCCEEDED.value),
    ),
    Signature(
        "decision.probe_cooldown_candidate",
        None,
        "decision",
        "the gateway tries a cooled-down primary: an attempt, not a result",
        contexts=_set(Decision.PROBE_COOLDOWN_CANDIDATE.value),
    ),
    Signature(
        "http.ok",
        None,
        "decision",
        "a 2xx answer",
        contexts=_set(OUTCOME),
        statuses=frozenset(range(200, 300)),
    ),
    # 1. local: the gateway refused by itself.
    Signature(
        "local.inline_key_disabled",
        C.GATEWAY_LOCAL,
        "local",
        "gateway parked one agent's inline API key after a 401/402: that agent's "
        "credential, not the model's health",
        pattern=_re(
            r"inline api key for provider\b.{0,200}?\btemporarily disabled"
            r"|temporarily disabled after a provider auth/billing failure"
        ),
    ),
    Signature(
        "local.auth_profile_unavailable",
        C.GATEWAY_LOCAL,
        "local",
        'gateway parked an auth profile: "Auth profile x is temporarily unavailable"',
        pattern=_re(r"auth profile\b.{0,300}?\btemporarily unavailable"),
        no_status=True,
    ),
    Signature(
        "local.provider_cooldown",
        C.GATEWAY_LOCAL,
        "local",
        'gateway\'s own provider cooldown: "Provider x is in cooldown"',
        pattern=_re(r"\bis in cooldown\b|\bcooling down\b|\bcooldown active\b"),
        no_status=True,
    ),
    Signature(
        "local.gateway_internal",
        C.GATEWAY_LOCAL,
        "local",
        "the gateway's own state or worker failed (SQLite state lease, admission closed "
        "at start-up or shutdown): the provider was never the problem",
        pattern=_re(
            r"\banother openclaw process owns\b|\badmission is closed\b"
            r"|^(?:agent|sqlite|shared-state|openclaw state)\b[\w ./-]{0,60} and cleanup failed\b"
            r"|\bSqliteWorkerError\b|\bStateDatabaseCoordinator"
        ),
        no_status=True,
    ),
    Signature(
        "local.skip_not_tried",
        C.GATEWAY_LOCAL,
        "local",
        "skip_candidate: the provider was not called (cooldown or skip cache)",
        contexts=_set(Decision.SKIP_CANDIDATE.value),
        not_reasons=_SKIP_TELLS,
    ),
    # 2. specific text: refines a generic status or reason.
    Signature(
        "billing.text",
        C.BILLING,
        "specific",
        "out of credit: insufficient quota/credit/balance, payment required, billing",
        contexts=_ANY_FAILURE,
        pattern=_re(
            r"insufficient[_ ](?:quota|credits?|balance|funds)|credit balance"
            r"|out of credits?|payment[_ ]required|\bbilling"
            r"|exceeded your current quota|purchase (?:more )?credits"
        ),
    ),
    Signature(
        "auth_permanent.no_key",
        C.AUTH_PERMANENT,
        "specific",
        "credentials missing or revoked: no API key, key revoked, account disabled",
        contexts=_ANY_FAILURE,
        pattern=_re(
            r"\bno api[_ ]key\b|api[_ ]key (?:is )?(?:missing|not (?:found|set"
            r"|configured)|revoked|disabled)|missing api[_ ]key|key (?:has been )?"
            r"revoked|account (?:has been )?(?:deactivated|disabled|suspended)"
        ),
    ),
    Signature(
        "format.context_overflow",
        C.FORMAT,
        "specific",
        "the request is too big for the model: context length / window exceeded",
        contexts=_ANY_FAILURE,
        pattern=_re(
            r"context[_ ](?:length|window|overflow)|maximum context"
            r"|prompt is too long|input is too long"
        ),
    ),
    # 3. text: the gateway's own message patterns and their kin.
    Signature(
        "throttle.rate_limit",
        C.THROTTLE,
        "text",
        "rate limit / rate_limit / ratelimit",
        contexts=_ANY_FAILURE,
        pattern=_re(r"rate[_ -]?limit"),
    ),
    Signature(
        "throttle.too_many_requests",
        C.THROTTLE,
        "text",
        "too many requests",
        contexts=_ANY_FAILURE,
        pattern=_re(r"too many requests"),
    ),
    Signature(
        "throttle.throttled",
        C.THROTTLE,
        "text",
        "throttle / throttled / throttling",
        contexts=_ANY_FAILURE,
        pattern=_re(r"throttl"),
    ),
    Signature(
        "throttle.resource_exhausted",
        C.THROTTLE,
        "text",
        "resource exhausted (gRPC 8)",
        contexts=_ANY_FAILURE,
        pattern=_re(r"resource[_ ]exhausted"),
    ),
    Signature(
        "throttle.quota_exceeded",
        C.THROTTLE,
        "text",
        "quota exceeded",
        contexts=_ANY_FAILURE,
        pattern=_re(r"quota[_ ]exceeded"),
    ),
    Signature(
        "throttle.per_minute",
        C.THROTTLE,
        "text",
        "tokens/requests per minute (TPM/RPM) limits",
        contexts=_ANY_FAILURE,
        pattern=_re(r"(?:tokens|requests) per (?:minute|min\b)|\b[tr]pm limit"),
    ),
    Signature(
        "throttle.usage_limit",
        C.THROTTLE,
        "text",
        "usage limit reached",
        contexts=_ANY_FAILURE,
        pattern=_re(r"usage[_ ]limit"),
    ),
    Signature(
        "throttle.concurrency",
        C.THROTTLE,
        "text",
        "concurrency limit reached / too many concurrent requests",
        contexts=_ANY_FAILURE,
        pattern=_re(
            r"concurrency[_ ]limit|too many concurrent|concurrent requests? "
            r"(?:limit|exceeded)"
        ),
    ),
    Signature(
        "throttle.slots_full",
        C.THROTTLE,
        "text",
        "all slots busy / no free slot / queue full: transient, back off",
        contexts=_ANY_FAILURE,
        pattern=_re(
            r"\bno (?:free |available |idle )?slots?\b|\bslots? (?:are |is )?"
            r"(?:all )?(?:full|busy|unavailable|exhausted)\b|\ball slots\b"
            r"|maximum pending requests|server busy|queue (?:is )?full"
        ),
    ),
    Signature(
        "overloaded.overloaded",
        C.OVERLOADED,
        "text",
        "overloaded / overloaded_error",
        contexts=_ANY_FAILURE,
        pattern=_re(r"overloaded"),
    ),
    Signature(
        "overloaded.capacity",
        C.OVERLOADED,
        "text",
        "model at capacity / over capacity / insufficient capacity",
        contexts=_ANY_FAILURE,
        pattern=_re(
            r"\b(?:at|over|insufficient|no) capacity\b|capacity (?:exceeded"
            r"|reached)"
        ),
    ),
    Signature(
        "overloaded.service_unavailable",
        C.OVERLOADED,
        "text",
        "service (temporarily) unavailable",
        contexts=_ANY_FAILURE,
        pattern=_re(r"service[_ ](?:temporarily[_ ])?unavailable"),
    ),
    Signature(
        "overloaded.high_demand",
        C.OVERLOADED,
        "text",
        "high demand",
        contexts=_ANY_FAILURE,
        pattern=_re(r"high demand"),
    ),
    Signature(
        "connection.refused",
        C.CONNECTION,
        "text",
        "nothing answered: refused, reset, DNS, unreachable",
        contexts=_ANY_FAILURE,
        pattern=_re(
            r"econnrefused|connection refused|econnreset|connection reset"
            r"|socket hang up|enotfound|getaddrinfo|name resolution|ehostunreach"
            r"|enetunreach|network is unreachable|no route to host|fetch failed"
            r"|connecterror|connect error"
        ),
    ),
    Signature(
        "connection.tls",
        C.CONNECTION,
        "text",
        "TLS/certificate failure",
        contexts=_ANY_FAILURE,
        pattern=_re(r"certificate|ssl[_ ]error|tls handshake|self[- ]signed"),
    ),
    Signature(
        "timeout.timed_out",
        C.TIMEOUT,
        "text",
        "timed out / timeout / deadline exceeded",
        contexts=_ANY_FAILURE,
        pattern=_re(r"timed[_ ]?out|timeout|deadline[_ ]exceeded"),
    ),
    Signature(
        "auth.unauthorized",
        C.AUTH,
        "text",
        "unauthorized / authentication failed / invalid or expired token",
        contexts=_ANY_FAILURE,
        pattern=_re(
            r"unauthori[sz]ed|authentication[_ ](?:failed|error)|invalid[_ ]api"
            r"[_ ]key|incorrect api key|invalid (?:token|credentials)|token "
            r"(?:has )?expired|permission[_ ](?:denied|error)|\bforbidden\b"
        ),
    ),
    Signature(
        "model_not_found.text",
        C.MODEL_NOT_FOUND,
        "text",
        "model not found / does not exist / unknown model",
        contexts=_ANY_FAILURE,
        pattern=_re(
            r"model\b.{0,80}?\b(?:not found|does not exist)|no such model"
            r"|unknown model|model[_ ]not[_ ]found|not_found_error"
        ),
    ),
    Signature(
        "server_error.text",
        C.SERVER_ERROR,
        "text",
        "internal server error / bad gateway / upstream error",
        contexts=_ANY_FAILURE,
        pattern=_re(
            r"internal[_ ]server[_ ]error|bad gateway|upstream (?:connect )?error"
            r"|\bapi_error\b"
        ),
    ),
    # 4. reason: the gateway's own verdict, when it says something.
    Signature(
        "reason.rate_limit",
        C.THROTTLE,
        "reason",
        "reason=rate_limit",
        contexts=_NOT_SKIP,
        reasons=_set("rate_limit"),
    ),
    Signature(
        "reason.overloaded",
        C.OVERLOADED,
        "reason",
        "reason=overloaded",
        contexts=_NOT_SKIP,
        reasons=_set("overloaded"),
    ),
    Signature(
        "reason.server_error",
        C.SERVER_ERROR,
        "reason",
        "reason=server_error",
        contexts=_NOT_SKIP,
        reasons=_set("server_error"),
    ),
    Signature(
        "reason.timeout",
        C.TIMEOUT,
        "reason",
        "reason=timeout",
        contexts=_NOT_SKIP,
        reasons=_set("timeout"),
    ),
    Signature(
        "reason.tls_certificate",
        C.CONNECTION,
        "reason",
        "reason=tls_certificate",
        contexts=_NOT_SKIP,
        reasons=_set("tls_certificate"),
    ),
    Signature(
        "reason.auth",
        C.AUTH,
        "reason",
        "reason=auth (may clear: token refresh, a wave)",
        contexts=_ANY_FAILURE,
        reasons=_set("auth"),
    ),
    Signature(
        "reason.session_expired",
        C.AUTH,
        "reason",
        "reason=session_expired",
        contexts=_NOT_SKIP,
        reasons=_set("session_expired"),
    ),
    Signature(
        "reason.auth_permanent",
        C.AUTH_PERMANENT,
        "reason",
        "reason=auth_permanent",
        contexts=_ANY_FAILURE,
        reasons=_set("auth_permanent"),
    ),
    Signature(
        "reason.billing",
        C.BILLING,
        "reason",
        "reason=billing",
        contexts=_ANY_FAILURE,
        reasons=_set("billing"),
    ),
    Signature(
        "reason.model_not_found",
        C.MODEL_NOT_FOUND,
        "reason",
        "reason=model_not_found",
        contexts=_ANY_FAILURE,
        reasons=_set("model_not_found"),
    ),
    Signature(
        "reason.format",
        C.FORMAT,
        "reason",
        "reason=format or context_overflow",
        contexts=_NOT_SKIP,
        reasons=_set("format", "context_overflow"),
    ),
    Signature(
        "reason.empty_response",
        C.MALFORMED,
        "reason",
        "reason=empty_response",
        contexts=_NOT_SKIP,
        reasons=_set("empty_response"),
    ),
    # 5. status: an HTTP status when text and reason said nothing useful.
    Signature(
        "status.429", C.THROTTLE, "status", "HTTP 429", statuses=frozenset({429}), contexts=_FAILED
    ),
    Signature(
        "status.402", C.BILLING, "status", "HTTP 402", statuses=frozenset({402}), contexts=_FAILED
    ),
    Signature(
        "status.401_403",
        C.AUTH,
        "status",
        "HTTP 401/403",
        statuses=frozenset({401, 403}),
        contexts=_FAILED,
    ),
    Signature(
        "status.timeout",
        C.TIMEOUT,
        "status",
        "HTTP 408/410/499/504/522/524",
        statuses=frozenset({408, 410, 499, 504, 522, 524}),
        contexts=_FAILED,
    ),
    Signature(
        "status.404",
        C.MODEL_NOT_FOUND,
        "status",
        "HTTP 404",
        statuses=frozenset({404}),
        contexts=_FAILED,
    ),
    Signature(
        "status.503_529",
        C.OVERLOADED,
        "status",
        "HTTP 503/529",
        statuses=frozenset({503, 529}),
        contexts=_FAILED,
    ),
    Signature(
        "status.5xx",
        C.SERVER_ERROR,
        "status",
        "other HTTP 5xx",
        statuses=frozenset(range(500, 600)) - {503, 504, 522, 524, 529},
        contexts=_FAILED,
    ),
    Signature(
        "status.400_422",
        C.FORMAT,
        "status",
        "HTTP 400/413/422",
        statuses=frozenset({400, 413, 422}),
        contexts=_FAILED,
    ),
    # 6. nothing recognised.
    Signature(
        "fallback.unknown",
        C.UNKNOWN,
        "fallback",
        "no signature matched (reason unknown/unclassified/no_error_details or new)",
    ),
)
