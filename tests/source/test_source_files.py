"""Text and JSONL files followed like ``tail -F``, and stdin."""

from __future__ import annotations

import asyncio
import io
import os
import time
from pathlib import Path

from watcher.source import (
    JsonlFileSource,
    PositionStore,
    SourceEntry,
    StdinSource,
    TextFileSource,
)

from .conftest import NO_CATCH_UP, messages, take, take_all


def append(path: Path, *lines: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)


async def test_a_followed_file_survives_rotation_by_rename_and_truncation(
    tmp_path: Path,
) -> None:
    log = tmp_path / "gateway.log"
    append(log, "history")
    source = TextFileSource(log, keep=None, poll_interval=0.005, **NO_CATCH_UP)
    source.open()  # start_at=tail
    got: list[SourceEntry] = []

    async def until(count: int) -> None:
        got.extend(await take(source, count - len(got), timeout=5))

    append(log, "a1", "a2")
    await until(2)
    append(log, "a3")
    with open(log, "a", encoding="utf-8") as f:
        f.write("a4 unterminated")
    os.rename(log, tmp_path / "gateway.log.1")  # logrotate: rename ...
    await asyncio.sleep(0.02)
    append(log, "b1", "b2")  # ... then create
    await until(6)
    with open(log, "w", encoding="utf-8"):  # copytruncate
        pass
    await asyncio.sleep(0.02)
    append(log, "c1")
    await until(7)
    source.close()
    assert messages(got) == ["a1", "a2", "a3", "a4 unterminated", "b1", "b2", "c1"]
    assert source.stats.rotations == 2


async def test_a_file_resumes_at_its_saved_offset_when_the_inode_matches(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    append(log, "one", "two")
    store = PositionStore(tmp_path / "pos.json", "file")
    first = TextFileSource(log, start_at="head", keep=None, store=store, follow=False)
    assert messages([e for b in await take_all(first) for e in b.entries]) == ["one", "two"]
    append(log, "three")
    second = TextFileSource(log, keep=None, store=store, follow=False)
    assert messages([e for b in await take_all(second) for e in b.entries]) == ["three"]
    saved = store.load()
    assert saved is not None
    assert saved.position == f"{log.stat().st_ino}:{log.stat().st_size}"
    # Rotated while the watcher was down: the new file is read from its start.
    os.rename(log, tmp_path / "gateway.log.1")
    append(log, "fresh")
    third = TextFileSource(log, keep=None, store=store, follow=False)
    assert messages([e for b in await take_all(third) for e in b.entries]) == ["fresh"]


async def test_a_missing_file_is_waited_for(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    source = TextFileSource(log, keep=None, poll_interval=0.005)
    reader = asyncio.create_task(take(source, 2, timeout=5))
    await asyncio.sleep(0.02)
    append(log, "first", "second")
    assert messages(await reader) == ["first", "second"]
    source.close()


async def test_a_huge_line_is_cut_to_a_bounded_prefix(tmp_path: Path) -> None:
    log = tmp_path / "hostile.log"
    log.write_bytes(b"x" * 300_000 + b"\nnext\n" + b"\xff\xfe\n")
    source = TextFileSource(log, start_at="head", keep=None, follow=False, max_line=1000)
    got = [e for b in await take_all(source) for e in b.entries]
    assert [len(e.message) for e in got] == [1000, 4, 2]
    assert got[1].message == "next"
    assert got[2].message == b"\xff\xfe"


async def test_jsonl_records_carry_their_time_and_go_to_parse_jsonl(tmp_path: Path) -> None:
    now = time.time()
    log = tmp_path / "openclaw.log"
    old = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now - 3600))
    new = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now - 1))
    decision = '"0":"{\\"subsystem\\":\\"model-fallback/decision\\"}"'
    chatter = '"0":"{\\"subsystem\\":\\"gateway\\"}"'
    append(log, f'{{{decision},"time":"{old}"}}', f'{{{chatter},"time":"{new}"}}',
           f'{{{decision},"time":"{new}"}}')
    calls: list[object] = []
    source = JsonlFileSource(log, start_at="head", follow=False, clock=lambda: now,
                             parse=lambda line: calls.append(line))
    batches = [b for b in await take_all(source) if b.entries]
    assert [(b.catch_up, len(b.entries)) for b in batches] == [(True, 1), (False, 1)]
    assert abs((batches[0].entries[0].realtime or 0) - (now - 3600)) < 1
    source.parse(batches[1].entries[0])
    assert calls == [batches[1].entries[0].message]


async def test_stdin_is_read_to_its_end_in_bounded_batches() -> None:
    data = "".join(f"line {i}\n" for i in range(2500)) + "last without newline"
    source = StdinSource(io.BytesIO(data.encode()), keep=None, max_batch=1000)
    batches = await take_all(source)
    assert max(len(b.entries) for b in batches) == 1000
    assert sum(len(b.entries) for b in batches) == 2501
    assert batches[-1].entries[-1].message == "last without newline"
    assert batches[0].entries[0].realtime is None and not batches[0].catch_up
