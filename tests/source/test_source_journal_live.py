"""Tailing a live journal: order, filters, start positions, catch-up, the fast path."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

import pytest

from watcher.fakes.journal import JournalEntry, LiveJournal
from watcher.source import JournalSource, PositionStore

from .conftest import NO_CATCH_UP, messages, take, take_all


async def test_live_tail_delivers_every_appended_entry_in_order(
    live_journal: LiveJournal, journal_dir: Path
) -> None:
    live_journal.append("before the watcher started")
    live_journal.flush()
    source = JournalSource(journal_dir, keep=None, **NO_CATCH_UP)
    source.open()  # start_at=tail: history is not read
    reader = asyncio.create_task(take(source, 3000))
    for chunk in range(6):
        live_journal.extend(f"live {chunk * 500 + i:05d}" for i in range(500))
        live_journal.flush()
        await asyncio.sleep(0)
    got = await reader
    source.close()
    assert messages(got) == [f"live {i:05d}" for i in range(3000)]


async def test_batches_are_bounded_so_the_loop_stays_responsive(
    journal_writer: Any, journal_dir: Path
) -> None:
    journal_writer(journal_dir, [f"line {i}" for i in range(5000)])
    source = JournalSource(journal_dir, start_at="head", keep=None, follow=False,
                           max_batch=700, **NO_CATCH_UP)
    batches = await take_all(source)
    assert max(len(b.entries) for b in batches) <= 700
    assert sum(len(b.entries) for b in batches) == 5000
    assert batches[-1].position == batches[-1].entries[-1].position


async def test_entries_of_other_units_never_reach_the_parser(
    journal_writer: Any, journal_dir: Path
) -> None:
    journal_writer(journal_dir, [
        JournalEntry("gateway 1", unit="openclaw-gateway.service", identifier="openclaw"),
        JournalEntry("sshd noise", unit="ssh.service", identifier="sshd"),
        JournalEntry("node under user unit", unit="user@1000.service", identifier="node"),
        JournalEntry("cron noise", unit="cron.service", identifier="CRON"),
        JournalEntry("gateway 2", unit="openclaw-gateway.service", identifier="node"),
    ])
    seen: list[Any] = []
    source = JournalSource(
        journal_dir, units=["openclaw-gateway"], identifiers=["node"], start_at="head",
        keep=None, follow=False, parse=lambda line, ts=None: seen.append(line), **NO_CATCH_UP)
    for batch in await take_all(source):
        for entry in batch.entries:
            source.parse(entry)
    assert seen == ["gateway 1", "node under user unit", "gateway 2"]


async def test_prefilter_drops_chatter_but_the_cursor_still_moves_past_it(
    journal_writer: Any, journal_dir: Path
) -> None:
    decision = ("[model-fallback/decision] model fallback decision: decision=candidate_failed "
                "requested=a/b candidate=a/b reason=timeout next=c/d")
    journal_writer(journal_dir, ["chatter 1", decision, "chatter 2", "chatter 3"])
    store = PositionStore(journal_dir.parent / "pos.json", "journal")
    source = JournalSource(journal_dir, start_at="head", follow=False, store=store,
                           **NO_CATCH_UP)
    batches = await take_all(source)
    assert messages([e for b in batches for e in b.entries]) == [decision]
    saved = store.load()
    assert saved is not None
    decision_position = next(e.position for b in batches for e in b.entries)
    assert saved.position != decision_position
    # The saved cursor is the last entry read (chatter 3), not the decision: a restart
    # reads nothing again.
    again = JournalSource(journal_dir, follow=False, store=store, keep=None, **NO_CATCH_UP)
    assert await take_all(again) == []


async def test_start_at_head_tail_and_since(journal_writer: Any, journal_dir: Path) -> None:
    now = time.time()
    journal_writer(journal_dir, [
        JournalEntry("two hours ago", realtime=now - 7200),
        JournalEntry("ten minutes ago", realtime=now - 600),
        JournalEntry("a minute ago", realtime=now - 60),
    ])

    async def first_run(start_at: str) -> list[str | bytes]:
        source = JournalSource(journal_dir, start_at=start_at, keep=None, follow=False,
                               clock=lambda: now)
        return messages([e for b in await take_all(source) for e in b.entries])

    assert await first_run("head") == ["two hours ago", "ten minutes ago", "a minute ago"]
    assert await first_run("since:15m") == ["ten minutes ago", "a minute ago"]
    assert await first_run("since:2m") == ["a minute ago"]
    assert await first_run("tail") == []
    with pytest.raises(ValueError, match="since:15m"):
        JournalSource(journal_dir, start_at="yesterday")


async def test_history_is_catch_up_and_never_mixed_with_live_entries(
    journal_writer: Any, journal_dir: Path
) -> None:
    now = time.time()
    journal_writer(journal_dir, [
        JournalEntry(f"old {i}", realtime=now - 3600 + i) for i in range(5)
    ] + [JournalEntry(f"new {i}", realtime=now - 5 + i) for i in range(3)])
    source = JournalSource(journal_dir, start_at="head", keep=None, follow=False,
                           clock=lambda: now)
    batches = await take_all(source)
    flags = [(b.catch_up, messages(b.entries)) for b in batches if b.entries]
    assert flags == [(True, [f"old {i}" for i in range(5)]),
                     (False, [f"new {i}" for i in range(3)])]


async def test_fast_and_public_reader_paths_agree(journal_writer: Any, journal_dir: Path) -> None:
    journal_writer(journal_dir, [f"m {i}" for i in range(300)]
                   + [JournalEntry(b"\xff\xfe not utf-8"), JournalEntry("multi\nline")])

    async def read(fast: bool) -> list[tuple[Any, ...]]:
        source = JournalSource(journal_dir, start_at="head", keep=None, follow=False,
                               fast=fast, units=["openclaw-gateway.service"], **NO_CATCH_UP)
        source.open()
        return [(e.message, e.realtime, e.position, e.unit, e.identifier)
                for b in await take_all(source) for e in b.entries]

    fast, public = await read(True), await read(False)
    assert fast == public
    assert fast[-2][0] == b"\xff\xfe not utf-8"
    assert fast[-1][0] == "multi\nline"
    assert fast[0][3:] == ("openclaw-gateway.service", "openclaw")


async def test_close_ends_a_waiting_tail_promptly(live_journal: LiveJournal,
                                                   journal_dir: Path) -> None:
    live_journal.append("x")
    live_journal.flush()
    source = JournalSource(journal_dir, keep=None, idle_poll=math.inf)

    async def run() -> int:
        count = 0
        async for _ in source.batches():
            count += 1
        return count

    task = asyncio.create_task(run())
    await asyncio.sleep(0.05)
    source.close()
    assert await asyncio.wait_for(task, 2) == 0
