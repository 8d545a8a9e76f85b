"""``failover-watcher drill --live`` against the real gateway with the plugin and the
watcher daemon: each chain member is held in turn, one real turn goes through the
gateway's own CLI, the plugin's outcome line confirms who served it, and the hold is
released at the end, also when the drill is interrupted."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.rig import (
    GatewayRig,
    WatcherProcess,
    all_running,
    gateway_binaries,
    wait_until,
)
from watcher.fakes.journal import LiveJournal
from watcher.fakes.models import FakeModelServer, Reply

PRIMARY, FB1, FB2 = "ollama/first", "backup/second", "other/third"
AGENTS = {"alpha": (PRIMARY, [FB1, FB2])}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayRig, WatcherProcess,
                                                                     FakeModelServer]]:
    node, openclaw = gateway_binaries()
    root = tmp_path_factory.mktemp("drill")
    fake = FakeModelServer(default=Reply.ok("OK")).start_in_thread()
    with LiveJournal(root / "journal") as journal:
        journal.append("[gateway] starting")
        journal.flush()
        gateway = GatewayRig(root / "gw", AGENTS, fake, root / "state" / "fallback-state.json",
                             journal=journal)
        cli = shlex.join([str(node), str(openclaw)])
        watcher = WatcherProcess(
            root, gateway.config_path, root / "journal",
            f"[probes]\nenabled = false\n[plugin]\nheartbeat_s = 5\n"
            f'[drill]\nopenclaw = {json.dumps(cli)}\ngateway_token = "env:DRILL_GATEWAY_TOKEN"\n',
        )
        with all_running(gateway, watcher, fake):
            yield gateway, watcher, fake


def drill(gateway: GatewayRig, watcher: WatcherProcess, *extra: str) -> subprocess.Popen[str]:
    from tests.gateway.rig import TOKEN

    env = {**gateway.env(), "DRILL_GATEWAY_TOKEN": TOKEN,
           "PATH": f"{Path(sys.executable).parent}:{gateway.env()['PATH']}"}
    return subprocess.Popen(
        [sys.executable, "-m", "watcher.cli", "drill", "--live", "alpha", "--config",
         str(watcher.config), *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_every_member_really_serves_one_turn_and_the_hold_is_released(
    rig: tuple[GatewayRig, WatcherProcess, FakeModelServer],
) -> None:
    gateway, watcher, fake = rig
    proc = drill(gateway, watcher, "--json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"{out}\n{err}\n{gateway.tail()}"
    report = json.loads(out)
    assert [m["model"] for m in report["members"]] == [PRIMARY, FB1, FB2]
    assert all(m["served"] and m["served_by"] == m["model"] for m in report["members"])
    assert report["members"][0]["delta_ms"] == 0
    assert all(isinstance(m["latency_ms"], int) for m in report["members"])
    # The fake saw one real turn per member, each on the member held.
    drills = [r for r in fake.requests if "live drill" in json.dumps(r.body)]
    assert [r.model for r in drills] == ["first", "second", "third"]
    # Held with the note "drill", adopted and audited by the daemon, then released.
    audit = (watcher.state / "audit.jsonl").read_text()
    assert '"note": "drill"' in audit or '"note":"drill"' in audit
    # The release is the drill's last edit; the daemon adopts it and repins alpha home.
    wait_until(lambda: ((p := watcher.pins()["agents"]["alpha"])["hold"] is None
               and p["current_serving"] == PRIMARY) or None, 20, "alpha back on its primary")
    assert TOKEN_NOT_PRINTED(out + err)


def TOKEN_NOT_PRINTED(text: str) -> bool:
    from tests.gateway.rig import TOKEN

    return TOKEN not in text


def test_an_interrupted_drill_still_releases_its_hold(
    rig: tuple[GatewayRig, WatcherProcess, FakeModelServer],
) -> None:
    gateway, watcher, fake = rig
    fake.script("second", traffic=Reply.hanging())  # the fallback's turn never answers
    try:
        proc = drill(gateway, watcher)
        wait_until(lambda: (watcher.pins()["agents"]["alpha"].get("hold") or {}).get("model")
                   == FB1 or None, 120, "the drill to hold alpha on its first fallback")
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "releasing the hold" in err
        assert watcher.pins()["agents"]["alpha"]["hold"] is None
    finally:
        fake.script("second", traffic=Reply.ok("OK"))
