"""Logging for journald: one line per record on stderr, secrets redacted.

Every secret the process resolves (bot token, API keys) is registered with
``register_secret`` (kept in ``watcher.support.redaction``); the filter on the root handler
replaces it, and anything shaped like a key, with ``[redacted]`` in any record from
any library, including httpx's request-URL lines, which carry the Telegram token in
the path. The formatter redacts the finished line again: a traceback is only
formatted after the filters ran, and an exception's message can hold a URL with the
token in it.
"""

from __future__ import annotations

import logging
import sys

from watcher.support.redaction import REDACTED, register_secret
from watcher.support.redaction import redact as _redact

__all__ = ["REDACTED", "RedactingFilter", "RedactingFormatter", "redact", "register_secret"]


def redact(text: str) -> str:
    """A log line with registered secrets and key-shaped text replaced."""
    return _redact(text, long_runs=False)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted line, traceback and stack included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str = "INFO") -> None:
    """Plain lines to stderr; journald adds the timestamp and unit."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
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


def quiet_stdout() -> None:
    """After a ``BrokenPipeError`` (``... --json | head``): point stdout at /dev/null so
    the interpreter's final flush cannot raise again and print a traceback."""
    import os
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
