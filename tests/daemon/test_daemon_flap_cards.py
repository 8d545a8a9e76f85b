"""The dedup's flap rule through the real watcher: once an agent flaps, its move cards
are suppressed as "flapping" while another agent's are sent, and each alert records
only which of its own agents were flapping (a scan of the whole fleet per card cost
0.4 ms at 6,000 agents)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.rigs.file_world import write_file_world
from watcher.classify.evidence import to_event
from watcher.config import load_settings
from watcher.core.events import Event
from watcher.parse.lines import parse_line
from watcher.shell.watcher import Watcher

HEAD = "[model-fallback/decision] model fallback decision: decision="
CHAINS = {"flappy": ["ollama/p1", "ollama/f1"], "steady": ["ollama/p2", "ollama/f2"],
          "quiet": ["ollama/p3", "ollama/f3"]}
POLICY = "[policy]\ncooldown = false\nfall = 1\nflap_full_scale = 4\n"


def line(verdict: str, model: str, i: int) -> Event:
    text = (f"{HEAD}candidate_{verdict} requested={model} candidate={model} "
            f"reason={'overloaded' if verdict == 'failed' else 'unknown'} next=none"
            + (" detail=503 overloaded" if verdict == "failed" else ""))
    event = to_event(parse_line(text, ts=None), position=f"i={i}")
    assert event is not None
    return event


def suppressed(watcher: Watcher, reason: str, event: str) -> float:
    value = watcher.metrics.registry.get_sample_value(
        "failover_watcher_alerts_suppressed_total", {"reason": reason, "event": event}
    )
    return value or 0


def test_a_flapping_agents_cards_are_suppressed_and_record_only_their_agents(
    tmp_path: Path,
) -> None:
    watcher = Watcher.open(load_settings(write_file_world(tmp_path, CHAINS, extra_toml=POLICY)))
    recorded: list[Any] = []
    staged = watcher.snapshot.write

    def spy(state: Any, position: Any, pending: Any, *rest: Any, **kw: Any) -> Any:
        recorded.extend(data.get("_flapping") for _, data in pending.alerts)
        return staged(state, position, pending, *rest, **kw)

    watcher.snapshot.write = spy  # type: ignore[method-assign]
    try:
        now = 1_795_000_000.0
        for i, verdict in enumerate(["failed", "succeeded"]):  # two pin changes
            watcher.apply([line(verdict, "ollama/p1", i)], now=now)
            now += 60.0
        assert not watcher.state.agents["flappy"].flapping
        recorded.clear()
        # The third change makes it flap: its move card is suppressed, steady's is sent.
        watcher.apply([line("failed", "ollama/p1", 2), line("failed", "ollama/p2", 3)], now=now)
        assert watcher.state.agents["flappy"].flapping
        assert watcher._flapping_among(["steady", "flappy", "gone"]) == ["flappy"]
        assert suppressed(watcher, "flapping", "FALLBACK_FIRED") == 1
        events = [c.event for c in watcher.intake.outbox.cards()]
        assert events.count("FLAPPING_START") == 1
        fired = [c.text for c in watcher.intake.outbox.cards() if c.event == "FALLBACK_FIRED"]
        assert len(fired) == 2 and "steady" in fired[-1]  # flappy's first, steady's now
        # Each alert recorded which of its own agents flapped: flappy's two, steady's one.
        assert recorded == [["flappy"], ["flappy"], []]
    finally:
        watcher.intake.outbox.close()
