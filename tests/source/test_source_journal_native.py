"""The C scan loop (``watcher.source._jscan``) and the Python one deliver the same thing.

The C loop is what makes the tail keep up with ``journalctl | grep`` (it runs without
the GIL, in a helper thread during catch-up), so it must be built wherever the
bootstrap ran, and be indistinguishable from the pure-Python fallback: same entries,
same realtimes and cursors, same batch positions, same resume behaviour.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from watcher.fakes.journal import JournalEntry
from watcher.source import JournalSource, PositionStore, SourceEntry
from watcher.source._scan import Scan

from .conftest import NO_CATCH_UP, messages, take_all

DECISION = ("[model-fallback/decision] model fallback decision: decision=candidate_failed "
            "requested=a/b candidate=a/b reason=timeout next=c/d")
LANE = 'lane task error: lane=session:agent:ops:main durationMs=1 error="x"'


def varied(n: int) -> list[JournalEntry]:
    """Chatter, decisions, near misses, odd bytes, and entries of other units."""
    out: list[JournalEntry] = []
    for i in range(n):
        kind = i % 11
        if kind == 0:
            out.append(JournalEntry(f"{DECISION} #{i}"))
        elif kind == 1:
            out.append(JournalEntry(f"{LANE} #{i}", identifier="node"))
        elif kind == 2:
            out.append(JournalEntry(b"fallback \xff\xfe not utf-8 k #%d" % i))
        elif kind == 3:
            out.append(JournalEntry(f"multi\nline fallback k #{i}"))
        elif kind == 4:
            out.append(JournalEntry(f"fallback without the gate byte #{i}".replace("k", "")))
        elif kind == 5:
            out.append(JournalEntry(f"{DECISION} other unit #{i}", unit="ssh.service",
                                    identifier="sshd"))
        elif kind == 6:
            out.append(JournalEntry(f"no unit fallback k #{i}", unit=None, identifier=None))
        elif kind == 7:
            out.append(JournalEntry(f"identifier \xe9\u2713 fallback k #{i}",
                                    identifier="n\xf6de"))
        else:
            out.append(JournalEntry(f"chatter k #{i}"))
    return out


def scan_all(source: JournalSource) -> list[Scan]:
    source.open()
    scans: list[Scan] = []
    while True:
        scan = source._scan()
        source._accept(scan)
        source._pending.clear()
        scans.append(scan)
        if not scan.scanned:
            return scans


def entry_tuples(entries: list[SourceEntry]) -> list[tuple[Any, ...]]:
    return [(e.message, e.realtime, e.position, e.unit, e.identifier) for e in entries]


def test_the_c_scan_loop_is_built_and_used_by_default(journal_writer: Any,
                                                      journal_dir: Path) -> None:
    journal_writer(journal_dir, ["x"])
    from watcher.source import _scan

    assert _scan._jscan is not None, (
        "watcher/source/_jscan.c was not built: install gcc and libsystemd-dev, then "
        "`pip install -e .` (scripts/bootstrap does both)")
    source = JournalSource(journal_dir, start_at="head", follow=False)
    source.open()
    assert source.scanner == "c"
    source.close()
    # A custom prefilter or the public-API adapter can only run in the Python loop.
    for kw in ({"keep": lambda b: True}, {"fast": False}, {"native": False}):
        other = JournalSource(journal_dir, start_at="head", follow=False, **kw)
        other.open()
        assert other.scanner == "python"
        other.close()


async def test_without_the_c_extension_the_python_loop_reads_the_same(
    journal_writer: Any, journal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal_writer(journal_dir, varied(300))
    from watcher.source import _journal

    def read() -> list[tuple[Any, ...]]:
        source = JournalSource(journal_dir, start_at="head", follow=False, **NO_CATCH_UP)
        source.open()
        scanner = source.scanner
        got = [t for s in scan_all(source) for t in entry_tuples(s.entries)]
        source.close()
        return [scanner, *got]

    built = read()
    monkeypatch.setattr(_journal, "NATIVE_AVAILABLE", False)  # as on a machine without gcc
    fallback = read()
    assert built[0] == "c" and fallback[0] == "python"
    assert built[1:] == fallback[1:] and len(built) > 1


@pytest.mark.parametrize("filters", [
    {"keep": None},
    {},
    {"units": ["openclaw-gateway"], "identifiers": ["node"]},
    {"units": ["openclaw-gateway"], "keep": None, "max_batch": 7, "max_scan": 50},
])
def test_c_and_python_loops_return_identical_entries_and_cursors(
    journal_writer: Any, journal_dir: Path, filters: dict[str, Any]
) -> None:
    journal_writer(journal_dir, varied(2000))
    kw = {"start_at": "head", "follow": False, **NO_CATCH_UP, **filters}
    c_scans = scan_all(JournalSource(journal_dir, native=True, **kw))
    py_scans = scan_all(JournalSource(journal_dir, native=False, **kw))
    assert [(s.scanned, s.end_position, s.end_realtime_us, s.skip_until_us, s.full)
            for s in c_scans] == [
        (s.scanned, s.end_position, s.end_realtime_us, s.skip_until_us, s.full)
        for s in py_scans]
    assert [entry_tuples(s.entries) for s in c_scans] == [
        entry_tuples(s.entries) for s in py_scans]
    kept = [e for s in c_scans for e in s.entries]
    assert kept, "the journal must exercise the kept path"
    if "keep" not in filters:  # the default prefilter ran in C
        assert all(isinstance(e.message, bytes) or "fallback" in e.message
                   or "lane task error" in e.message for e in kept)
        assert any(isinstance(e.message, bytes) for e in kept)


async def test_c_and_python_loops_resume_a_vacuumed_cursor_by_time_alike(
    journal_writer: Any, journal_dir: Path, tmp_path: Path
) -> None:
    base = time.time() - 100
    journal_writer(journal_dir, [JournalEntry(f"{DECISION} {i}", realtime=base + i)
                                 for i in range(50)])

    async def read(native: bool) -> list[tuple[Any, ...]]:
        store = PositionStore(tmp_path / f"pos-{native}.json", "journal")
        # A cursor from a file that no longer exists, and the time of entry 19.
        store.save("s=0123456789abcdef0123456789abcdef;i=1;"
                   "b=6f0c2c8a4e5b4d2b9a3f1e7d5c9b8a71;m=1;t=1;x=1", base + 19)
        source = JournalSource(journal_dir, store=store, follow=False, native=native,
                               **NO_CATCH_UP)
        source.open()
        assert source.resumed_by == "realtime"
        return [entry_tuples(b.entries) for b in await take_all(source)]

    c, py = await read(True), await read(False)
    assert c == py
    assert [t[0] for b in c for t in b] == [f"{DECISION} {i}" for i in range(20, 50)]


async def test_catch_up_reads_ahead_in_a_thread_without_losing_or_repeating_entries(
    journal_writer: Any, journal_dir: Path, tmp_path: Path
) -> None:
    now = time.time()
    history = [JournalEntry(f"{DECISION} old {i}", realtime=now - 5000 + i * 0.1)
               for i in range(3000)]
    fresh = [JournalEntry(f"{DECISION} new {i}", realtime=now - 2 + i * 0.001)
             for i in range(500)]
    journal_writer(journal_dir, history + fresh)
    store = PositionStore(tmp_path / "pos.json", "journal")
    source = JournalSource(journal_dir, start_at="head", follow=False, store=store,
                           max_batch=100, max_scan=150, clock=lambda: now)
    got: list[str | bytes] = []
    flags: list[bool] = []
    async for batch in source.batches():
        await asyncio.sleep(0.001)  # the consumer is busy while the next scan runs
        got.extend(messages(batch.entries))
        flags.append(batch.catch_up)
        await source.commit(batch)
        if len(got) >= 1200 and source._iterating and not source._closed:
            break  # abandon mid-stream: the scan in flight must not be lost
    # Another iteration continues where the consumer stopped.
    async for batch in source.batches():
        got.extend(messages(batch.entries))
        flags.append(batch.catch_up)
        await source.commit(batch)
    assert got == messages(history + fresh)  # type: ignore[arg-type]
    assert flags[0] is True and flags[-1] is False
    assert flags == sorted(flags, reverse=True)  # history first, never mixed
    saved = store.load()
    assert saved is not None and saved.realtime == pytest.approx(fresh[-1].realtime)


def test_the_scan_refuses_an_object_that_is_not_a_journal_reader() -> None:
    from watcher.source import _scan

    assert _scan._jscan is not None
    with pytest.raises(TypeError, match="Reader"):
        _scan._jscan.scan(object(), SourceEntry, 10, 10, True, -1, False)


async def test_c_and_python_loops_hand_out_the_same_batches_and_positions(
    journal_writer: Any, journal_dir: Path
) -> None:
    now = time.time()
    journal_writer(journal_dir, [JournalEntry(f"{DECISION} old {i}", realtime=now - 900 + i)
                                 for i in range(700)]
                   + [JournalEntry(f"chatter k {i}", realtime=now - 30 + i * 0.01)
                      for i in range(900)]
                   + [JournalEntry(f"{DECISION} new {i}", realtime=now - 10 + i * 0.01)
                      for i in range(300)])

    async def batches(native: bool) -> list[tuple[Any, ...]]:
        source = JournalSource(journal_dir, start_at="head", follow=False, native=native,
                               max_batch=120, max_scan=400, clock=lambda: now)
        return [(messages(b.entries), b.position, b.realtime, b.catch_up)
                for b in await take_all(source)]

    c, py = await batches(True), await batches(False)
    assert c == py
    assert any(not b[0] for b in c)  # a chatter-only stretch still moves the position
    assert [b[3] for b in c if b[0]] == sorted((b[3] for b in c if b[0]), reverse=True)
