"""Six agents on one real gateway, one per kind of failure, with the watcher daemon and
Telegram (python-telegram-bot against the loopback fake Bot API).

Every agent's primary fails its own way on the first turn: 429 with a long Retry-After,
503 (and 529 for every probe after), 401, 404 and 402; the sixth is healthy. The
401 and 402 agents' next fallback is the healthy agent's primary, on the same provider
with the same inline key, so the gateway refuses it for those two agents without a
request ("Inline API key ... temporarily disabled"): case (d), a per-agent refusal
that must move no other agent. After one turn each, every pin must be right, the next
turns must never ask a failed primary, and the cards must be one FALLBACK_FIRED per
failing agent and nothing else. Then case (b), half-open: while the 503 primary's
probes lie (200), the trial turn the watcher asks for fails on it and moves nothing;
once it really recovers, the trial turn succeeds, a RECOVERY card follows, and the
agent's next turns are served by its primary.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.gateway.rig import GatewayRig, Turn, WatcherProcess, gateway_binaries, wait_until
from watcher.alerts.cards import TITLES
from watcher.fakes.botapi import FakeBotApi, SentMessage
from watcher.fakes.journal import LiveJournal
from watcher.fakes.models import FakeModelServer, Reply

SHARED_OK = "shared/good"  # the healthy agent's primary; a fallback of the 401/402 agents
AGENTS = {
    "throttled": ("tp/busy", ["fb/one", "fb/two"]),
    "outage": ("op/down", ["fb/one", "fb/two"]),
    "auth": ("shared/locked", [SHARED_OK, "fb/one"]),
    "gone": ("np/missing", ["fb/two", "fb/one"]),
    "broke": ("shared/broke", [SHARED_OK, "fb/two"]),
    "healthy": (SHARED_OK, ["fb/one"]),
}
FAILING = ("throttled", "outage", "auth", "gone", "broke")
# Where each failing agent must be pinned: its first fallback. For "auth" and "broke"
# that is the healthy agent's primary, which the gateway refuses them for a while
# (their inline key is parked), not because the model is down.
PINNED = {agent: AGENTS[agent][1][0] for agent in FAILING}
TOKEN = "123456:fleet-test-token"
CHAT_ID = 4242


def script(fake: FakeModelServer) -> None:
    fake.script("busy", traffic=Reply.throttle("600"), probe=Reply.throttle("600"))
    fake.script("down", traffic=[Reply.failing(503, "service unavailable"),
                                 Reply.failing(529, "overloaded")],
                probe=Reply.failing(529, "overloaded"))
    fake.script("locked", traffic=Reply.unauthorized("invalid api key"),
                probe=Reply.unauthorized("invalid api key"))
    fake.script("missing", traffic=Reply.failing(404, "model 'missing' not found"),
                probe=Reply.failing(404, "model 'missing' not found"))
    fake.script("broke", traffic=Reply.failing(402, "payment required: out of credits"),
                probe=Reply.failing(402, "payment required: out of credits"))


SETTINGS = f"""\
[policy]
cooldown_base_s = 4
cooldown_cap_s = 30
probe_interval_s = 2
trial_interval_s = 2

[probes]
interval_s = 2
jitter_s = 0.2
first_run_after_s = 1

[alerts]
bot_token = "env:FLEET_BOT_TOKEN"
chat_id = {CHAT_ID}
base_url = "{{base_url}}"
private_per_second = 20

[plugin]
heartbeat_s = 5
"""


@dataclass
class Fleet:
    gateway: GatewayRig
    watcher: WatcherProcess
    fake: FakeModelServer
    bot: FakeBotApi

    def turns(self, agents: tuple[str, ...]) -> dict[str, Turn]:
        """One turn per agent, each checked to succeed. One after another: concurrent
        ``openclaw agent`` CLIs contend for the gateway's SQLite state ("another
        OpenClaw process owns state-lifecycle"), which fails turns before any model."""
        done = {agent: self.gateway.turn(agent) for agent in agents}
        for agent, turn in done.items():
            assert turn.ok, f"{agent}: turn failed ({turn.rc}) {turn.stderr}\n" + \
                self.gateway.tail()
        return done

    def serving(self) -> dict[str, str | None]:
        """Each agent's pinned model, None while it is on its primary."""
        agents = self.watcher.pins()["agents"]
        return {a: (p["current_serving"] if p["in_fallback"] else None)
                for a, p in agents.items()}

    def cards(self) -> list[SentMessage]:
        return [m for m in self.bot.messages if m.chat_id == CHAT_ID]


def card_kinds(cards: list[SentMessage]) -> list[tuple[str, str]]:
    """``(transition type, agent)`` per card, e.g. ``("FALLBACK_FIRED", "auth")``."""
    by_title = {title: kind.name for kind, title in TITLES.items()}
    out = []
    for card in cards:
        head = card.plain_text.splitlines()[0].strip()
        agent = next((a for a in AGENTS if re.search(rf"\b{a}\b", card.plain_text)), "?")
        out.append((by_title.get(head, head), agent))
    return out


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    gateway_binaries()
    root = tmp_path_factory.mktemp("fleet")
    fake = FakeModelServer(default=Reply.ok("ok")).start_in_thread()
    script(fake)
    bot = FakeBotApi(TOKEN).start()
    with LiveJournal(root / "journal") as journal:
        journal.append("[gateway] starting")
        journal.flush()
        gateway = GatewayRig(root / "gw", AGENTS, fake, root / "state" / "fallback-state.json",
                             journal=journal)
        watcher = WatcherProcess(root, gateway.config_path, root / "journal",
                                 SETTINGS.replace("{base_url}", bot.base_url),
                                 env={"FLEET_BOT_TOKEN": TOKEN})
        try:
            gateway.start()
            watcher.start()
            yield Fleet(gateway, watcher, fake, bot)
        finally:
            watcher.stop()
            gateway.stop()
            bot.stop()
            fake.stop_in_thread()


def test_six_agents_end_with_every_pin_right_and_no_spurious_card(fleet: Fleet) -> None:
    gateway, watcher = fleet.gateway, fleet.watcher
    first = fleet.turns(tuple(AGENTS))
    for agent in FAILING:  # stock first turn: the primary failed, a fallback served
        assert first[agent].models[0] == AGENTS[agent][0], (agent, first[agent].models)
    assert first["healthy"].models == [SHARED_OK]
    # (d) the gateway really parked the inline key of the 401 and 402 agents
    refused = [line for line in gateway.lines() if "temporarily disabled" in line]
    assert refused, "expected the gateway to refuse shared/good for the 401/402 agents"

    wait_until(lambda: fleet.serving() == {**PINNED, "healthy": None} or None, 30,
               f"the pins to settle; now {fleet.serving()}")

    second = fleet.turns(tuple(AGENTS))
    for agent in FAILING:
        assert AGENTS[agent][0] not in second[agent].models, (agent, second[agent].models)
        outcome = gateway.outcome_for(second[agent])
        assert outcome["outcome"] == "ok" and outcome["pinned"] == PINNED[agent], outcome
    assert second["healthy"].models == [SHARED_OK]

    # Several probe rounds later (2 s apart, 529/429/401/404/402 every time), and with
    # a heartbeat or two: still right, and the cards are exactly one per failing agent.
    wait_until(lambda: len(fleet.cards()) >= len(FAILING) or None, 20, "the cards")
    settled = len(watcher.pins()["agents"])
    time.sleep(8)
    assert fleet.serving() == {**PINNED, "healthy": None}
    assert len(watcher.pins()["agents"]) == settled
    models = watcher.pins()["models"]
    assert models.get(SHARED_OK, {}).get("state", "healthy") != "failing", models[SHARED_OK]
    # One FALLBACK_FIRED per failing agent, one THROTTLE_COOLDOWN per cooldown class
    # (429 and 503/529), and nothing else: no card for the healthy agent, none for the
    # parked keys, no repeats from the probes, no flapping, no PLUGIN_INACTIVE.
    expected = [("FALLBACK_FIRED", a) for a in FAILING] + [
        ("THROTTLE_COOLDOWN", "throttled"), ("THROTTLE_COOLDOWN", "outage")]
    assert sorted(card_kinds(fleet.cards())) == sorted(expected)
    assert "Traceback" not in watcher.log.read_text()


def trial_of(fleet: Fleet, agent: str, other_than: str | None = None) -> dict[str, str]:
    """Wait for the watcher to open a half-open trial for ``agent`` in the pin file."""

    def opened() -> dict[str, str] | None:
        trial = fleet.watcher.pins()["agents"][agent].get("trial")
        return trial if trial and trial["id"] != other_than else None

    found: dict[str, str] = wait_until(opened, 40, f"a trial for {agent}")
    return found


def test_b_half_open_a_lying_probe_moves_nothing_and_a_real_recovery_comes_home(
    fleet: Fleet,
) -> None:
    gateway, fake = fleet.gateway, fleet.fake
    wait_until(lambda: fleet.serving()["outage"] == PINNED["outage"] or None, 30,
               "outage pinned away")
    before = len(fleet.cards())

    # The probes lie: 200 while real traffic still gets 503. A good probe opens a trial
    # (the pin still names the fallback), the trial turn tries the primary first, gets
    # 503, and the gateway's own chain serves it. No pin moves, no card.
    fake.script("down", traffic=Reply.failing(503, "service unavailable"), probe=Reply.ok())
    lie = trial_of(fleet, "outage")
    assert lie["model"] == "op/down" and fleet.serving()["outage"] == PINNED["outage"]
    turn = fleet.turns(("outage",))["outage"]
    assert turn.models == ["op/down", PINNED["outage"]], turn.models
    outcome = gateway.outcome_for(turn)
    assert outcome["trial"] == lie["id"] and outcome["pinned"] is None, outcome
    assert outcome["attempts"][0]["model"] == "op/down" and not outcome["attempts"][0]["ok"]
    time.sleep(3)  # the watcher has read the outcome: still pinned, and silent
    assert fleet.serving()["outage"] == PINNED["outage"]
    assert [c for c in fleet.cards()[before:] if "outage" in c.plain_text] == []

    # The primary really recovers: the next trial turn succeeds on it, and only that
    # brings the pin home, with a RECOVERY card.
    fake.script("down", traffic=Reply.ok("back"), probe=Reply.ok("back"))
    real = trial_of(fleet, "outage", other_than=lie["id"])
    turn = fleet.turns(("outage",))["outage"]
    assert turn.models == ["op/down"], turn.models
    outcome = gateway.outcome_for(turn)
    assert (outcome["trial"], outcome["model"], outcome["pinned"]) == (
        real["id"], "op/down", None), outcome
    wait_until(lambda: fleet.serving()["outage"] is None or None, 20,
               f"outage failed back; now {fleet.serving()}")
    recovery = wait_until(
        lambda: [c for c in fleet.cards()[before:] if "outage" in c.plain_text] or None,
        20, "the RECOVERY card")
    assert card_kinds(recovery) == [("RECOVERY", "outage")]

    # Home: the next turn is an ordinary one on the primary.
    turn = fleet.turns(("outage",))["outage"]
    assert turn.models == ["op/down"], turn.models
    outcome = gateway.outcome_for(turn)
    assert (outcome["model"], outcome["pinned"], outcome["trial"]) == ("op/down", None, None)
    # the others have not moved
    assert {a: s for a, s in fleet.serving().items() if a != "outage"} == {
        **{a: PINNED[a] for a in FAILING if a != "outage"}, "healthy": None}
