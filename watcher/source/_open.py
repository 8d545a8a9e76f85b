"""Pick a source from a spec string, as written in the config or on the command line.

Explicit specs (the daemon's config):

- ``journal``: the local system journal;  ``journal:/var/log/journal``: a directory;
- ``file:/path``: a text log followed like ``tail -F``;
- ``jsonl:/path``: the OpenClaw JSONL file log, followed the same way;
- ``export:/path`` (or ``export:-``): ``journalctl -o export`` output, read once;
- ``-``: stdin, read to its end.

A bare path (``replay SOURCE``) is read once from its start (``follow=False``,
``start_at=head`` unless given):

- a directory is a journal directory;
- a ``*.journal`` / ``*.journal~`` file is read alone: it is symlinked into a private
  temporary directory that the reader opens with ``path=`` (never ``files=``), so its
  sibling files in the same directory are *not* read; pass the directory to read all;
- any other file is sniffed from its first 64 KiB: Journal Export Format, else JSONL
  when the first line starts with ``{``, else plain text.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from watcher.source._base import Source
from watcher.source._export import ExportSource, looks_like_export
from watcher.source._journal import JournalSource
from watcher.source._lines import JsonlFileSource, StdinSource, TextFileSource
from watcher.source._position import PositionStore
from watcher.source._types import SourceError

SNIFF_BYTES = 64 * 1024


def open_source(
    spec: str,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    units: tuple[str, ...] | list[str] = (),
    identifiers: tuple[str, ...] | list[str] = (),
    **kwargs: Any,
) -> Source:
    """A source for ``spec``; with ``state_dir`` its position persists there.

    ``units``/``identifiers`` filter journal and export entries; other keyword
    arguments go to the source (``start_at``, ``clock``, ``catch_up_age``, ``keep``,
    ``parse``, ``max_batch``, ``follow``...). Raises ``SourceError`` for a bad spec.
    """
    if not spec:
        raise SourceError("empty source spec: use journal, journal:DIR, file:PATH, "
                          "jsonl:PATH, export:PATH, - or a path to replay")
    if state_dir is not None and spec != "-":
        kwargs.setdefault("store", PositionStore.in_state_dir(Path(state_dir), spec))
    journal_kw: dict[str, Any] = {"units": tuple(units), "identifiers": tuple(identifiers)}
    kind, sep, rest = spec.partition(":")
    if spec == "journal":
        return JournalSource(None, **journal_kw, **kwargs)
    if spec == "-":
        return StdinSource(**kwargs)
    if sep and kind in ("journal", "file", "jsonl", "export"):
        if not rest:
            raise SourceError(f"source spec {spec!r} needs a path after {kind}:")
        if kind == "journal":
            return JournalSource(rest, **journal_kw, **kwargs)
        if kind == "file":
            return TextFileSource(rest, **kwargs)
        if kind == "jsonl":
            return JsonlFileSource(rest, **kwargs)
        return ExportSource(rest, **journal_kw, **kwargs)
    return _replay_source(Path(spec), journal_kw, kwargs)


def _replay_source(path: Path, journal_kw: dict[str, Any], kwargs: dict[str, Any]) -> Source:
    kwargs.setdefault("follow", False)
    kwargs.setdefault("start_at", "head")
    if path.is_dir():
        return JournalSource(path, **journal_kw, **kwargs)
    if not path.exists():
        raise SourceError(f"{path} does not exist (expected a journal directory, a "
                          f"*.journal file, an export file, a JSONL or a text log)")
    if path.name.endswith((".journal", ".journal~")):
        tmp = tempfile.mkdtemp(prefix="watcher-journal-")
        os.symlink(path.resolve(), Path(tmp) / path.name)
        source = JournalSource(tmp, **journal_kw, **kwargs)
        source.on_release = lambda: shutil.rmtree(tmp, ignore_errors=True)
        return source
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except PermissionError as exc:
        raise SourceError(f"permission denied reading {path}") from exc
    if looks_like_export(head):
        kwargs.pop("start_at", None)
        return ExportSource(path, **journal_kw, **kwargs)
    if head.lstrip().startswith(b"{"):
        return JsonlFileSource(path, **kwargs)
    return TextFileSource(path, **kwargs)
