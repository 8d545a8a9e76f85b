"""The running daemon, the CLI and four ``flock ... jq`` editors on one pin file: no
update is lost and every version of the file anyone could read is valid.

The CI variant of ``tests/reliability/soak_concurrency.py`` (see its docstring for the
actors and how a lost update is detected); run the long one by hand with
``.venv/bin/python -m tests.reliability.soak_concurrency --ops 10000``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.reliability.soak_concurrency import run_soak
from watcher.fakes.journal import journal_remote_binary

pytestmark = [
    pytest.mark.skipif(
        journal_remote_binary() is None or not (shutil.which("jq") and shutil.which("flock")),
        reason="needs systemd-journal-remote, jq and flock",
    ),
    pytest.mark.timeout(300),
]


def test_daemon_cli_and_four_flock_jq_editors_lose_no_update_and_never_show_an_invalid_pin(
    tmp_path: Path,
) -> None:
    summary = run_soak(tmp_path, ops=500, seed=7, invalid_rate=0.01, quiet=True)
    print(summary.text())
    assert summary.lost == []
    assert summary.invalid == []
    assert summary.problems == []
    # The run exercised what it claims to: every actor wrote, the daemon wrote in
    # between, and the sampler saw most versions. (Whether an invalid edit is
    # quarantined or fixed by its author first depends on timing; either is checked.)
    assert summary.ops["editors (flock+jq)"] == 350
    assert summary.ops["CLI (pin hold/release)"] == 50
    assert summary.daemon_writes > 0
    assert summary.versions > 250
