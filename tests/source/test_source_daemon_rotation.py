"""The real daemon keeps following its journal through rotation and vacuum, and a
restart after its cursor's file was vacuumed neither crashes nor re-announces."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.rigs.daemon_rig import DaemonRig, wait_until
from watcher.demo import PRIMARY
from watcher.fakes.journal import journal_remote_binary

from .rotation import archived_files, rotate, vacuum

pytestmark = pytest.mark.skipif(
    journal_remote_binary() is None, reason="systemd-journal-remote is not installed"
)

FAIL = (
    "[model-fallback/decision] model fallback decision: decision=candidate_failed "
    f"requested={PRIMARY} candidate={PRIMARY} reason=rate_limit "
    "next=deepseek/deepseek-v4-flash detail=429 rate_limit_exceeded"
)


def test_the_daemon_follows_rotation_and_vacuum_and_restarts_after_them(
    tmp_path: Path,
) -> None:
    rig = DaemonRig(tmp_path)
    try:
        rig.start()
        journal = tmp_path / "journal"
        rig.journal.extend(f"[gateway] chatter {i}" for i in range(50))
        rig.journal, _ = rotate(rig.journal, seqnum=1)
        rig.journal.extend(f"[gateway] chatter {i}" for i in range(50, 100))
        rig.journal, _ = rotate(rig.journal, seqnum=2)
        rig.journal.append(FAIL)  # journal-remote creates the new file with its first entry
        rig.journal.flush()
        vacuum(journal, "--vacuum-files=2")  # the oldest file, the daemon's start, is gone
        assert len(archived_files(journal)) == 1
        wait_until(lambda: rig.pins()["agents"].get("nexus", {}).get("in_fallback"),
                   what="the pin moves after rotation and vacuum")
        wait_until(lambda: any("Fallback fired" in m.text for m in rig.bot.messages),
                   what="the FALLBACK_FIRED card")
        assert rig.proc is not None and rig.proc.poll() is None
        assert rig.stop() == 0
        sent = len(rig.bot.messages)

        # Stopped: the file holding its cursor rotates away and is vacuumed.
        rig.journal, _ = rotate(rig.journal, seqnum=3)
        rig.journal.append("[gateway] after the restart")
        rig.journal.flush()
        vacuum(journal, "--vacuum-files=1")
        assert archived_files(journal) == []
        rig.start()
        time.sleep(2.0)
        assert rig.proc is not None and rig.proc.poll() is None
        assert len(rig.bot.messages) == sent  # history is not announced again
        assert rig.pins()["agents"]["nexus"]["current_serving"] == "deepseek/deepseek-v4-flash"
        rig.journal.append(FAIL.replace("rate_limit_exceeded", "again"))
        rig.journal.flush()
        # The restarted daemon applies the new entry, and only it (metrics restart at 0).
        key = "failover_watcher_events_total{decision=candidate_failed,failure_class=throttle}"
        wait_until(lambda: rig.metrics().get(key) == 1.0, what="the new entry applied")
        time.sleep(0.5)
        assert rig.metrics()[key] == 1.0
        assert rig.stop() == 0
        logs = "\n".join(log.read_text() for log in rig.logs)
        assert "Traceback" not in logs
    finally:
        rig.close()
