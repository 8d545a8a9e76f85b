"""The real parser behind the journal source: the prefilter never hides a record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from watcher.source import JournalSource, is_relevant

from .conftest import NO_CATCH_UP, take_all

VECTORS = Path(__file__).resolve().parents[1] / "vectors"

CHATTER = [
    "[gateway] listening on ws://127.0.0.1:18789",
    "[agent/embedded] run start: runId=abc sessionId=def provider=openai model=gpt-5.5",
    "[ws] ⇄ res ✓ chat.send 41ms conn=1a2b id=9",
    "[diagnostic] session state: sessionId=x state=idle",
    "model configured: primary=openai/gpt-5.5 fallbacks=2",
]


def sample_lines() -> list[str]:
    lines = []
    for path in sorted(VECTORS.glob("*.log")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


async def test_the_prefiltered_journal_path_parses_exactly_what_the_parser_would(
    journal_writer: Any, journal_dir: Path
) -> None:
    from watcher.parse.lines import parse_jsonl, parse_line  # the real parser

    lines = sample_lines() + CHATTER * 50
    assert len(lines) > 300
    journal_writer(journal_dir, lines)
    source = JournalSource(journal_dir, start_at="head", follow=False, **NO_CATCH_UP)
    via_source = []
    seen = 0
    for batch in await take_all(source):
        for entry in batch.entries:
            seen += 1
            via_source.append(source.parse(entry))
    assert seen < len(lines)  # the chatter never reached the parser
    unfiltered = JournalSource(journal_dir, start_at="head", follow=False, keep=None,
                               **NO_CATCH_UP)
    direct = []
    for batch in await take_all(unfiltered):
        for entry in batch.entries:
            result = parse_line(entry.message, ts=entry.realtime)
            if result is not None:
                direct.append(result)
            if not is_relevant(entry.message.encode() if isinstance(entry.message, str)
                               else entry.message):
                assert result is None, entry.message
                assert parse_jsonl(entry.message) is None, entry.message
    assert [r for r in via_source if r is not None] == direct
    assert len(direct) > 50
