"""An unreadable journal stops the watcher with an error that names the fix."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from watcher.source import JournalSource, SourceError, open_source


def test_missing_journal_directory_says_it_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"does not exist.*/var/log/journal"):
        JournalSource(tmp_path / "nope").open()


def test_a_file_given_as_journal_directory_says_what_to_use(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(SourceError, match=r"not a directory.*journal:<dir>"):
        open_source(f"journal:{tmp_path / 'f'}").open()


def test_replaying_an_empty_journal_directory_says_it_holds_no_journal_files(
    tmp_path: Path,
) -> None:
    # A live tail waits for the first file instead (test_source_journal_empty_dir.py).
    with pytest.raises(SourceError, match=r"no journal files.*Storage=persistent"):
        JournalSource(tmp_path, follow=False).open()
    with pytest.raises(SourceError, match=r"no journal files.*Storage=persistent"):
        open_source(str(tmp_path)).open()


def test_a_live_tail_of_a_missing_directory_still_says_it_does_not_exist(
    tmp_path: Path,
) -> None:
    with pytest.raises(SourceError, match=r"does not exist.*/var/log/journal"):
        open_source(f"journal:{tmp_path / 'nope'}").open()


def test_a_journal_the_user_may_not_read_names_the_systemd_journal_group(
    journal_writer: Any,
) -> None:
    base = Path(tempfile.mkdtemp(prefix="watcher-perm-"))
    try:
        os.chmod(base, 0o711)  # noqa: S103 - nobody must traverse, not list
        directory = base / "journal"
        journal_writer(directory, ["secret"])
        os.chmod(directory, 0o750)  # noqa: S103 - root and its group only
        (directory / "x.journal").chmod(0o640)
        code = (
            "import sys\n"
            "from watcher.source import JournalSource, SourceError\n"
            "try:\n"
            f"    JournalSource({str(directory)!r}).open()\n"
            "except SourceError as e:\n"
            "    print(e); sys.exit(3)\n"
        )
        argv = [sys.executable, "-c", code]
        if os.geteuid() == 0:  # root reads everything: ask as nobody instead
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30,
                                cwd="/", check=False)
        assert result.returncode == 3, result.stderr
        assert "permission denied" in result.stdout
        assert "group systemd-journal" in result.stdout
        assert "usermod -aG systemd-journal" in result.stdout
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=True)


def test_a_bad_source_spec_lists_the_accepted_forms() -> None:
    with pytest.raises(SourceError, match="journal:DIR"):
        open_source("")
    with pytest.raises(SourceError, match="needs a path"):
        open_source("file:")
