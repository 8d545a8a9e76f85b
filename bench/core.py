"""The pure decision core alone: ``decide`` per traffic event. Prints figures; asserts nothing.

    .venv/bin/python bench/core.py [--events 200000] [--repeat 3] [--profile]
                                   [--root DIR]

The stream is what the daemon builds from ``bench/tail.py``'s journal: its decision
lines and lane hints (one decision per second of journal time, a lane hint every fifth
decision), parsed with ``watcher.parse.lines.parse_line`` and classified with
``watcher.classify.evidence.to_event`` once, up front, as catch-up evidence (the tail bench's
entries are a day old). Then only ``decide`` is timed, over the tail bench's chains,
with the default ``Policy`` and ``now`` moving one second per event, each event's
state feeding the next, exactly as ``Watcher.apply`` threads it.

Why a separate bench: the tail bench mixes reader, parse, decide and fsync'd writes;
this isolates the core so a change to it shows up above the noise.

``--root DIR`` imports ``watcher`` from another tree (a copy of the package before a
change) for an A/B in the same process. ``--profile`` prints the cProfile top 25.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def build_events(n: int) -> list[Any]:
    from tail import CHAINS, DECISIONS, LANE  # bench/tail.py: the same lines and chains

    from watcher.classify.evidence import to_event
    from watcher.parse.lines import parse_line

    base = 1_795_000_000.0
    events: list[Any] = []
    i = 0
    while len(events) < n:
        line = DECISIONS[i % len(DECISIONS)]
        record = parse_line(line, ts=base + i)
        event = to_event(record, position=f"s=bench;i={i}", catch_up=True)
        if event is not None:
            events.append(event)
        if i % 5 == 4:
            lane = to_event(parse_line(LANE, ts=base + i + 0.5), catch_up=True)
            if lane is not None:
                events.append(lane)
        i += 1
    del CHAINS
    return events[:n]


def run(events: list[Any], start_now: float) -> tuple[float, int]:
    from tail import CHAINS

    from watcher.core.decide import decide, initial_state
    from watcher.core.policy import Policy

    policy = Policy()
    state = initial_state(CHAINS)
    now = start_now
    effects = 0
    t0 = time.perf_counter()
    for event in events:
        decided = decide(state, event, now, policy, jitter=0.0)
        state = decided.state
        effects += len(decided.effects)
        now += 1.0
    return time.perf_counter() - t0, effects


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    parser.add_argument("--profile", action="store_true", help="print the cProfile top 25")
    parser.add_argument(
        "--root",
        type=Path,
        default=HERE.parent,
        help="directory holding the watcher package to time",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(args.root.resolve()))
    import watcher

    events = build_events(args.events)
    start_now = 1_795_000_000.0 + 86_400.0
    kinds: dict[str, int] = {}
    for event in events:
        kinds[type(event).__name__] = kinds.get(type(event).__name__, 0) + 1
    print(f"package: {Path(watcher.__file__).parent}")
    print(f"events: {len(events):,} ({', '.join(f'{k} {v:,}' for k, v in sorted(kinds.items()))})")
    best = float("inf")
    effects = 0
    for _ in range(args.repeat):
        took, effects = run(events, start_now)
        best = min(best, took)
    rate = len(events) / best
    print(
        f"decide: {best:.3f} s best of {args.repeat}, {rate:,.0f} events/s, "
        f"{1e6 * best / len(events):.2f} us/event, {effects:,} effects"
    )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run(events, start_now)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
