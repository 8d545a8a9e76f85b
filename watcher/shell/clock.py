"""``SteadyClock``: the daemon's ``now``, which a wall-clock step cannot fast-forward.

Why: the core keeps absolute epoch deadlines (``cooldown_until``, hold ``until``,
probe due times) in its state, the snapshot and the pin file. If ``now`` were plain
``time.time()``, an NTP step, ``date -s`` or a VM resume that moves the wall clock
three hours forward would end every cooldown at once: an early failback onto a
throttled model, the failure the cooldowns exist to prevent.

How it counts: wall time anchored to the steady clock, ``anchor_wall + (steady() -
anchor_steady)``. The steady clock is ``CLOCK_BOOTTIME`` where the platform has it
(else ``time.monotonic``): steps never move it, NTP slews move it exactly as they move
the wall clock (so wall and steady agree to the microsecond while nothing steps), and
BOOTTIME keeps counting while the host is suspended (that time really passed).

Policy when the two disagree by more than ``threshold_s`` (a warning is logged and
``failover_watcher_clock_jumps_total{direction}`` counts it once per jump):

- **Wall clock ahead (a forward step)**: ``now`` stays on the steady timeline, so no
  cooldown or hold shrinks by more than the time that really elapsed. It *rejoins* the
  wall clock only when nothing is being timed (``quiet``: no model failing or cooling
  down, no hold with an end, no agent flapping or with recent pin changes in its flap
  window), because then a jump changes no decision. Until then the times the daemon
  writes (pin file ``updated_at``/``transient_throttle_until``/``cooldown_until``,
  card times, the audit) are on the steady timeline, i.e. behind the wall clock by the
  step: durations stay right, the printed clock time is early. That is the trade-off;
  the offset is exported as ``failover_watcher_clock_offset_seconds``.
- **Wall clock behind (a backward step)**: ``now`` follows the wall clock at once and
  the anchor moves. Running deadlines then last longer by the step (the safe
  direction: a cooldown is never shortened), and journal timestamps, which the journal
  stamps with the wall clock, keep agreeing with ``now`` (staying ahead would date a
  fresh 429 hours in the past and give it a cooldown that has already ended).
- Within ``threshold_s`` the wall clock is used as it is, without moving the anchor,
  so small steps can never add up to more than ``threshold_s``.

Across a restart in the same boot (same ``/proc/sys/kernel/random/boot_id``) the
anchor saved in ``core-state.json`` is resumed: a forward step made while the daemon
was stopped is treated like one made while it ran (the downtime counts only as much
as the steady clock says). After a reboot the steady clock restarts, so the wall
clock is taken as it is.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from watcher.core.state import State
from watcher.support.metrics import ClockMetrics

log = logging.getLogger("watcher.shell.clock")

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
DEFAULT_THRESHOLD_S = 2.0


class _Counter(Protocol):
    def labels(self, *values: str) -> Any: ...


class _Gauge(Protocol):
    def set(self, value: float) -> None: ...


def steady_seconds() -> float:
    """Seconds on a clock that steps never move: BOOTTIME (counts suspend) or monotonic."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is not None:
        return time.clock_gettime(boottime)
    return time.monotonic()  # pragma: no cover - non-Linux


def read_boot_id(path: Path = BOOT_ID_PATH) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except OSError:  # pragma: no cover - not Linux, or /proc hidden
        return None


def saved_anchor(snapshot_path: Path) -> dict[str, Any] | None:
    """The ``clock`` anchor a previous run saved in ``core-state.json``, if readable."""
    try:
        data = json.loads(snapshot_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    anchor = data.get("clock") if isinstance(data, dict) else None
    return anchor if isinstance(anchor, dict) else None


def quiet(state: State, now: float) -> bool:
    """Nothing in ``state`` is being timed, so moving ``now`` forward changes no decision."""
    for health in state.models.values():
        if health.failing or health.in_cooldown(now):
            return False
    for agent in state.agents.values():
        held_until = agent.hold is not None and agent.hold.until is not None
        if held_until or agent.flapping or agent.transitions:
            return False
    return True


class SteadyClock:
    """A callable ``() -> epoch seconds`` for ``Watcher.open(..., clock=...)``; see the module doc.

    ``wall``, ``steady`` and ``boot_id`` are injectable so tests can step the wall
    clock without sleeping. ``may_rejoin`` is asked, while the wall clock is ahead,
    whether it is safe to jump forward to it (the daemon passes ``quiet`` over its
    state); without it the clock never rejoins a forward step.
    """

    def __init__(
        self,
        *,
        wall: Callable[[], float] = time.time,
        steady: Callable[[], float] = steady_seconds,
        threshold_s: float = DEFAULT_THRESHOLD_S,
        boot_id: str | None = None,
        saved: dict[str, Any] | None = None,
    ) -> None:
        if threshold_s <= 0:
            raise ValueError(f"threshold_s must be > 0, got {threshold_s}")
        self._wall = wall
        self._steady = steady
        self.threshold_s = threshold_s
        self.boot_id = boot_id
        self.may_rejoin: Callable[[float], bool] | None = None
        self.jumps = {"forward": 0, "backward": 0}
        self.offset_s = 0.0  # wall minus the value last returned
        self._counter: _Counter | None = None
        self._gauge: _Gauge | None = None
        self._ahead = False  # a forward step is being held off
        s, w = steady(), wall()
        self._anchor = (w, s)
        resumed = self._resume(saved, s)
        if resumed is not None:
            self._anchor = (resumed, s)
            log.info("clock: resumed the steady timeline saved by the last run in this boot")

    def _resume(self, saved: dict[str, Any] | None, s: float) -> float | None:
        if not saved or self.boot_id is None or saved.get("boot_id") != self.boot_id:
            return None
        try:
            then_wall, then_steady = float(saved["wall"]), float(saved["steady"])
        except (KeyError, TypeError, ValueError):
            return None
        if s < then_steady:  # cannot happen in one boot; distrust the record
            return None
        return then_wall + (s - then_steady)

    def attach(self, jumps: _Counter, offset: _Gauge | None = None) -> None:
        """Count jumps in ``jumps`` (labelled by direction), including any seen already."""
        self._counter, self._gauge = jumps, offset
        for direction, n in self.jumps.items():
            if n:
                jumps.labels(direction).inc(n)
        if offset is not None:
            offset.set(self.offset_s)

    def bind(self, metrics: ClockMetrics, current_state: Callable[[], State]) -> None:
        """Wire to a daemon: count jumps in its metrics; rejoin a forward step when its
        state is ``quiet``."""
        self.attach(metrics.jumps, metrics.offset)
        self.may_rejoin = lambda now: quiet(current_state(), now)

    def anchor(self) -> dict[str, Any]:
        """What ``core-state.json`` keeps so a restart in this boot resumes the timeline."""
        wall0, steady0 = self._anchor
        return {"wall": wall0, "steady": steady0, "boot_id": self.boot_id}

    def __call__(self) -> float:
        w, s = self._wall(), self._steady()
        wall0, steady0 = self._anchor
        on_steady = wall0 + (s - steady0)
        drift = w - on_steady
        if drift > self.threshold_s:
            if not self._ahead:
                self._ahead = True
                self._count("forward", drift)
            if self.may_rejoin is not None and self.may_rejoin(on_steady):
                log.warning(
                    "clock: nothing is being timed; rejoining the wall clock %.1f s ahead",
                    drift,
                )
                self._ahead = False
                return self._emit(w, w, s)
            return self._emit(on_steady, w)
        if drift < -self.threshold_s:
            self._count("backward", drift)
            self._ahead = False
            return self._emit(w, w, s)
        if self._ahead:
            log.info("clock: the wall clock is back in step with the steady clock")
            self._ahead = False
        return self._emit(w, w)

    def _emit(self, now: float, w: float, reanchor_at: float | None = None) -> float:
        if reanchor_at is not None:
            self._anchor = (w, reanchor_at)
        self.offset_s = w - now
        if self._gauge is not None:
            self._gauge.set(self.offset_s)
        return now

    def _count(self, direction: str, drift: float) -> None:
        self.jumps[direction] += 1
        if self._counter is not None:
            self._counter.labels(direction).inc()
        if direction == "forward":
            log.warning(
                "clock: the wall clock jumped %.1f s ahead of the steady clock; cooldowns and "
                "holds keep counting real elapsed time until nothing is being timed",
                drift,
            )
        else:
            log.warning(
                "clock: the wall clock jumped %.1f s back; following it (running cooldowns "
                "and holds last that much longer, never shorter)",
                -drift,
            )
