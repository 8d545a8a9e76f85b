"""Logging for journald: one line per record on stderr, secrets redacted.

Every secret the process resolves (bot token, API keys) is registered with
``register_secret``; a filter on the root handler replaces it with ``[redacted]``
in any record from any library, including httpx's request-URL lines, which carry
the Telegram token in the path.
"""

from __future__ import annotations

import logging
import sys
import threading

_secrets: set[str] = set()
_lock = threading.Lock()

REDACTED = "[redacted]"


def register_secret(value: str | None) -> None:
    """Remember a secret so no log line can carry it. Short values are ignored."""
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
        return True


def setup_logging(level: str = "INFO") -> None:
    """Plain lines to stderr; journald adds the timestamp and unit."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; the Telegram URL holds the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # json-five logs every parsed value at DEBUG, apiKey included.
    logging.getLogger("json5").setLevel(logging.WARNING)
