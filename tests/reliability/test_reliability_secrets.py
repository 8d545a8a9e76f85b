"""Secrets: with a recognisable fake bot token and API key, the real daemon
and every everyday command leave neither in any log, card, audit record, state file,
outbox row, metric or command output. The harness is ``tests.reliability.soak_secrets``
(run it by hand for more rounds)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.reliability.soak_secrets import (
    API_KEY,
    TOKEN,
    TOKEN_SECRET,
    SecretsReport,
    audit_secrets,
)
from watcher.classify.evidence import to_event
from watcher.classify.table import FailureClass
from watcher.fakes.journal import journal_remote_binary
from watcher.parse.lines import parse_line
from watcher.support.logsetup import RedactingFilter, RedactingFormatter
from watcher.support.redaction import redact, register_secret, scrub


@pytest.mark.skipif(journal_remote_binary() is None, reason="systemd-journal-remote is missing")
def test_no_token_or_api_key_appears_anywhere_after_an_incident(tmp_path: Path) -> None:
    report = audit_secrets(tmp_path, rounds=1)
    print("\n" + report.table())
    # The secrets were really used: the paid fake got the key, Telegram got cards.
    assert report.key_sent_to_fake > 0
    assert report.cards >= 2
    assert len(report.counts) >= 20  # every place was searched
    assert report.total() == 0, report.leaks()


def test_the_report_counts_each_needle_in_each_place() -> None:
    report = SecretsReport()
    report.add("log", f"url /bot{TOKEN}/send and key {API_KEY}")
    report.add("card", f"half {TOKEN_SECRET}")
    assert report.leaks() == {
        "log": {"token": 1, "token-secret": 1, "api-key": 1},
        "card": {"token-secret": 1},
    }
    assert report.total() == 4


def test_a_key_echoed_in_a_gateway_detail_is_redacted_but_still_classified() -> None:
    line = (
        "[model-fallback/decision] model fallback decision: decision=candidate_failed "
        "requested=deepseek/deepseek-v4-flash candidate=deepseek/deepseek-v4-flash "
        f"reason=auth next=none detail=401 Incorrect API key provided: {API_KEY}"
    )
    event = to_event(parse_line(line, ts=1.0))
    assert event is not None
    assert event.failure_class is FailureClass.AUTH  # type: ignore[union-attr]
    detail = event.record.detail  # type: ignore[union-attr]
    assert detail == "401 Incorrect API key provided: [redacted]"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"Authorization: Bearer {API_KEY}", "Authorization: Bearer"),
        ("POST https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/x", "/x"),
        ('invalid x-api-key: "q9Z8w7v6"', "invalid x-api-key"),
        ("apiKey=abcdef12 rejected", "rejected"),
        ("key 3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d revoked", "revoked"),
    ],
)
def test_secret_shaped_text_is_scrubbed_and_the_words_around_it_kept(text: str, kept: str) -> None:
    cleaned = scrub(text)
    assert "[redacted]" in cleaned and kept in cleaned
    for secret in (API_KEY, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "q9Z8w7v6", "abcdef12"):
        assert secret not in cleaned


def test_ordinary_failure_text_is_left_alone() -> None:
    for text in (
        "429 rate_limit_exceeded",
        "503 upstream down after 30s (ollama/qwen3-coder:480b-cloud)",
        "invalid api key",
        "2026-05-20T14:00:00.000+00:00 token limit reached",
    ):
        assert scrub(text) == text


def test_a_traceback_holding_a_registered_secret_is_redacted_in_the_log_line() -> None:
    secret = "zz-registered-only-secret-42"
    register_secret(secret)
    assert secret not in redact(f"x {secret} y")
    logger = logging.getLogger("tests.reliability.secrets")
    formatter = RedactingFormatter("%(levelname)s %(name)s: %(message)s")
    try:
        raise RuntimeError(f"GET http://127.0.0.1/bot{TOKEN}/getMe failed with {secret}")
    except RuntimeError:
        import sys

        record = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "send failed", (), exc_info=sys.exc_info()
        )
    assert RedactingFilter().filter(record)
    line = formatter.format(record)
    assert "Traceback" in line and "RuntimeError" in line
    assert secret not in line and TOKEN_SECRET not in line
