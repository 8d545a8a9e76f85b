"""Fixtures for the source tests: real journal files from systemd-journal-remote.

``journal_writer`` skips (with the reason) only where the binary is absent; the
bootstrap installs it, so CI never skips.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from watcher.fakes.journal import LiveJournal, journal_remote_binary, write_journal
from watcher.source import Batch, Source, SourceEntry


@pytest.fixture
def journal_writer() -> Any:
    """``write_journal``, or a skip naming the missing package."""
    if journal_remote_binary() is None:
        pytest.skip("systemd-journal-remote is not installed "
                    "(apt-get install systemd-journal-remote)")
    return write_journal


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "journal"
    directory.mkdir()
    return directory


@pytest.fixture
def live_journal(journal_writer: Any, journal_dir: Path) -> Iterator[LiveJournal]:
    with LiveJournal(journal_dir) as live:
        yield live


NO_CATCH_UP: dict[str, Any] = {"catch_up_age": math.inf}


async def take(source: Source, count: int, timeout: float = 20.0,
               commit: bool = True) -> list[SourceEntry]:
    """Read batches (committing each) until ``count`` entries arrived, then stop."""
    got: list[SourceEntry] = []

    async def run() -> None:
        async for batch in source.batches():
            got.extend(batch.entries)
            if commit:
                await source.commit(batch)
            if len(got) >= count:
                return

    await asyncio.wait_for(run(), timeout)
    return got


async def take_all(source: Source, timeout: float = 30.0) -> list[Batch]:
    """Every batch of a non-following source, committing each."""
    batches: list[Batch] = []

    async def run() -> None:
        async for batch in source.batches():
            batches.append(batch)
            await source.commit(batch)

    await asyncio.wait_for(run(), timeout)
    return batches


def messages(entries: list[SourceEntry]) -> list[str | bytes]:
    return [e.message for e in entries]
