"""Export-format replay and picking a source from a spec string."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from watcher.fakes.journal import JournalEntry, write_export
from watcher.source import (
    ExportFormatError,
    ExportSource,
    JournalSource,
    JsonlFileSource,
    StdinSource,
    TextFileSource,
    open_source,
)

from .conftest import NO_CATCH_UP, take_all

ODD = [
    JournalEntry("plain"),
    JournalEntry("two\nlines"),
    JournalEntry(b"\x00\xffbinary\x1b[31m"),
    JournalEntry("emoji ⚠️ and = signs", unit="other.service", identifier="node"),
]


def entry_tuples(batches: list[Any]) -> list[tuple[Any, ...]]:
    return [(e.message, e.realtime, e.unit, e.identifier) for b in batches for e in b.entries]


async def test_export_files_round_trip_binary_safe_fields(tmp_path: Path) -> None:
    path = write_export(tmp_path / "dump.export", ODD, start=1_700_000_000.0)
    source = ExportSource(path, keep=None, **NO_CATCH_UP)
    got = entry_tuples(await take_all(source))
    assert [g[0] for g in got] == ["plain", "two\nlines", b"\x00\xffbinary\x1b[31m",
                                   "emoji ⚠️ and = signs"]
    assert got[1][1] == pytest.approx(1_700_000_000.000001)
    assert got[3][2:] == ("other.service", "node")


async def test_journalctl_export_replays_exactly_what_the_journal_holds(
    journal_writer: Any, journal_dir: Path, tmp_path: Path
) -> None:
    journal_writer(journal_dir, ODD + [f"line {i}" for i in range(2000)])
    dump = tmp_path / "dump.export"
    with open(dump, "wb") as out:
        subprocess.run(["journalctl", "-D", str(journal_dir), "-o", "export"], stdout=out,
                       check=True)
    from_journal = entry_tuples(await take_all(JournalSource(
        journal_dir, start_at="head", follow=False, keep=None,
        units=["openclaw-gateway.service", "other.service"], **NO_CATCH_UP)))
    from_export = entry_tuples(await take_all(open_source(str(dump), keep=None,
                                                          **NO_CATCH_UP)))
    assert from_export == from_journal
    assert len(from_export) == 2004
    only_gateway = entry_tuples(await take_all(open_source(
        f"export:{dump}", units=["openclaw-gateway"], keep=None, **NO_CATCH_UP)))
    assert len(only_gateway) == 2003


async def test_garbage_in_export_format_is_refused_with_the_offset(tmp_path: Path) -> None:
    path = tmp_path / "bad.export"
    path.write_bytes(b"MESSAGE=ok\n\nMESSAGE\n" + b"\xff" * 8 + b"x\n\n")
    with pytest.raises(ExportFormatError, match="not journal export format at byte 12"):
        await take_all(ExportSource(path, keep=None))


async def test_a_single_journal_file_is_replayed_without_its_siblings(
    journal_writer: Any, journal_dir: Path
) -> None:
    journal_writer(journal_dir, ["from a"], name="a.journal")
    journal_writer(journal_dir, ["from b"], name="b.journal")
    whole = open_source(str(journal_dir), keep=None, **NO_CATCH_UP)
    assert isinstance(whole, JournalSource)
    assert sorted(e[0] for e in entry_tuples(await take_all(whole))) == ["from a", "from b"]
    single = open_source(str(journal_dir / "a.journal"), keep=None, **NO_CATCH_UP)
    assert [e[0] for e in entry_tuples(await take_all(single))] == ["from a"]
    tmp = single.path
    single.close()
    assert tmp is not None and not tmp.exists()


def test_specs_pick_their_sources(tmp_path: Path) -> None:
    text = tmp_path / "plain.log"
    text.write_text("hello\n")
    jsonl = tmp_path / "openclaw.log"
    jsonl.write_text('{"time":"2026-01-01T00:00:00Z"}\n')
    export = write_export(tmp_path / "x.export", ["m"])
    assert isinstance(open_source("journal"), JournalSource)
    assert isinstance(open_source(f"journal:{tmp_path}"), JournalSource)
    assert type(open_source(f"file:{text}")) is TextFileSource
    assert isinstance(open_source(f"jsonl:{jsonl}"), JsonlFileSource)
    assert isinstance(open_source(f"export:{export}"), ExportSource)
    assert isinstance(open_source("-"), StdinSource)
    # Bare paths are sniffed and read once from the head.
    assert isinstance(open_source(str(export)), ExportSource)
    sniffed_jsonl = open_source(str(jsonl))
    assert isinstance(sniffed_jsonl, JsonlFileSource) and sniffed_jsonl.kind == "jsonl"
    sniffed_text = open_source(str(text))
    assert type(sniffed_text) is TextFileSource and not sniffed_text.follow
    assert sniffed_text.start_at.mode == "head"
    followed = open_source(f"file:{text}", state_dir=tmp_path / "state")
    assert followed.follow and followed.store is not None
    assert followed.store.path.parent == tmp_path / "state"
