"""Keep secrets out of everything the watcher writes or sends.

Two nets, both applied by ``redact``:

- **Known secrets**: every secret the process resolves (the bot token, provider API
  keys) is registered with ``register_secret`` and replaced wherever it appears.
- **Secret-shaped text**: the gateway's failure details are third-party text. Providers
  echo keys in their errors (``Incorrect API key provided: sk-...``), and the gateway
  holds keys of providers the watcher never probes, so it cannot know them all.
  ``scrub`` replaces what looks like a key: ``sk-...`` keys, ``Bearer`` credentials,
  Telegram bot tokens, the value after ``api_key=``/``x-api-key:``/``token=`` and the
  like, and (in journal details only) long letter-and-digit runs. It keeps the words
  around them ("invalid api key"), so classification and the operator's reading are
  unchanged.

``watcher.classify.evidence`` redacts journal details before they enter the core (so state,
audit, pin file, cards and the outbox never hold them); ``watcher.support.logsetup`` redacts
every formatted log line, tracebacks included.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

REDACTED = "[redacted]"

_secrets: set[str] = set()
_by_length: tuple[str, ...] = ()  # _secrets, longest first: redact runs per journal detail
_lock = threading.Lock()
# Journal details repeat (the same provider error, line after line): their redaction is
# memoised, keyed on the text and the registered secrets it was made for (so no result
# made before a registration is served after). Least recently used out, and only texts
# up to _MEMO_TEXT_CHARS are kept, so unique hostile details cost no memory.
_MEMO_SIZE = 2048
_MEMO_TEXT_CHARS = 512

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # OpenAI/DeepSeek/Anthropic/OpenRouter style keys: sk-..., sk-proj-..., sk-or-v1-...
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"), REDACTED),
    # Authorization: Bearer <credential>
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]{6,}"), r"\1 " + REDACTED),
    # Telegram bot tokens, alone or inside a /bot<token>/ URL
    (re.compile(r"\d{5,12}:[A-Za-z0-9_\-]{20,}"), REDACTED),
    # key=value / key: value for names that hold credentials
    (
        re.compile(
            r"(?i)\b((?:x-)?api[_\-]?key|access[_\-]?token|auth[_\-]?token|token|secret|"
            r"password|passwd)(\"?\s*[:=]\s*\"?)[^\s\"',;&]{4,}"
        ),
        r"\1\2" + REDACTED,
    ),
)
# Long runs mixing letters and digits: raw keys without a known prefix. Only for
# third-party text (journal details): in our own log lines such runs are journal
# cursors and hashes the operator needs.
_LONG_RUN = re.compile(r"[A-Za-z0-9_\-]{32,}")  # linear: no lookaheads on hostile input
_LONG_RUN_MIN = 32


# Substrings each pattern of _PATTERNS cannot match without (tested on ASCII text, the
# second argument lowercased): ``scrub`` runs on every journal detail, and most hold
# none of them, so the (costly) regexes run only where they could change something.
# Non-ASCII text always runs every pattern: under IGNORECASE ``re`` folds a few
# non-ASCII letters onto ASCII ones (the long s, the Kelvin sign), which ``lower``
# does not.
def _may_hold_sk(text: str, lower: str) -> bool:
    return "sk-" in text


def _may_hold_bearer(text: str, lower: str) -> bool:
    return "bearer" in lower


def _may_hold_bot_token(text: str, lower: str) -> bool:
    i = text.find(":", 5)  # at least five digits, then the colon
    while i >= 0:
        if text[i - 1].isdigit():
            return True
        i = text.find(":", i + 1)
    return False


# The tail of the key=value pattern (a credential name, then ":" or "="), lowercase.
_KEY_NAME_THEN_SIGN = re.compile(r'(?:key|token|secret|passw(?:or)?d)"?\s*[:=]')


def _may_hold_key_value(text: str, lower: str) -> bool:
    return (
        ("=" in text or ":" in text)
        and ("key" in lower or "token" in lower or "secret" in lower or "passw" in lower)
        and _KEY_NAME_THEN_SIGN.search(lower) is not None
    )


_MAY_MATCH = (_may_hold_sk, _may_hold_bearer, _may_hold_bot_token, _may_hold_key_value)


def _long_run(match: re.Match[str]) -> str:
    run = match.group(0)
    mixed = any(c.isdigit() for c in run) and any(c.isalpha() for c in run)
    return REDACTED if mixed else run


def register_secret(value: str | None) -> None:
    """Remember a secret so nothing redacted can carry it. Short values are ignored
    (replacing a 3-character string everywhere would shred ordinary text)."""
    global _by_length
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)
            if ":" in value:  # a bot token's secret half is a secret on its own
                tail = value.partition(":")[2]
                if len(tail) >= 6:
                    _secrets.add(tail)
            _by_length = tuple(sorted(_secrets, key=len, reverse=True))


def scrub(text: str, *, long_runs: bool = True) -> str:
    """``text`` with secret-shaped substrings replaced (pure: no registry).

    Same result as running every pattern in turn (``tests/parse``'s property test holds
    it to that); a pattern is skipped only when the text lacks a substring it needs."""
    if text.isascii():
        lower = text.lower()
        for (pattern, replacement), may_match in zip(_PATTERNS, _MAY_MATCH, strict=True):
            if may_match(text, lower):
                replaced = pattern.sub(replacement, text)
                if replaced != text:
                    text, lower = replaced, replaced.lower()
    else:
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
    if long_runs and len(text) >= _LONG_RUN_MIN:
        return _LONG_RUN.sub(_long_run, text)
    return text


def redact(text: str, *, long_runs: bool = True) -> str:
    """``text`` with every registered secret and every secret-shaped substring replaced
    (``long_runs=False`` for our own log lines, see ``_LONG_RUN``)."""
    secrets = _by_length  # replaced whole on registration: no lock needed to read it
    if long_runs and len(text) <= _MEMO_TEXT_CHARS:
        return _redacted(text, secrets)
    return _redact(text, secrets, long_runs)


@lru_cache(maxsize=_MEMO_SIZE)
def _redacted(text: str, secrets: tuple[str, ...]) -> str:
    return _redact(text, secrets, long_runs=True)


def _redact(text: str, secrets: tuple[str, ...], long_runs: bool) -> str:
    if secrets:
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
    return scrub(text, long_runs=long_runs)
