"""The whole loop on real parts: the OpenClaw gateway with the fallback-pin plugin, its
stdout and stderr in a live journal (systemd-journal-remote), and the watcher daemon
tailing that journal and writing the pin file the plugin reads.

(a) A throttled primary moves the pin, and the next turn is served by the pinned
    fallback with no request to the primary.
(c) The pinned model fails: the gateway's own chain still serves the turn, and the
    watcher blames the pinned model, not the primary, although the gateway's decision
    line names the primary.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

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

PRIMARY, FALLBACK, LAST = "ollama/first", "backup/second", "other/third"
AGENTS = {"alpha": (PRIMARY, [FALLBACK, LAST])}


WATCHER_SETTINGS = """\
[policy]
cooldown_base_s = 900

[probes]
enabled = false

[plugin]
heartbeat_s = 5
"""


@pytest.fixture(scope="module")
def loop(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayRig, WatcherProcess, FakeModelServer]]:
    gateway_binaries()
    root = tmp_path_factory.mktemp("loop")
    fake = FakeModelServer(default=Reply.ok("ok")).start_in_thread()
    fake.script("first", traffic=Reply.throttle("600"), probe=Reply.throttle("600"))
    with LiveJournal(root / "journal") as journal:
        journal.append("[gateway] starting")
        journal.flush()
        gateway = GatewayRig(
            root / "gw", AGENTS, fake, root / "state" / "fallback-state.json", journal=journal
        )
        (root / "gw").mkdir(exist_ok=True)
        watcher = WatcherProcess(root, gateway.config_path, root / "journal", WATCHER_SETTINGS)
        with all_running(gateway, watcher, fake):
            yield gateway, watcher, fake


def test_a_throttled_primary_moves_the_pin_and_the_next_turn_never_asks_it(
    loop: tuple[GatewayRig, WatcherProcess, FakeModelServer],
) -> None:
    gateway, watcher, _ = loop
    first = gateway.turn("alpha")
    assert first.ok, gateway.tail()
    assert first.models[0] == PRIMARY and first.models[-1] == FALLBACK  # stock: 429, then fallback
    moved = wait_until(
        lambda: watcher.pins()["agents"]["alpha"]["in_fallback"] or None, 20, "the pin to move"
    )
    assert moved and watcher.pins()["agents"]["alpha"]["current_serving"] == FALLBACK

    second = gateway.turn("alpha")
    assert second.ok, gateway.tail()
    assert second.models == [FALLBACK], "a pinned turn asked the throttled primary"
    outcome = gateway.outcome_for(second)
    assert outcome["pinned"] == FALLBACK and outcome["attempts"][0]["overridden"] is True


def test_a_failing_pinned_model_is_blamed_not_the_primary_and_the_chain_still_serves(
    loop: tuple[GatewayRig, WatcherProcess, FakeModelServer],
) -> None:
    gateway, watcher, fake = loop
    wait_until(
        lambda: watcher.pins()["agents"]["alpha"]["current_serving"] == FALLBACK or None,
        20,
        "alpha pinned to its first fallback",
    )
    fake.script("second", traffic=Reply.failing(404, "model 'second' not found"))
    turn = gateway.turn("alpha")
    assert turn.ok, gateway.tail()
    assert PRIMARY not in turn.models and turn.models[-1] == LAST
    decision_lies = [
        line
        for line in gateway.lines()
        if "decision=candidate_failed" in line
        and f"candidate={PRIMARY}" in line
        and "model_not_found" in line
    ]
    assert decision_lies, "expected the gateway to name the primary for the pinned 404"

    pins = wait_until(
        lambda: (
            ((p := watcher.pins())["models"].get(FALLBACK, {}).get("state") == "failing"
            and p)
            or None
        ),
        20,
        "the pinned model to be blamed",
    )
    assert pins["models"][FALLBACK]["failure_class"] == "model_not_found"
    assert pins["models"][PRIMARY]["failure_class"] == "throttle"  # the lie was not believed
    assert pins["agents"]["alpha"]["current_serving"] == LAST
    time.sleep(1)
    assert "Traceback" not in watcher.log.read_text()
