"""A live tail of a journal directory with no files yet waits for them and reads them.

Before, the source refused an empty directory, so a watcher started before the
gateway ever logged saw nothing until restarted. Now it waits (warning once) and
reads the first file from its start, since all of it was written after the start.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from watcher.fakes.journal import LiveJournal
from watcher.source import JournalSource, PositionStore

from .conftest import NO_CATCH_UP, messages, take


@pytest.mark.parametrize("layout", ["flat", "machine-id"])
async def test_a_tail_started_on_an_empty_directory_sees_the_first_entries_written(
    journal_writer: Any, journal_dir: Path, tmp_path: Path, layout: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = PositionStore(tmp_path / "pos.json", "journal")
    source = JournalSource(journal_dir, keep=None, store=store, empty_poll=0.02,
                           **NO_CATCH_UP)
    with caplog.at_level(logging.WARNING, "watcher.source.journal"):
        source.open()  # no error: the gateway has just not logged yet
    assert "no journal files (*.journal) yet" in caplog.text
    reader = asyncio.create_task(take(source, 3))
    await asyncio.sleep(0.1)  # the source is waiting with no file at all
    where = journal_dir if layout == "flat" else journal_dir / "0123456789abcdef0123456789abcdef"
    with LiveJournal(where) as live:
        live.extend(["first", "second", "third"])
        live.flush()
        got = await reader
        assert messages(got) == ["first", "second", "third"]
        live.append("fourth")  # and it follows on, live
        live.flush()
        assert messages(await take(source, 1)) == ["fourth"]
    source.close()
    # A restart resumes after the last entry, like any other.
    again = JournalSource(journal_dir, keep=None, store=store, follow=False, **NO_CATCH_UP)
    again.open()
    assert again.resumed_by == "cursor"
    again.close()


async def test_closing_a_tail_that_still_waits_for_files_ends_it_promptly(
    journal_dir: Path,
) -> None:
    source = JournalSource(journal_dir, keep=None, empty_poll=10.0)

    async def run() -> int:
        return len([b async for b in source.batches()])

    task = asyncio.create_task(run())
    await asyncio.sleep(0.05)
    source.close()
    assert await asyncio.wait_for(task, 2) == 0
