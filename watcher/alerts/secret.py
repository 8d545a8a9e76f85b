"""The bot token, kept out of reprs and out of every log record.

Two leaks to close. python-telegram-bot puts the token in ``Bot.__repr__`` and logs the
full API URL (``.../bot<token>``) at DEBUG; httpx logs every request URL at INFO. A filter
on one handler (``watcher.support.logsetup``) does not cover handlers added later (pytest's
caplog, a second handler an operator configures) nor tracebacks. So, in addition to
registering the token with ``watcher.support.logsetup``, ``protect`` wraps the process-wide
LogRecord factory: every record is redacted the moment it is created, whatever handler
later sees it. The cost is one ``getMessage()`` per record actually emitted.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

from watcher.support import logsetup

_install_lock = threading.Lock()
_installed = False


class Secret:
    """A string that does not show itself in ``repr``/``str``/f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('[redacted]')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _redact_record(record: logging.LogRecord) -> None:
    message = record.getMessage()
    cleaned = logsetup.redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    # exc_info is a (type, value, tb) tuple by the time Logger._log builds a record, but
    # a direct makeRecord(..., exc_info=True) hands the factory the bare flag.
    if isinstance(record.exc_info, tuple) and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        cleaned_exc = logsetup.redact(text)
        if cleaned_exc != text:
            # Formatters use exc_text as is when set; drop exc_info so none re-formats it.
            record.exc_text, record.exc_info = cleaned_exc, None


def protect(secret: Secret) -> None:
    """Make sure ``secret`` can appear in no log record from any library, from now on."""
    global _installed
    logsetup.register_secret(secret.reveal())
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
