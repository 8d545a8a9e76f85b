"""Telegram down for a while (10 minutes by hand, ~15 s in CI), then back.

The bar (DESIGN, reliability): every alert delivered afterwards, none twice, order
kept per agent; and the tail is never delayed meanwhile.

The real daemon runs as a subprocess (``DaemonRig``) on a live journal written by
``systemd-journal-remote`` and the fake Bot API. Its config (``config_text`` below)
has six agents, each with its own primary and fallback, probes off (the journal drives
every move), flap detection off and a tiny dedup window, so every pin move is one
card: the expected cards are known exactly from the lines written.

``run_outage`` then:

1. with Telegram up, drives ``up_cycles`` fail/recover cycles per agent and waits for
   their cards (the sender works; the pin latencies give the baseline);
2. takes the fake Bot API down (``mode``: connections refused; or accepted and never
   answered; or every send answered 502, or 429) and, for ``down_s`` seconds,
   keeps appending lines, one cycle every ``move_interval_s``: an agent's primary
   fails (FALLBACK_FIRED), journal chatter, then a real request on it succeeds
   (RECOVERY). After each move it waits until the pin file shows it, and records how
   long that took: the tail must keep tracking the journal while the cards pile up in
   the outbox (a move not seen within ``move_timeout_s`` fails the run);
3. before bringing the fake back, scripts its first answers (a 502, a 429 with
   ``retry_after``, a 503), so the backlog meets every transient error a recovering
   Telegram gives;
4. waits until the outbox is empty, and returns what it saw.

``check_delivery`` states the bar as assertions against the outbox's own rows and the
messages the fake received: each card once, in the outbox's order, the per-agent
sequence exactly the moves driven, and labelled "possibly a repeat" if and only if one
of its sends really went unanswered (only the ``hang`` mode does that). By hand::

    .venv/bin/python -m tests.reliability.soak_telegram --down-seconds 600 [--mode hang]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.rigs.daemon_rig import DaemonRig, wait_until
from watcher.alerts.telegram import REPEAT_NOTE
from watcher.demo import DEMO_TOKEN
from watcher.fakes.botapi import FakeBotApi, Scripted, SentMessage

AGENTS = tuple(f"agent-{i}" for i in range(6))
CHAT_ID = 4242
DECISION = "[model-fallback/decision] model fallback decision: decision="


def primary(agent: str) -> str:
    return f"prov{agent[-1]}/primary-{agent}"


def fallback(agent: str) -> str:
    return f"backup/fallback-{agent}"


def fail_line(agent: str, seq: int) -> str:
    return (
        f"{DECISION}candidate_failed requested={primary(agent)} candidate={primary(agent)} "
        f"reason=server_error next={fallback(agent)} detail=503 upstream unavailable (#{seq})"
    )


def success_line(agent: str) -> str:
    return (
        f"{DECISION}candidate_succeeded requested={primary(agent)} candidate={primary(agent)} "
        f"reason=unknown next={fallback(agent)}"
    )


def chatter_line(agent: str, seq: int) -> str:
    return (
        f"{DECISION}skip_candidate requested={primary(agent)} candidate={primary(agent)} "
        f"reason=rate_limit next={fallback(agent)} detail=Provider is in cooldown (#{seq})"
    )


def openclaw() -> dict[str, Any]:
    entries = {a: {"model": {"primary": primary(a), "fallbacks": [fallback(a)]}} for a in AGENTS}
    return {"agents": {"entries": entries}}


def config_for(
    *, backoff_max_s: float, per_second: float
) -> Callable[[Path, str, FakeBotApi], str]:
    """A ``DaemonRig`` config: our own chains, every move a card, short Telegram timers."""

    def config_text(root: Path, journal_spec: str, bot: FakeBotApi) -> str:
        gateway = root / "soak-openclaw.json"
        gateway.write_text(json.dumps(openclaw()))
        return f"""\
state_dir = "{root / "state"}"
gateway_config = "{gateway}"
tick_interval_s = 1
log_level = "INFO"

[journal]
source = "{journal_spec}"
start_at = "head"

[policy]
flap_detection = false

[probes]
enabled = false

[alerts]
bot_token = "env:DEMO_BOT_TOKEN"
chat_id = {CHAT_ID}
base_url = "{bot.base_url}"
private_per_second = {per_second}
dedup_window_s = 0.001
backoff_base_s = 0.5
backoff_max_s = {backoff_max_s}
connect_timeout_s = 1
read_timeout_s = 1

[metrics]
port = 0

[plugin]
required = false  # no gateway here: nothing for the pin to steer
"""

    return config_text


OUTAGE_MODES = ("refuse", "hang", "5xx", "429")
"""How Telegram is unavailable: connections refused (``go_down``); accepted but never
answered (each send times out, so the card at the head is really ambiguous); or every
send answered 502, or 429 with ``retry_after`` 1."""


@dataclass
class Outage:
    """What one run saw: the moves it drove, pin latencies, cards, timings."""

    mode: str = "refuse"
    expected: dict[str, list[str]] = field(default_factory=dict)  # agent -> card types
    pin_latency_up_s: list[float] = field(default_factory=list)
    pin_latency_down_s: list[float] = field(default_factory=list)
    lines_during_outage: int = 0
    depth_at_end_of_outage: int = 0
    delivered_during_outage: int = 0
    drain_s: float = 0.0
    messages: list[SentMessage] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    unanswered_texts: set[str] = field(default_factory=set)  # sends that got no answer
    log_text: str = ""

    def summary(self) -> str:
        def figures(values: list[float]) -> str:
            if not values:
                return "none"
            ms = sorted(v * 1000 for v in values)
            p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
            return (f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, "
                    f"max {ms[-1]:.1f} ms over {len(ms)} moves")

        cards = sum(len(v) for v in self.expected.values())
        return "\n".join([
            f"Telegram outage mode: {self.mode}",
            "journal append -> pin file shows the move (polled every 5 ms):",
            f"  Telegram up:   {figures(self.pin_latency_up_s)}",
            f"  Telegram down: {figures(self.pin_latency_down_s)}",
            f"outage: {self.lines_during_outage} journal lines, outbox depth "
            f"{self.depth_at_end_of_outage} at its end, {self.delivered_during_outage} "
            f"delivered meanwhile",
            f"back up: {len(self.messages)} of {cards} expected cards delivered, outbox "
            f"drained in {self.drain_s:.1f} s; Bot API answers seen: "
            f"{sorted(set(self.answered))}",
        ])


def outbox_rows(state: Path) -> list[dict[str, Any]]:
    """Every row of the daemon's outbox, read-only (the daemon may still be running)."""
    db = sqlite3.connect(f"file:{state / 'outbox.sqlite3'}?mode=ro", uri=True, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM cards ORDER BY id")]
    finally:
        db.close()


def outbox_depth(state: Path) -> int:
    return sum(1 for r in outbox_rows(state) if r["state"] in ("pending", "sending"))


def _in_fallback(rig: DaemonRig, agent: str) -> bool:
    return bool(rig.pins()["agents"].get(agent, {}).get("in_fallback"))


def _move(rig: DaemonRig, line: str, agent: str, want: bool, timeout: float) -> float:
    """Append ``line`` and wait until the pin file shows ``agent`` in fallback == ``want``."""
    t = time.monotonic()
    rig.journal.append(line)
    rig.journal.flush()
    deadline = t + timeout
    while True:
        try:
            if _in_fallback(rig, agent) is want:
                return time.monotonic() - t
        except (OSError, ValueError):  # mid-rename on a slow disk: read again
            pass
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the pin of {agent} did not move within {timeout:g} s of the journal line "
                f"(in_fallback should be {want}): the tail is blocked"
            )
        time.sleep(0.005)


def run_outage(
    root: Path,
    *,
    down_s: float,
    mode: str = "refuse",
    backoff_max_s: float = 2.0,
    per_second: float = 20.0,
    up_cycles: int = 3,
    move_interval_s: float = 0.1,
    move_timeout_s: float = 10.0,
    drain_timeout_s: float = 120.0,
    progress: Callable[[str], None] = lambda _s: None,
) -> Outage:
    if mode not in OUTAGE_MODES:
        raise ValueError(f"unknown outage mode {mode!r}; use one of {OUTAGE_MODES}")
    rig = DaemonRig(root, config_text=config_for(backoff_max_s=backoff_max_s,
                                                 per_second=per_second))
    seen = Outage(mode=mode, expected={a: [] for a in AGENTS})
    rows: dict[int, dict[str, Any]] = {}

    def collect() -> None:
        """Merge the outbox's rows into ``rows``: it prunes all but the newest 1,000
        sent rows, so a long run reads it often enough to see every row once sent."""
        for row in outbox_rows(rig.state):
            rows[row["id"]] = row

    seq = 0
    try:
        rig.start()

        def cycle(agent: str, latencies: list[float]) -> None:
            nonlocal seq
            seq += 1
            latencies.append(_move(rig, fail_line(agent, seq), agent, True, move_timeout_s))
            seen.expected[agent].append("FALLBACK_FIRED")
            rig.journal.append(chatter_line(agent, seq))
            latencies.append(_move(rig, success_line(agent), agent, False, move_timeout_s))
            seen.expected[agent].append("RECOVERY")

        for k in range(up_cycles * len(AGENTS)):  # 1. Telegram up: the sender works
            cycle(AGENTS[k % len(AGENTS)], seen.pin_latency_up_s)
            time.sleep(move_interval_s)
        before = sum(len(v) for v in seen.expected.values())
        wait_until(lambda: len(rig.bot.messages) >= before, timeout=30, what="cards while up")
        progress(f"Telegram up: {before} cards delivered; taking it down for {down_s:g} s")

        # 2. Telegram down
        if mode == "refuse":
            rig.bot.go_down()
        elif mode == "hang":
            rig.bot.outage(Scripted.hang(down_s + 10))
        elif mode == "5xx":
            rig.bot.outage(Scripted.server_error(502))
        else:
            rig.bot.outage(Scripted.retry_after(1))
        delivered_before = len(rig.bot.messages)
        appended_before = rig.journal.appended
        t_down = time.monotonic()
        last_note = t_down
        i = 0
        collect()
        while time.monotonic() - t_down < down_s:
            cycle(AGENTS[i % len(AGENTS)], seen.pin_latency_down_s)
            i += 1
            time.sleep(move_interval_s)
            if time.monotonic() - last_note > 30:
                last_note = time.monotonic()
                progress(f"  {time.monotonic() - t_down:.0f} s down, outbox depth "
                         f"{outbox_depth(rig.state)}")
        seen.lines_during_outage = rig.journal.appended - appended_before
        seen.depth_at_end_of_outage = outbox_depth(rig.state)
        seen.delivered_during_outage = len(rig.bot.messages) - delivered_before
        progress(f"Telegram down for {time.monotonic() - t_down:.0f} s: "
                 f"outbox depth {seen.depth_at_end_of_outage}; bringing it back")

        # 3. back, but with the transient answers a recovering Bot API gives first
        rig.bot.script(Scripted.server_error(502), Scripted.retry_after(1),
                       Scripted.server_error(503))
        if mode == "refuse":
            rig.bot.come_up()
        else:
            rig.bot.outage(None)
        t_up = time.monotonic()
        expected = sum(len(v) for v in seen.expected.values())

        def drained() -> bool:
            collect()
            unsent = [r for r in rows.values() if r["state"] in ("pending", "sending")]
            return not unsent and len(rig.bot.messages) >= expected

        wait_until(drained, timeout=drain_timeout_s, what="the outbox to drain")
        seen.drain_s = time.monotonic() - t_up
        time.sleep(0.5)  # anything sent twice would arrive now
        assert rig.stop() == 0
        collect()
        seen.messages = rig.bot.messages
        seen.rows = [rows[k] for k in sorted(rows)]
        sends = [c for c in rig.bot.calls if c.method == "sendMessage"]
        seen.answered = [c.answered for c in sends]
        seen.unanswered_texts = {str(c.params.get("text")) for c in sends if c.answered == 0}
        seen.log_text = "\n".join(p.read_text() for p in rig.logs)
        return seen
    finally:
        rig.close()


def check_delivery(seen: Outage) -> None:
    """Every card the outbox accepted delivered exactly once, in order per agent; marked
    a possible repeat only if one of its sends really went unanswered."""
    expected_total = sum(len(v) for v in seen.expected.values())
    rows = seen.rows
    assert len(rows) == expected_total, (
        f"the outbox accepted {len(rows)} cards for {expected_total} moves")
    not_sent = [(r["id"], r["state"], r["last_error"]) for r in rows if r["state"] != "sent"]
    assert not not_sent, f"cards not delivered: {not_sent}"
    assert seen.delivered_during_outage == 0, "a card was delivered while Telegram was down"
    assert seen.depth_at_end_of_outage > 0, "no card piled up during the outage"

    messages = seen.messages
    assert len(messages) == len(rows), (
        f"{len(messages)} messages arrived for {len(rows)} cards: some arrived twice")
    ids = [r["message_id"] for r in rows]
    assert len(set(ids)) == len(ids), "two outbox rows claim the same message"
    by_id = {m.message_id: m for m in messages}
    labelled = "\n" + REPEAT_NOTE
    for row in rows:
        message = by_id.get(row["message_id"])
        assert message is not None, f"card #{row['id']} is marked sent but never arrived"
        hung = bool({row["text"], row["text"] + labelled} & seen.unanswered_texts)
        assert bool(row["ambiguous"]) is hung, (
            f"card #{row['id']} ambiguous={bool(row['ambiguous'])} but a send of it went "
            f"unanswered: {hung} ({row['last_error']})")
        assert message.text == row["text"] + (labelled if hung else ""), (
            f"card #{row['id']} arrived altered")

    # Global FIFO, hence order per agent: the outbox's order is the delivery order.
    assert [m.text for m in messages] == [by_id[r["message_id"]].text for r in rows], (
        "cards arrived out of order")
    assert [r["id"] for r in sorted(rows, key=lambda r: r["message_id"])] == [
        r["id"] for r in rows
    ], "cards arrived out of order"
    per_agent: dict[str, list[str]] = {a: [] for a in seen.expected}
    for row in rows:
        for agent in json.loads(row["agents"]):
            per_agent[agent].append(row["event"])
    assert per_agent == seen.expected, "per-agent card sequence differs from the moves made"

    for status in (502, 429, 503):
        assert status in seen.answered, f"the scripted {status} was never met"
    if seen.mode == "hang":
        assert seen.unanswered_texts, "no send hung during the outage"
    assert DEMO_TOKEN not in seen.log_text, "the bot token appeared in the daemon's log"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Telegram down for a while, then back.")
    p.add_argument("--down-seconds", type=float, default=600.0)
    p.add_argument("--mode", choices=OUTAGE_MODES, default="refuse",
                   help="how Telegram is down (default: connections refused)")
    p.add_argument("--backoff-max", type=float, default=60.0,
                   help="the sender's backoff cap (the production default is 60 s)")
    p.add_argument("--per-second", type=float, default=20.0,
                   help="cards per second to the chat once Telegram is back")
    p.add_argument("--move-interval", type=float, default=0.5,
                   help="seconds between fail/recover cycles (2 cards each)")
    p.add_argument("--dir", help="keep the run's files here")
    args = p.parse_args(argv)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="soak-telegram-"))
    root.mkdir(parents=True, exist_ok=True)
    seen = run_outage(root, down_s=args.down_seconds, mode=args.mode,
                      backoff_max_s=args.backoff_max,
                      per_second=args.per_second, move_interval_s=args.move_interval,
                      drain_timeout_s=args.backoff_max + 900,
                      progress=lambda s: print(s, flush=True))
    print(seen.summary())
    check_delivery(seen)
    print("every card delivered exactly once, in order per agent; marked a possible repeat "
          "only where a send really went unanswered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
