"""Journal rotation and vacuum during a live tail: nothing lost, nothing twice, no crash.

The journal here is written by live ``systemd-journal-remote`` processes; rotation and
vacuum are done as journald and ``journalctl --vacuum-*`` do them on disk (see
``rotation.py``). Only entries still on disk can be promised: an entry vacuumed before
the source read it is gone, for the watcher as for ``journalctl``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from watcher.fakes.journal import LiveJournal
from watcher.source import JournalSource, PositionStore, SourceEntry

from .conftest import NO_CATCH_UP, messages, take, take_all
from .rotation import archived_files, rotate, vacuum


@pytest.fixture
def writer(journal_writer: Any, journal_dir: Path) -> Iterator[list[LiveJournal]]:
    """The current live writer, in a one-element list so a test can swap it."""
    holder = [LiveJournal(journal_dir)]
    yield holder
    holder[0].close()


class Tail:
    """A source tailing in the background, collecting every entry it delivers."""

    def __init__(self, source: JournalSource) -> None:
        self.source = source
        self.got: list[SourceEntry] = []
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async for batch in self.source.batches():
            self.got.extend(batch.entries)
            await self.source.commit(batch)

    async def until(self, count: int, timeout: float = 20.0) -> None:
        async def wait() -> None:
            while len(self.got) < count:
                if self.task is not None and self.task.done():
                    self.task.result()  # re-raise what killed the tail
                await asyncio.sleep(0.005)

        await asyncio.wait_for(wait(), timeout)


@contextlib.asynccontextmanager
async def tailing(source: JournalSource) -> AsyncIterator[Tail]:
    tail = Tail(source)
    source.open()
    tail.task = asyncio.create_task(tail._run())
    try:
        yield tail
    finally:
        source.close()
        await asyncio.wait_for(tail.task, 5)


def lines(start: int, stop: int) -> list[str]:
    return [f"entry {i:05d}" for i in range(start, stop)]


async def test_a_live_tail_follows_rotation_into_each_new_file(
    writer: list[LiveJournal], journal_dir: Path
) -> None:
    writer[0].append("before the watcher started")
    writer[0].flush()
    source = JournalSource(journal_dir, keep=None, **NO_CATCH_UP)
    async with tailing(source) as tail:
        for generation in range(4):
            writer[0].extend(lines(generation * 300, generation * 300 + 300))
            writer[0].flush()
            if generation < 3:
                writer[0], _ = rotate(writer[0], seqnum=generation + 1)
        await tail.until(1200)
        writer[0].extend(lines(1200, 1250))  # and it keeps following the newest file
        writer[0].flush()
        await tail.until(1250)
    assert messages(tail.got) == lines(0, 1250)
    assert len(archived_files(journal_dir)) == 3


async def test_vacuuming_archived_files_under_a_live_tail_loses_and_repeats_nothing(
    writer: list[LiveJournal], journal_dir: Path
) -> None:
    writer[0].append("before the watcher started")
    writer[0].flush()
    source = JournalSource(journal_dir, keep=None, **NO_CATCH_UP)
    async with tailing(source) as tail:
        for generation in range(3):
            writer[0].extend(lines(generation * 200, generation * 200 + 200))
            writer[0], _ = rotate(writer[0], seqnum=generation + 1)
        await tail.until(600)
        # The tail stands in the newest archived file; vacuum all but it (the active
        # file counts as one), and keep writing while journalctl deletes.
        writer[0].extend(lines(600, 700))
        writer[0].flush()
        vacuum(journal_dir, "--vacuum-files=2")
        assert len(archived_files(journal_dir)) == 1
        writer[0].extend(lines(700, 800))
        writer[0].flush()
        await tail.until(800)
        vacuum(journal_dir, "--vacuum-size=1")  # every archived file: only the active one
        assert archived_files(journal_dir) == []
        writer[0].extend(lines(800, 900))
        writer[0].flush()
        await tail.until(900)
    assert messages(tail.got) == lines(0, 900)


@pytest.mark.parametrize("native", [True, False], ids=["c-loop", "python-loop"])
@pytest.mark.parametrize("keep_files", [2, 1], ids=["its-file", "its-file-and-the-next"])
async def test_files_vacuumed_under_the_tail_skip_only_what_is_gone(
    writer: list[LiveJournal], journal_dir: Path, native: bool, keep_files: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer[0].append("before the watcher started")
    writer[0].flush()
    source = JournalSource(journal_dir, keep=None, max_batch=50, native=native,
                           **NO_CATCH_UP)
    source.open()
    writer[0].extend(lines(0, 400))
    writer[0], _ = rotate(writer[0], seqnum=1)
    writer[0].extend(lines(400, 600))
    writer[0], _ = rotate(writer[0], seqnum=2)
    writer[0].extend(lines(600, 700))
    writer[0].flush()
    got = await take(source, 100)  # the tail is inside the first archived file...
    assert messages(got) == lines(0, 100)
    # ...which is deleted under it (with 1: the next archived file too; libsystemd
    # then fails the read with EBADMSG, and the source re-opens after its last entry).
    vacuum(journal_dir, f"--vacuum-files={keep_files}")
    on_disk = lines(400, 700) if keep_files == 2 else lines(600, 700)
    rest = await take(source, 1, timeout=20.0)
    while rest[-1].message != "entry 00699":
        rest += await take(source, 1)
    source.close()
    texts = messages(rest)
    # What was still on disk arrives once and in order; nothing is read twice.
    assert texts[-len(on_disk):] == on_disk
    assert set(texts[:-len(on_disk)]) <= set(lines(100, 400))
    assert len(set(messages(got + rest))) == len(got) + len(rest)
    if keep_files == 1:  # the read failed and the source re-opened instead of crashing
        assert "re-opening it after the last entry read" in caplog.text


async def test_a_restart_after_its_cursor_was_vacuumed_resumes_by_time(
    writer: list[LiveJournal], journal_dir: Path, tmp_path: Path
) -> None:
    store = PositionStore(tmp_path / "pos.json", "journal")
    writer[0].extend(lines(0, 300))
    writer[0].flush()
    first = JournalSource(journal_dir, start_at="head", follow=False, store=store,
                          keep=None, **NO_CATCH_UP)
    assert messages([e for b in await take_all(first) for e in b.entries]) == lines(0, 300)
    # While the watcher is stopped: more lines, rotation, and its file is vacuumed.
    writer[0].extend(lines(300, 350))
    writer[0], _ = rotate(writer[0], seqnum=1)
    writer[0].extend(lines(350, 400))
    writer[0], _ = rotate(writer[0], seqnum=2)
    writer[0].extend(lines(400, 450))
    writer[0].flush()
    vacuum(journal_dir, "--vacuum-files=2")  # the active file and the newest archive
    again = JournalSource(journal_dir, follow=False, store=store, keep=None, **NO_CATCH_UP)
    again.open()
    assert again.resumed_by == "realtime"  # the cursor's file is gone: resume by its time
    got = messages([e for b in await take_all(again) for e in b.entries])
    # 300..349 were in the vacuumed file: gone for every reader. The rest, once.
    assert got == lines(350, 450)
    # And the new position resumes by cursor: nothing more, nothing again.
    third = JournalSource(journal_dir, follow=False, store=store, keep=None, **NO_CATCH_UP)
    third.open()
    assert third.resumed_by == "cursor"
    assert await take_all(third) == []
