"""Clock jumps: a wall clock stepped hours forward or back shortens no
cooldown and fails nothing back early.

An in-process ``Watcher`` on a file source runs on a ``SteadyClock`` whose wall and
steady readings the test controls (``wall`` is what ``date -s`` moves, ``steady`` only
moves with real elapsed time), wired exactly as ``watcher.shell.main.run`` wires it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import time_machine

from tests.rigs.file_world import write_file_world
from watcher.classify.evidence import to_event
from watcher.config import load_settings
from watcher.core.events import Tick
from watcher.core.evidence import ProbeResult
from watcher.parse.lines import parse_line
from watcher.pins.schema import from_iso
from watcher.shell.clock import SteadyClock, quiet, saved_anchor, steady_seconds
from watcher.shell.watcher import SNAPSHOT_FILENAME, Watcher

PRIMARY = "ollama/glm-5.1:cloud"
FALLBACK = "deepseek/deepseek-v4-flash"
CHAINS = {
    "nexus": [PRIMARY, FALLBACK, "ollama/glm-5:cloud"],
    "hermes": ["ollama/kimi-k2.5:cloud", PRIMARY, "ollama/glm-5:cloud"],
}
THROTTLE = (
    "[model-fallback/decision] model fallback decision: decision=candidate_failed "
    f"requested={PRIMARY} candidate={PRIMARY} reason=rate_limit "
    f"next={FALLBACK} detail=429 rate_limit_exceeded"
)
HOUR = 3600.0
BOOT = "boot-1"
COOLDOWN_S = 300.0  # cooldown_base_s below; jitter is at most 10 %


@dataclass
class Clocks:
    """The two readings a host has: the wall clock (steps) and the steady clock."""

    wall: float = 1_780_000_000.0
    steady: float = 5_000.0

    def elapse(self, seconds: float) -> None:
        """Real time passes: both move."""
        self.wall += seconds
        self.steady += seconds

    def step(self, seconds: float) -> None:
        """``date -s``: only the wall clock moves."""
        self.wall += seconds

    def clock(self, saved: dict | None = None, boot_id: str = BOOT) -> SteadyClock:  # type: ignore[type-arg]
        return SteadyClock(
            wall=lambda: self.wall, steady=lambda: self.steady, boot_id=boot_id, saved=saved
        )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_file_world(
        tmp_path,
        CHAINS,
        extra_toml=f"[policy]\ncooldown_base_s = {COOLDOWN_S}\nrise = 2\nprobe_interval_s = 30\n",
    )


class Daemon:
    """A ``Watcher`` wired like ``run()`` does, with helpers to feed it evidence."""

    def __init__(self, config: Path, clocks: Clocks, clock: SteadyClock) -> None:
        self.clocks = clocks
        self.clock = clock
        self.watcher = Watcher.open(load_settings(config), clock=clock)
        clock.bind(self.watcher.metrics.clock, lambda: self.watcher.state)
        self.probes = 0

    def throttle(self) -> None:
        """A 429 in the journal, stamped (as journald does) with the wall clock."""
        event = to_event(parse_line(THROTTLE, ts=self.clocks.wall), position="p")
        assert event is not None
        self.watcher.apply([event])

    def probe_ok(self) -> list[str]:
        self.probes += 1
        result = ProbeResult(
            model=PRIMARY,
            ok=True,
            started_at=self.clocks.wall,  # the probe client stamps the wall clock
            latency_s=0.2,
            probe_id=f"probe-{self.probes}",
        )
        return self.watcher.apply([result])

    def tick(self) -> list[str]:
        return self.watcher.apply([Tick()])

    def in_fallback(self) -> bool:
        return self.watcher.state.agents["nexus"].in_fallback

    def cooldown_left(self) -> float:
        until = self.watcher.state.models[PRIMARY].cooldown_until
        assert until is not None
        return until - self.clock()

    def transitions(self) -> float:
        total = 0.0
        for family in self.watcher.metrics.registry.collect():
            if family.name == "failover_watcher_transitions":
                total += sum(s.value for s in family.samples if s.name.endswith("_total"))
        return total

    def jumps(self, direction: str) -> float:
        value = self.watcher.metrics.registry.get_sample_value(
            "failover_watcher_clock_jumps_total", {"direction": direction}
        )
        return value or 0.0

    def close(self) -> None:
        self.watcher.intake.outbox.close()


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def daemon(config: Path, clocks: Clocks) -> Iterator[Daemon]:
    d = Daemon(config, clocks, clocks.clock())
    yield d
    d.close()


def test_a_forward_step_of_hours_shortens_no_cooldown_and_fails_nothing_back(
    daemon: Daemon, clocks: Clocks
) -> None:
    daemon.throttle()
    assert daemon.in_fallback()
    left = daemon.cooldown_left()
    assert COOLDOWN_S * 0.9 <= left <= COOLDOWN_S * 1.1

    clocks.elapse(10)
    clocks.step(3 * HOUR)  # NTP step / date -s / VM resume
    daemon.tick()
    assert daemon.jumps("forward") == 1
    assert daemon.cooldown_left() >= left - 10 - 1e-6  # shrank by real time only
    for _ in range(3):  # probes answer 200 but the cooldown is still running
        assert not any("succeeded;" in s and "/2" in s for s in daemon.probe_ok())
        clocks.elapse(5)
        daemon.tick()
    assert daemon.in_fallback()
    assert daemon.jumps("forward") == 1  # one step, counted once

    # The pin file says the truth about the remaining time, on the steady timeline.
    pins = json.loads(daemon.watcher.pins.path.read_text())
    until = from_iso(pins["agents"]["nexus"]["transient_throttle_until"])
    assert until is not None and until - daemon.clock() >= left - 30 - 1.0


def test_a_backward_step_neither_crashes_nor_refires_cards_and_only_lengthens(
    daemon: Daemon, clocks: Clocks
) -> None:
    daemon.throttle()
    fired = daemon.transitions()
    left = daemon.cooldown_left()

    clocks.elapse(20)
    clocks.step(-3 * HOUR)
    sentences = daemon.tick()
    assert sentences  # decided, did not crash
    assert daemon.jumps("backward") == 1
    assert daemon.cooldown_left() >= left - 20  # longer, never shorter
    assert daemon.transitions() == fired  # no card fired again
    for _ in range(5):
        clocks.elapse(30)
        daemon.tick()
        daemon.probe_ok()
    assert daemon.in_fallback()
    assert daemon.transitions() == fired

    # A fresh 429 after the step is dated by the (now earlier) wall clock and still
    # gets a full cooldown from now.
    daemon.throttle()
    assert daemon.cooldown_left() >= COOLDOWN_S * 0.9 - 1e-6


def test_failback_waits_for_the_real_cooldown_and_the_probe_streak_through_jumps(
    daemon: Daemon, clocks: Clocks
) -> None:
    daemon.throttle()
    started = clocks.steady
    left = daemon.cooldown_left()
    remaining = left
    steps = [2 * HOUR, -5 * HOUR, 4 * HOUR, -1 * HOUR, 6 * HOUR, 0.0]
    failed_back_at: float | None = None
    i = 0
    while failed_back_at is None and clocks.steady - started < 12 * HOUR:
        clocks.elapse(15)
        clocks.step(steps[i] if i < len(steps) else 0.0)  # jumps first, then calm
        i += 1
        daemon.tick()
        now_left = max(0.0, daemon.cooldown_left())
        assert now_left >= remaining - 15 - 1e-6, "the cooldown shrank faster than real time"
        remaining = now_left
        daemon.probe_ok()
        if not daemon.in_fallback():
            failed_back_at = clocks.steady
    # Backward steps lengthen the cooldown, so the failback comes late, never early:
    # the cooldown really elapsed, then two probes in a row (the hysteresis).
    assert failed_back_at is not None, "never failed back once the clock was calm"
    assert failed_back_at - started >= left + 15
    assert daemon.probes >= 2


def test_the_clock_rejoins_a_forward_step_once_nothing_is_timed(
    daemon: Daemon, clocks: Clocks
) -> None:
    daemon.throttle()
    clocks.step(2 * HOUR)
    daemon.tick()
    assert daemon.clock.offset_s == pytest.approx(2 * HOUR)
    gauge = daemon.watcher.metrics.registry.get_sample_value(
        "failover_watcher_clock_offset_seconds"
    )
    assert gauge == pytest.approx(2 * HOUR)
    clocks.elapse(COOLDOWN_S * 1.2)  # the cooldown really ends
    daemon.tick()
    daemon.probe_ok()
    clocks.elapse(31)
    daemon.tick()
    daemon.probe_ok()
    assert not daemon.in_fallback()
    # Failed back, but the agent's pin change stays in its flap window: still timed.
    assert not quiet(daemon.watcher.state, daemon.clock())
    assert daemon.clock.offset_s == pytest.approx(2 * HOUR)
    clocks.elapse(HOUR + 60)  # flap window (1 h) passes; the tick prunes it
    daemon.tick()
    daemon.tick()
    assert daemon.clock.offset_s == 0.0
    assert daemon.clock() == clocks.wall


def test_a_forward_step_while_stopped_counts_only_the_steady_time_on_restart(
    config: Path, clocks: Clocks
) -> None:
    first = Daemon(config, clocks, clocks.clock())
    first.throttle()
    left = first.cooldown_left()
    first.close()
    snapshot = Path(first.watcher.state_dir) / SNAPSHOT_FILENAME
    saved = saved_anchor(snapshot)
    assert saved is not None and saved["boot_id"] == BOOT

    clocks.elapse(30)  # stopped for 30 s of real time ...
    clocks.step(4 * HOUR)  # ... during which the wall clock was stepped
    second = Daemon(config, clocks, clocks.clock(saved=saved))
    try:
        assert second.in_fallback()
        assert second.cooldown_left() == pytest.approx(left - 30, abs=1e-6)
        assert second.jumps("forward") == 1
        second.probe_ok()
        second.probe_ok()
        assert second.in_fallback()
    finally:
        second.close()


def test_after_a_reboot_the_wall_clock_is_taken_as_it_is(config: Path, clocks: Clocks) -> None:
    first = Daemon(config, clocks, clocks.clock())
    first.throttle()
    first.close()
    saved = saved_anchor(Path(first.watcher.state_dir) / SNAPSHOT_FILENAME)
    clocks.steady = 12.0  # the steady clock restarted with the host
    clocks.wall += 2 * HOUR
    clock = clocks.clock(saved=saved, boot_id="boot-2")
    assert clock() == clocks.wall
    assert clock.jumps == {"forward": 0, "backward": 0}


def test_small_steps_never_add_up_to_more_than_the_threshold() -> None:
    clocks = Clocks()
    clock = clocks.clock()
    start = clock()
    for _ in range(100):
        clocks.step(1.5)  # each under the 2 s threshold
        clock()
    assert clock() - start <= clock.threshold_s + 1e-9
    assert clock.jumps["forward"] == 1


def test_the_steady_clock_ignores_a_time_machine_jump_of_the_real_wall_clock() -> None:
    """The default wiring (time.time + CLOCK_BOOTTIME), not injected callables."""
    with time_machine.travel(time.time(), tick=True) as traveller:
        clock = SteadyClock()
        before, steady_before = clock(), steady_seconds()
        traveller.shift(6 * HOUR)
        assert time.time() - before >= 6 * HOUR
        after, steady_after = clock(), steady_seconds()
        assert after - before <= (steady_after - steady_before) + 0.5
        assert clock.jumps["forward"] == 1
        traveller.shift(-12 * HOUR)
        assert clock() <= time.time() + 0.5  # a backward step is followed
        assert clock.jumps["backward"] == 1


def test_a_bad_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="threshold_s"):
        SteadyClock(threshold_s=0)
