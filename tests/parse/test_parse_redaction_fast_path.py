"""``scrub`` skips the regexes a detail cannot match, and still returns exactly what
running every pattern in turn returns (the fast path is an optimisation, never a
different redaction)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.support import redaction
from watcher.support.redaction import REDACTED, redact, register_secret, scrub


def every_pattern(text: str, *, long_runs: bool = True) -> str:
    """``scrub`` before the fast path: all five substitutions, always."""
    for pattern, replacement in redaction._PATTERNS:
        text = pattern.sub(replacement, text)
    return redaction._LONG_RUN.sub(redaction._long_run, text) if long_runs else text


# Pieces that make (or nearly make) every pattern match, plus the non-ASCII letters
# that IGNORECASE folds onto ASCII ones (long s, Kelvin sign, dotless i).
FRAGMENTS = [
    "sk-", "sk-proj-abcDEF123456", "Sk-abcdefgh", "bearer ", "Bearer abc.def~ghi",
    "BEARER\t", "123456789:", "12345:AAbbCCddEEffGGhhIIjjKKll", "bot1234567:ABCDEFGHIJKLMNOPQRSTU_",
    "api_key", "API-KEY", "x-api-key", "apikey", "access_token", "Auth-Token", "token",
    "secret", "password", "PassWD", "=", ":", '"', " ", "\t", ",", ";", "&", "'",
    "abcd", "s3cr3tValue", "0123456789", "x" * 31, "a1" * 16, "-_",
    "pa\u017f\u017fword", "\u212aey", "ap\u0131_key", "\xe9", "\u2713", "\U0001f600",
    "[redacted]", "detail=", "No API key found for provider \"openai\". Auth store: /home",
]

# name, separator, value: the key=value pattern, its near misses and case foldings.
NAMES = ["api_key", "Api-Key", "x-api-key", "APIKEY", "access_token", "auth-token", "TOKEN",
         "secret", "Password", "passwd", "pa\u017f\u017fword", "\u212aey", "api_\u212aey",
         "to\u212aen", "\u017fecret", "bearer", "Bearer", "\u017fk-", "sk-", "ap\u0131_key"]
SEPS = ["=", ":", ": ", '":"', '" = "', " ", "", "\t=\t"]
VALUES = ["hunter22", "abc", "a,b", "s3cr3tValue0123", "\u2713\u2713\u2713\u2713", "xyzw;"]
key_values = st.tuples(
    st.sampled_from(NAMES), st.sampled_from(SEPS), st.sampled_from(VALUES)
).map("".join)

texts = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join),
    st.lists(st.one_of(key_values, st.sampled_from(FRAGMENTS)), max_size=6).map("".join),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=10).map(
        "".join
    ),
    st.text(alphabet="sSkK-:=bearBEAR012345 \"apiytoenAPIYTOEN_x", max_size=60),
)


@settings(max_examples=1500, deadline=None)
@given(texts, st.booleans())
def test_scrub_redacts_exactly_what_running_every_pattern_redacts(
    text: str, long_runs: bool
) -> None:
    assert scrub(text, long_runs=long_runs) == every_pattern(text, long_runs=long_runs)


def test_keys_in_gateway_details_are_still_redacted_on_the_fast_path() -> None:
    cases = {
        "Incorrect API key provided: sk-proj-abcdef123456.": "sk-proj",
        "Authorization: Bearer abcdef.123456": "abcdef.123456",
        "GET /bot123456789:AAbbCCddEEffGGhhIIjjKKll/getMe": "AAbbCC",
        'upstream said {"api_key": "hunter22"}': "hunter22",
        "pa\u017f\u017fword=hunter22 (long s)": "hunter22",
        "raw key 9f8e7d6c5b4a39281716f5e4d3c2b1a0 echoed": "9f8e7d6c",
    }
    for text, secret in cases.items():
        out = scrub(text)
        assert secret not in out and REDACTED in out, (text, out)
    plain = 'No API key found for provider "openai". Auth store: /home/gha/.openclaw'
    assert scrub(plain) == plain


def test_a_secret_registered_later_is_redacted_too() -> None:
    secret = "zz-registered-later-0d1e"
    assert redact(f"saw {secret} here") == f"saw {secret} here"
    register_secret(secret)
    try:
        assert redact(f"saw {secret} here") == f"saw {REDACTED} here"
    finally:
        with redaction._lock:
            redaction._secrets.discard(secret)
            redaction._by_length = tuple(
                sorted(redaction._secrets, key=len, reverse=True)
            )
