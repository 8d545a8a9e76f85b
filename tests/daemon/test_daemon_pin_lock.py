"""A held pin lock makes the decision wait, never the loop.

The real daemon under a fake systemd notify socket, with a 1 s watchdog: while
``flock <pin>.lock sleep`` holds the lock and a decision line arrives, ``WATCHDOG=1``
and ``STATUS=`` keep coming (the status says a decision is waiting), and the decision
lands once the lock is free.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rigs.daemon_rig import DaemonRig, wait_until
from watcher.demo import PRIMARY

FAIL = (
    "[model-fallback/decision] model fallback decision: decision=candidate_failed "
    f"requested={PRIMARY} candidate={PRIMARY} reason=rate_limit "
    "next=deepseek/deepseek-v4-flash detail=429 rate_limit_exceeded"
)
HOLD_S = 6.0


class NotifySocket:
    """The datagram socket systemd gives a Type=notify service; records what it got."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.got: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            for line in data.decode().splitlines():
                self.got.append((time.monotonic(), line))

    def between(self, start: float, end: float, prefix: str) -> list[tuple[float, str]]:
        return [(t, m) for t, m in list(self.got) if start <= t <= end and m.startswith(prefix)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[DaemonRig, NotifySocket]]:
    notify = NotifySocket(tmp_path / "notify.sock")
    r = DaemonRig(tmp_path)
    r.env.update({"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"})
    try:
        yield r, notify
    finally:
        r.close()
        notify.close()


def test_a_held_pin_lock_stops_no_watchdog_ping_and_the_decision_lands_after(
    rig: tuple[DaemonRig, NotifySocket],
) -> None:
    daemon, notify = rig
    daemon.start()
    wait_until(lambda: notify.between(0, time.monotonic(), "READY=1"), what="READY=1")
    lock = daemon.state / "fallback-state.json.lock"
    holder = subprocess.Popen(["flock", str(lock), "sleep", str(HOLD_S)])
    try:
        # flock -n fails while the holder has it: proof that the lock is really taken
        wait_until(lambda: subprocess.run(["flock", "-n", str(lock), "true"]).returncode == 1,
                   what="flock to hold the lock")
        held_at = time.monotonic()
        daemon.journal.append(FAIL)
        daemon.journal.flush()
        time.sleep(HOLD_S - 1.5)
        during = time.monotonic()
        assert daemon.pins()["agents"]["nexus"]["in_fallback"] is False  # still waiting
    finally:
        holder.wait(HOLD_S + 5)
    pins = wait_until(lambda: (p := daemon.pins())["agents"]["nexus"]["in_fallback"] and p,
                      what="the decision after the lock is free")
    assert pins["agents"]["nexus"]["current_serving"] == "deepseek/deepseek-v4-flash"

    pings = [t for t, _ in notify.between(held_at, during, "WATCHDOG=1")]
    gaps = [b - a for a, b in zip([held_at, *pings], [*pings, during], strict=True)]
    assert len(pings) >= 5 and max(gaps) < 1.0, gaps  # every 0.5 s, as WatchdogSec/2
    statuses = [m for _, m in notify.between(held_at + 1.5, during, "STATUS=")]
    assert any("waiting for the pin lock" in m for m in statuses), statuses
    assert daemon.proc is not None and daemon.proc.poll() is None
