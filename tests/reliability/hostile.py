"""A seeded generator of hostile gateway log lines ("one million fuzzed or
hostile lines ... no crash, no unbounded memory").

Every class below is a way a real journal can disagree with the log contract
(``reference/openclaw-log-contract.md``): near misses of the decision line, binary
junk, megabyte lines, terminal colour, markup and JSON inside ``detail=``, and
timestamps that lie. The same seed always yields the same lines, so a failure found
by the soak (``soak_hostile.py``) can be replayed by the fast tests.

Lines that name models of the demo chains (``watcher.demo.CHAINS``) are real evidence
for the daemon the soak runs: they move pins and produce Telegram cards, so hostile
``detail=`` text reaches the card renderer, not just the parser.

Sizes stay reasonable: ``HUGE`` lines are about 1 MiB each and come only as often as
``huge_every`` says (a few hundred per million); every other line is short.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from watcher.demo import CHAINS

MIB = 1 << 20

DECISION_PREFIX = "[model-fallback/decision] model fallback decision: "
DECISIONS = ("candidate_failed", "skip_candidate", "probe_cooldown_candidate",
             "candidate_succeeded")
REASONS = ("auth", "auth_permanent", "format", "rate_limit", "overloaded", "billing",
           "server_error", "timeout", "tls_certificate", "context_overflow",
           "model_not_found", "session_expired", "empty_response", "no_error_details",
           "unclassified", "unknown")
CHAIN_MODELS: tuple[str, ...] = tuple(sorted({m for chain in CHAINS.values() for m in chain}))
AGENTS: tuple[str, ...] = tuple(sorted(CHAINS))

HTML_BITS = (
    "<b>bold</b>", "</pre>", "<pre>", "<a href=\"javascript:alert(1)\">x</a>", "&amp;",
    "&lt;", "&#0;", "&#x110000;", "&bogus;", "& ", "<tg-spoiler>", "<script>alert(1)</script>",
    "<!-- c -->", "<![CDATA[x]]>", "<img src=x onerror=y>", "<code>", "</code>", ">", "<",
    "<html><body><h1>502 Bad Gateway</h1></body></html>", "&amp;amp;", "<i", "</b",
)
ANSI_BITS = (
    "\x1b[31m", "\x1b[0m", "\x1b[1;38;5;196m", "\x1b[39m", "\x1b[90m", "\x1b]0;title\x07",
    "\x1b[", "\x1b", "\x1b[999999999999m", "\x1b[?25l", "\x1bc", "\x9b31m",
)
EMOJI = ("😀", "⚠️", "🔥", "𝕏", "👩‍👩‍👧‍👦", "\u202e", "\u200b", "\ufeff", "\udcff")
GARBAGE_TS = (
    "0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z", "9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59.999999999Z",
    "2099-01-01T00:00:00Z", "2026-13-45T99:99:99Z", "2026-02-30T10:00:00+08:00",
    "2026-08-26T01:21:02+99:99", "2026-08-26T01:21:02.0330000000000000000+08:00",
    "99:99:99", "24:00:00", "-2026-01-01T00:00:00Z", "+275760-09-13T00:00:00Z",
    "2026-08-26 01:21:02,033+0800", "NaN", "1e308", "2026-08-26T01:21:02 2026-08-26T01:2",
)


@dataclass(frozen=True, slots=True)
class HostileLine:
    """One generated journal MESSAGE and the class that made it."""

    kind: str
    message: str | bytes

    @property
    def size(self) -> int:
        m = self.message
        return len(m) if isinstance(m, bytes) else len(m.encode("utf-8", "surrogateescape"))


def _ref(rng: random.Random) -> str:
    return rng.choice(CHAIN_MODELS)


def _valid(rng: random.Random, *, decision: str | None = None, reason: str | None = None,
           requested: str | None = None, candidate: str | None = None,
           nxt: str | None = None, detail: str | None = None, prefix: str = "") -> str:
    cand = candidate or _ref(rng)
    line = (f"{prefix}{DECISION_PREFIX}decision={decision or rng.choice(DECISIONS)} "
            f"requested={requested or cand} candidate={cand} "
            f"reason={reason or rng.choice(REASONS)} next={nxt or rng.choice(('none', _ref(rng)))}")
    if detail is not None:
        line += f" detail={detail}"
    return line


def _junk(rng: random.Random, n: int, alphabet: str) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def chatter(rng: random.Random) -> str:
    return rng.choice((
        "2026-11-22T02:45:01.112+00:00 [gateway] agent model: openai/gpt-5.5",
        "[ws] ⇄ res ✓ chat.send 41ms conn=1a2b3c4d id=9f8e7d6c",
        "[agents/model] using fallback model list from agents.defaults (3 entries)",
        "[ws] ⇄ res ✓ chat.send 231ms runId=run-77 fallbackUsed=true",
        f"[diagnostic] lane enqueue: lane=session:agent:{rng.choice(AGENTS)}:main queueSize=1",
        "<html><head><title>502 Bad Gateway</title></head><body>fallback page</body></html>",
    ))


def truncated(rng: random.Random) -> str:
    line = _valid(rng, detail="429 Too Many Requests")
    cut = rng.randrange(len(DECISION_PREFIX) - 8, len(line))
    return line[:cut]


def duplicated_keys(rng: random.Random) -> str:
    cand = _ref(rng)
    return (f"{DECISION_PREFIX}decision={rng.choice(DECISIONS)} decision={rng.choice(DECISIONS)} "
            f"requested={cand} requested=x/{_junk(rng, 6, 'abc')} candidate={cand} "
            f"candidate={_ref(rng)} reason={rng.choice(REASONS)} reason=rate_limit "
            f"next=none next={_ref(rng)} detail=a detail=b reason=auth")


def unknown_decision(rng: random.Random) -> str:
    word = rng.choice(("chain_exhausted", "CANDIDATE_FAILED", "candidate-failed", "", "none",
                       "candidate_failed\u200b", "<b>x</b>", "1", _junk(rng, 30, "xyz_")))
    return _valid(rng, decision=word or " ")


def spaced_ref(rng: random.Random) -> str:
    ref = rng.choice(("open ai/gpt-5.5", "openai/gpt 5.5", "ollama / glm-5.1:cloud",
                      "ollama/glm-5.1 :cloud", " ollama/glm-5.1:cloud", "a/b c/d"))
    return _valid(rng, requested=ref, candidate=ref, detail="429 rate limit")


def unterminated_quote(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return _valid(rng, decision="candidate_failed",
                      detail='{"error": "unterminated ' + _junk(rng, 20, "ab\\\"' "))
    agent = rng.choice(AGENTS)
    return (f'[diagnostic] lane task error: lane=session:agent:{agent}:main durationMs=1 '
            f'error="⚠️ API rate limit reached \\" and never closed errorName=Failover"Error')


def odd_ref(rng: random.Random) -> str:
    ref = rng.choice((
        "<script>/alert(1)", "a/b&c<d>", "ollama/😀:cloud", "/leading", "trailing/", "a//b",
        "ollama/glm-5.1:cloud\u200b", "ollama/glm-5.1:cloud/../../etc/passwd",
        "p/" + "m" * 5000, "%00/%ff", "ollama/glm:5.1:cloud:::", "\u202eollama/gemma",
        "a/" + "/".join(_junk(rng, 3, "xyz") for _ in range(200)),
    ))
    nxt = rng.choice(("none", ref, "none/none", "<b>/</b>"))
    return _valid(rng, requested=ref, candidate=ref, nxt=nxt, decision="candidate_failed",
                  reason="rate_limit", detail="429 <b>odd</b>")


def binary(rng: random.Random) -> bytes:
    junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    line = _valid(rng, decision="candidate_failed", detail="503 overloaded").encode()
    at = rng.randrange(len(line))
    out = line[:at] + junk + line[at:]
    if rng.random() < 0.3:
        out = b"\x00" * rng.randrange(1, 8) + out + b"\xff\xfe\xfd"
    if rng.random() < 0.2:  # an overlong UTF-8 encoding and a lone surrogate
        out += b" detail=\xc0\xaf\xed\xa0\x80"
    return out


def nul_text(rng: random.Random) -> str:
    line = _valid(rng, decision="candidate_failed", detail="500 \x00server\x00 error")
    at = rng.randrange(len(line))
    return line[:at] + "\x00" + line[at:]


def ansi(rng: random.Random) -> str:
    parts = _valid(rng, decision="candidate_failed", reason="rate_limit",
                   detail="429 slow down").split(" ")
    return " ".join(rng.choice(ANSI_BITS) + p + rng.choice(ANSI_BITS)
                    if rng.random() < 0.5 else p for p in parts)


def html_detail(rng: random.Random) -> str:
    bits = " ".join(rng.choice(HTML_BITS) for _ in range(rng.randrange(1, 12)))
    return _valid(rng, decision=rng.choice(("candidate_failed", "candidate_succeeded")),
                  reason=rng.choice(("rate_limit", "server_error", "unknown")),
                  detail=f"{rng.choice(('429', '503', '500', ''))} {bits}")


def json_detail(rng: random.Random) -> str:
    choice = rng.randrange(5)
    if choice == 0:
        obj = {"error": {"code": 429, "message": "<b>rate</b> & limit", "status": "x" * 200},
               "nested": [[[{"a": None}]]], "retry_after": "30"}
        return _valid(rng, decision="candidate_failed", reason="unknown",
                      detail="429 " + json.dumps(obj))
    if choice == 1:  # a JSONL-looking record with hostile fields
        fields: dict[str, object] = {
                  "event": "model_fallback_decision", "decision": rng.choice(DECISIONS),
                  "requestedProvider": rng.choice((None, "ollama", 7, [])),
                  "requestedModel": rng.choice(("glm-5.1:cloud", {"x": 1}, "", None)),
                  "candidateProvider": "ollama", "candidateModel": "glm-5.1:cloud",
                  "httpCode": rng.choice((429, "429", -1, 10**30, True, None)),
                  "suppressedDuplicateCount": rng.choice((3, -5, "9" * 40, 1.5)),
                  "errorPreview": "<b>x</b>" * rng.randrange(1, 50)}
        return json.dumps({"0": '{"subsystem":"model-fallback/decision"}', "1": fields,
                           "time": rng.choice(GARBAGE_TS)})
    if choice == 2:  # deeply nested: json.loads recursion
        depth = rng.randrange(2000, 20000)
        return '{"model_fallback_decision": ' + "[" * depth + "]" * depth + "}"
    if choice == 3:
        return '{"decision": "candidate_failed", "fallback": ' + '{"a":' * 50
    return _valid(rng, detail='{"error":"' + '\\"' * 100 + '"}')


def lying_ts(rng: random.Random) -> str:
    return _valid(rng, prefix=rng.choice(GARBAGE_TS) + " ",
                  decision=rng.choice(("candidate_failed", "candidate_succeeded")),
                  reason=rng.choice(("rate_limit", "timeout", "unknown")),
                  detail="429 Too Many Requests")


def unknown_bulk(rng: random.Random) -> str:
    if rng.random() < 0.3:
        agent = _junk(rng, rng.randrange(1, 30), "abcdefghijklmnopqrstuvwxyz0123456789-_<>&")
        return (f"[diagnostic] lane task error: lane=session:agent:{agent}:main durationMs=5 "
                f'error="429 rate limit" errorName=FailoverError')
    provider = _junk(rng, rng.randrange(1, 12), "abcdefghijklmnop-")
    model = _junk(rng, rng.randrange(1, 40), "abcdefghijklmnop-.:0123456789")
    ref = f"{provider}/{model}"
    return _valid(rng, requested=ref, candidate=ref, detail="429 " + _junk(rng, 20, "xyz "))


def suppressed(rng: random.Random) -> str:
    n = rng.choice(("4", "999999999", "99999999999", "-1", "0", "1e9", "٣"))
    return (_valid(rng, decision="skip_candidate", reason="auth", nxt="none")
            + f" ({n} duplicates suppressed in last 30s)")


def lane_hostile(rng: random.Random) -> str:
    agent = rng.choice(AGENTS)
    rest = rng.choice(("main", "x" * 3000, "<b>main</b>&amp;", "", ":::"))
    return (f"[diagnostic] lane task error: lane=session:agent:{agent}:{rest} durationMs=1 "
            f'error="{rng.choice(HTML_BITS)} 429" errorName=<i>Failover</i>')


def valid(rng: random.Random) -> str:
    """Well-formed decisions on chain models: the evidence that makes the daemon move
    pins and send cards, so the hostile details ride along with real transitions."""
    return _valid(rng, decision=rng.choice(("candidate_failed", "candidate_succeeded")),
                  reason=rng.choice(("rate_limit", "server_error", "timeout", "unknown")),
                  detail=rng.choice(("429 Too Many Requests", "503 <b>down</b> & out",
                                     "Retry-After: 99999999999 s", "😀" * 300,
                                     "429 " + "".join(rng.choice(EMOJI) for _ in range(50)))))


def huge(rng: random.Random) -> str | bytes:
    """A line of about 1 MiB: a huge ``detail=``, a huge token, or a huge binary blob."""
    shape = rng.randrange(4)
    if shape == 0:
        return _valid(rng, decision="candidate_failed", reason="rate_limit",
                      detail="429 " + ("<b>&amp;" + rng.choice(EMOJI[:4]) + " ") * (MIB // 16))
    if shape == 1:
        return _valid(rng, requested="p/" + "m" * MIB, candidate="ollama/glm-5.1:cloud")
    if shape == 2:
        blob = rng.randbytes(MIB)
        return b"[model-fallback/decision] model fallback decision: decision=" + blob
    return json.dumps({"0": "model-fallback/decision", "1": {"decision": "candidate_failed",
                       "errorPreview": "x" * MIB}})


SHORT_KINDS: dict[str, tuple[float, Callable[[random.Random], str | bytes]]] = {
    # kind: (weight, builder)
    "chatter": (10, chatter),
    "truncated": (8, truncated),
    "duplicated_keys": (5, duplicated_keys),
    "unknown_decision": (5, unknown_decision),
    "spaced_ref": (5, spaced_ref),
    "unterminated_quote": (5, unterminated_quote),
    "odd_ref": (4, odd_ref),
    "binary": (8, binary),
    "nul_text": (4, nul_text),
    "ansi": (8, ansi),
    "html_detail": (8, html_detail),
    "json_detail": (4, json_detail),
    "lying_ts": (6, lying_ts),
    "unknown_bulk": (8, unknown_bulk),
    "suppressed": (3, suppressed),
    "lane_hostile": (3, lane_hostile),
    "valid": (6, valid),
}
KINDS: tuple[str, ...] = (*SHORT_KINDS, "huge")

_BUILDERS: dict[str, Callable[[random.Random], str | bytes]] = {
    **{k: b for k, (_, b) in SHORT_KINDS.items()}, "huge": huge,
}


def make(kind: str, rng: random.Random) -> HostileLine:
    """One line of ``kind`` (any of ``KINDS``)."""
    return HostileLine(kind, _BUILDERS[kind](rng))


def hostile_lines(n: int, *, seed: int = 10, huge_every: int = 3333) -> Iterator[HostileLine]:
    """``n`` lines, deterministic for ``seed``: one ``huge`` line every ``huge_every``
    (0: none), the rest drawn from ``SHORT_KINDS`` by weight."""
    rng = random.Random(seed)
    names = list(SHORT_KINDS)
    weights = [SHORT_KINDS[k][0] for k in names]
    for i in range(n):
        if huge_every and i % huge_every == huge_every - 1:
            kind = "huge"
        else:
            kind = rng.choices(names, weights)[0]
        yield make(kind, rng)
