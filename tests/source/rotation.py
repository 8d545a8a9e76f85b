"""Rotate and vacuum a journal directory the way journald does, without root.

``systemd-journal-remote`` (v252) cannot be told to rotate, so a rotation here is what
journald's is on disk: the writer closes the active file, it is renamed to the
archived form ``<name>@<seqnum-id>-<seqnum>-<realtime>.journal``, and a new writer
starts a fresh file under the active name. ``journalctl --vacuum-files`` and
``--vacuum-size`` recognise the archived names and delete the oldest ones.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

from watcher.fakes.journal import LiveJournal


def rotate(live: LiveJournal, seqnum: int) -> tuple[LiveJournal, Path]:
    """Close ``live``, archive its file, start a new writer on the active name."""
    live.flush()
    live.close()
    realtime_us = int(time.time() * 1_000_000)
    stem = live.name.removesuffix(".journal")
    archived = live.path.with_name(
        f"{stem}@{secrets.token_hex(16)}-{seqnum:016x}-{realtime_us:016x}.journal")
    live.path.rename(archived)
    return LiveJournal(live.directory, name=live.name), archived


def vacuum(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``journalctl -D DIR --vacuum-...``: deletes the oldest archived files."""
    return subprocess.run(["journalctl", "-D", str(directory), *args, "-q"],
                          capture_output=True, text=True, check=True, timeout=30)


def archived_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*@*.journal"))
