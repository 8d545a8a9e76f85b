"""Rotation, restarts and vacuum on real journal files: nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path
from typing import Any

from watcher.fakes.journal import JournalEntry, LiveJournal
from watcher.source import JournalSource, PositionStore, SourceEntry

from .conftest import NO_CATCH_UP, messages, take, take_all


async def test_journal_files_added_and_removed_during_a_tail_lose_and_repeat_nothing(
    live_journal: LiveJournal, journal_dir: Path, journal_writer: Any
) -> None:
    source = JournalSource(journal_dir, start_at="head", keep=None, idle_poll=0.05,
                           **NO_CATCH_UP)
    got: list[SourceEntry] = []

    async def until(count: int) -> None:
        got.extend(await take(source, count - len(got)))
        assert len(got) == count

    live_journal.extend(f"e {i:04d}" for i in range(100))
    live_journal.flush()
    await until(100)
    # A second file appears (as after a rotation), holding the next entries.
    journal_writer(journal_dir, [f"e {i:04d}" for i in range(100, 200)],
                   name="rotated-in.journal", start=time.time())
    await until(200)
    live_journal.extend(f"e {i:04d}" for i in range(200, 300))
    live_journal.flush()
    await until(300)
    # A file disappears (vacuum of an already-read file) while we keep tailing.
    (journal_dir / "rotated-in.journal").unlink()
    live_journal.extend(f"e {i:04d}" for i in range(300, 400))
    live_journal.flush()
    await until(400)
    # journald-style rotation: the active file is renamed away, a new one takes its name.
    live_journal.close()
    archived = "live@00000000000000000000000000000001-0000000000000001-0000000000000001.journal"
    os.rename(live_journal.path, journal_dir / archived)
    with LiveJournal(journal_dir, name=live_journal.name) as successor:
        successor.extend(f"e {i:04d}" for i in range(400, 500))
        successor.flush()
        await until(500)
    source.close()
    assert messages(got) == [f"e {i:04d}" for i in range(500)]
    assert source.stats.invalidations >= 1  # events may coalesce


async def test_restarts_at_random_points_deliver_every_entry_exactly_once(
    journal_writer: Any, journal_dir: Path, tmp_path: Path
) -> None:
    total = 100_000
    journal_writer(journal_dir, (f"entry {i:06d}" for i in range(total)))
    store = PositionStore(tmp_path / "state" / "position-journal.json", "journal")
    rng = random.Random(1405)
    applied: list[str | bytes] = []
    restarts = 0
    while len(applied) < total:
        restarts += 1
        assert restarts < 50
        source = JournalSource(journal_dir, start_at="head", keep=None, follow=False,
                               store=store, max_batch=rng.choice([100, 500, 1000]),
                               **NO_CATCH_UP)
        crash_after = rng.randint(1, 60)
        seen = 0
        async for batch in source.batches():
            seen += 1
            if seen == crash_after:
                break  # crash after reading, before applying: must come again
            applied.extend(messages(batch.entries))
            await source.commit(batch)
        source.close()
    assert restarts > 3
    assert applied == [f"entry {i:06d}" for i in range(total)]


async def test_a_vacuumed_cursor_resumes_from_its_time_without_repeats(
    journal_writer: Any, journal_dir: Path, tmp_path: Path
) -> None:
    start = time.time() - 100
    journal_writer(journal_dir, [JournalEntry(f"old {i}", realtime=start + i)
                                 for i in range(10)], name="a.journal")
    journal_writer(journal_dir, [JournalEntry(f"new {i}", realtime=start + 50 + i)
                                 for i in range(10)], name="b.journal")
    store = PositionStore(tmp_path / "pos.json", "journal")
    first = JournalSource(journal_dir, start_at="head", keep=None, store=store,
                          max_batch=7, **NO_CATCH_UP)
    got = await take(first, 7)
    first.close()
    assert messages(got) == [f"old {i}" for i in range(7)]
    (journal_dir / "a.journal").unlink()  # vacuum removes the oldest file

    second = JournalSource(journal_dir, keep=None, store=store, follow=False, **NO_CATCH_UP)
    rest = [e for b in await take_all(second) for e in b.entries]
    assert second.resumed_by == "realtime"
    assert messages(rest) == [f"new {i}" for i in range(10)]


async def test_a_resume_skips_exactly_the_committed_entry(
    journal_writer: Any, journal_dir: Path, tmp_path: Path
) -> None:
    journal_writer(journal_dir, [f"m {i}" for i in range(10)])
    store = PositionStore(tmp_path / "pos.json", "journal")
    first = JournalSource(journal_dir, start_at="head", keep=None, store=store, max_batch=4,
                          **NO_CATCH_UP)
    assert messages(await take(first, 4)) == [f"m {i}" for i in range(4)]
    first.close()
    second = JournalSource(journal_dir, keep=None, store=store, follow=False, **NO_CATCH_UP)
    assert messages([e for b in await take_all(second) for e in b.entries]) == [
        f"m {i}" for i in range(4, 10)]
    assert second.resumed_by == "cursor"


async def test_a_corrupt_position_file_falls_back_to_start_at(
    journal_writer: Any, journal_dir: Path, tmp_path: Path
) -> None:
    journal_writer(journal_dir, ["a", "b"])
    (tmp_path / "pos.json").write_text("{not json")
    store = PositionStore(tmp_path / "pos.json", "journal")
    source = JournalSource(journal_dir, start_at="head", keep=None, store=store,
                           follow=False, **NO_CATCH_UP)
    assert messages([e for b in await take_all(source) for e in b.entries]) == ["a", "b"]
    assert source.resumed_by == "start_at"
    saved = store.load()
    assert saved is not None and saved.realtime is not None


async def test_the_tail_survives_a_slow_consumer(live_journal: LiveJournal,
                                                  journal_dir: Path) -> None:
    source = JournalSource(journal_dir, start_at="head", keep=None, **NO_CATCH_UP)
    live_journal.extend(f"x {i}" for i in range(2500))
    live_journal.flush()
    got: list[SourceEntry] = []
    async for batch in source.batches():
        got.extend(batch.entries)
        await asyncio.sleep(0.01)  # applying takes time; new entries keep coming
        if len(got) == 1000:
            live_journal.extend(f"x {i}" for i in range(2500, 3000))
            live_journal.flush()
        if len(got) >= 3000:
            break
    source.close()
    assert messages(got) == [f"x {i}" for i in range(3000)]
