"""A huge journal message arrives cut to what the parser reads, by both scan loops.

Batches are bounded by entry count, so without the cut a burst of consecutive ~1 MiB
messages made one batch hold ``max_batch`` of them (the hostile-input soak saw a
940 MiB peak). The parser never reads past ``MAX_LINE_CHARS * 4`` bytes, so the loops
cut there, on a UTF-8 character boundary, keeping the decision marker and fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from watcher.fakes.journal import JournalEntry
from watcher.parse.lines import MAX_LINE_CHARS, parse_line
from watcher.parse.records import FallbackDecision
from watcher.source import JournalSource
from watcher.source._cursor import MAX_MESSAGE_BYTES, cut_message

from .conftest import NO_CATCH_UP
from .test_source_journal_native import entry_tuples, scan_all

DECISION = ("[model-fallback/decision] model fallback decision: decision=candidate_failed "
            "requested=a/b candidate=a/b reason=timeout next=c/d detail=")
TWO_MIB = 2 * 1024 * 1024


def huge(filler: str) -> str:
    """A decision line whose detail makes the message about 2 MiB of UTF-8."""
    return DECISION + filler * (TWO_MIB // len(filler.encode()))


@pytest.mark.parametrize("native", [True, False], ids=["c-loop", "python-loop"])
@pytest.mark.parametrize("filler", ["x", "\xe9", "\u2713", "\U0001f600"],
                         ids=["1-byte", "2-byte", "3-byte", "4-byte"])
def test_a_2_mib_message_arrives_cut_with_its_decision_marker_intact(
    journal_writer: Any, journal_dir: Path, native: bool, filler: str
) -> None:
    assert MAX_MESSAGE_BYTES == MAX_LINE_CHARS * 4
    after = DECISION + "the next entry is whole"
    journal_writer(journal_dir, [huge(filler), after])
    source = JournalSource(journal_dir, start_at="head", follow=False, native=native,
                           **NO_CATCH_UP)
    scans = scan_all(source)
    assert source.scanner == ("c" if native else "python")
    source.close()
    entries = [e for s in scans for e in s.entries]
    assert [e.message for e in entries][1:] == [after]
    message = entries[0].message
    assert isinstance(message, str), "the cut must fall on a character boundary"
    size = len(message.encode())
    assert MAX_MESSAGE_BYTES - 3 <= size <= MAX_MESSAGE_BYTES
    assert message.startswith(DECISION) and set(message[len(DECISION):]) == {filler}
    record = parse_line(message)
    assert isinstance(record, FallbackDecision)
    assert record.detail is not None and len(record.detail) >= MAX_LINE_CHARS // 2
    # Exactly what the parser made of the whole message: it never reads further.
    assert record == parse_line(huge(filler))


def test_the_c_and_python_loops_cut_huge_messages_identically(
    journal_writer: Any, journal_dir: Path
) -> None:
    messages = [huge(f) for f in ("ab", "\xe9", "\u2713", "\U0001f600")]
    messages.append(b"fallback k \xff" * (TWO_MIB // 12))  # not UTF-8: stays bytes
    journal_writer(journal_dir, [JournalEntry(m) for m in messages])
    kw = {"start_at": "head", "follow": False, **NO_CATCH_UP}
    c_entries = [e for s in scan_all(JournalSource(journal_dir, native=True, **kw))
                 for e in s.entries]
    py_entries = [e for s in scan_all(JournalSource(journal_dir, native=False, **kw))
                  for e in s.entries]
    assert entry_tuples(c_entries) == entry_tuples(py_entries)
    assert len(c_entries) == len(messages)
    raw = c_entries[-1].message
    assert isinstance(raw, bytes) and len(raw) == MAX_MESSAGE_BYTES


@pytest.mark.parametrize("raw", [
    b"", b"short", "\xe9".encode() * 10, ("a" + "\U0001f600" * 5).encode(), b"\x80" * 30,
])
@pytest.mark.parametrize("limit", [4, 5, 6, 7, 8])
def test_cut_message_keeps_whole_characters_within_the_limit(raw: bytes, limit: int) -> None:
    cut = cut_message(raw, limit)
    assert raw.startswith(cut) and len(cut) <= limit
    if len(raw) <= limit:
        assert cut == raw
    else:
        assert len(cut) >= limit - 3
        try:
            raw.decode()
        except UnicodeDecodeError:
            return
        cut.decode()  # a valid message stays valid
