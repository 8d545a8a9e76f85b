"""Cost against fleet size: does a decision, a pin write, and memory stay flat as the
agents grow? Prints figures; asserts nothing.

    .venv/bin/python bench/scale.py [--agents 6,60,600,6000] [--events 100000]
                                    [--writes 20] [--seed 1] [--root DIR]

``--root DIR`` times the watcher package of another checkout (``git worktree add DIR
<commit>``), for a before/after in the same sitting.

For each fleet size N, in a child process of its own (so each RssAnon is its own):

- N agents, each with a three-model chain drawn from a pool of max(3, N/2) models on
  five providers (so a model serves about six agents, as in a real fleet);
- ``--events`` live traffic events over random agents: one of the agent's chain
  members failing (throttle, outage) or succeeding, as parsed journal lines, fed
  through ``decide`` with ``now`` moving 1 s per event. Printed: **decide µs/event**;
- then the pin write a batch pays, as the daemon does it: 20 more events, then
  ``PinView.render`` and ``PinStore.write_keeping_edits`` (text, staged file, fsyncs,
  rename), median of ``--writes``; printed: **pin write per batch** (the target), the
  **whole file** written from nothing (the first write after a start), and the **pin
  file size**;
- **RssAnon** from ``/proc/self/status`` after the events.

Two workloads, each over every fleet size. *Whole fleet*: traffic over every agent,
so a bigger fleet has many more distinct models failing, and more of its events are
transitions (the "cards per 1k events" column says how many): its µs/event mixes the
fleet's size with a busier incident. *One incident*: the same traffic over the first
few agents' chains, in fleets of every size: the cost of the state's size alone.

The ratios against the smallest fleet are printed side by side, from the same run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HEAD = "[model-fallback/decision] model fallback decision: decision="


def fleet(n: int, rng: random.Random) -> dict[str, list[str]]:
    pool = [f"prov{k % 5}/model-{k}" for k in range(max(3, n // 2))]
    return {f"agent-{i:05d}": rng.sample(pool, 3) for i in range(n)}


def lines(chains: dict[str, list[str]], count: int, rng: random.Random, hot: int) -> Any:
    agents = list(chains)[:hot] if hot else list(chains)
    for _ in range(count):
        chain = chains[rng.choice(agents)]
        k = rng.randrange(3)
        model, nxt = chain[k], chain[k + 1] if k < 2 else "none"
        roll = rng.random()
        if roll < 0.45:
            yield (f"{HEAD}candidate_failed requested={chain[0]} candidate={model} "
                   f"reason=rate_limit next={nxt} detail=429 rate limit exceeded")
        elif roll < 0.55:
            yield (f"{HEAD}candidate_failed requested={chain[0]} candidate={model} "
                   f"reason=server_error next={nxt} detail=503 upstream unavailable")
        else:
            yield (f"{HEAD}candidate_succeeded requested={chain[0]} candidate={model} "
                   "reason=unknown next=none")


def rss_anon_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return -1


def child(n: int, events: int, writes: int, seed: int, hot: int, root: Path) -> dict[str, Any]:
    sys.path.insert(0, str(root))
    from watcher.classify.evidence import to_event
    from watcher.core.decide import decide, initial_state
    from watcher.core.policy import Policy
    from watcher.parse.lines import parse_line
    from watcher.pins.store import PinStore
    try:
        from watcher.pins.view import PinView
    except ImportError:  # a checkout from before PinView (--root): the whole file each time
        from watcher.pins.view import to_pinfile

        class PinView:  # type: ignore[no-redef]
            def render(self, state: Any, now: float) -> tuple[Any]:
                return (to_pinfile(state, now),)

    rng = random.Random(seed)
    chains = fleet(n, rng)
    policy = Policy()
    state = initial_state(chains)
    now = 1_795_000_000.0
    took = 0.0
    done = 0
    cards = 0
    chunk = 10_000
    while done < events:  # built a chunk at a time: the events list must not be the RSS
        batch = []
        for i, line in enumerate(lines(chains, min(chunk, events - done), rng, hot)):
            event = to_event(parse_line(line, ts=now + done + i), position=f"i={done + i}")
            if event is not None:
                batch.append(event)
        t0 = time.perf_counter()
        for event in batch:
            decided = decide(state, event, now, policy, jitter=0.0)
            state = decided.state
            cards += sum(1 for e in decided.effects if type(e).__name__ == "EnqueueAlert")
            now += 1.0
        took += time.perf_counter() - t0
        done += chunk
    rss = rss_anon_kib()
    with tempfile.TemporaryDirectory(dir=HERE) as tmp:
        store = PinStore(Path(tmp) / "fallback-state.json")
        store.read()
        full = []
        for i in range(3):  # a whole file from nothing: the first write after a start
            t0 = time.perf_counter()
            store.write_keeping_edits(*PinView().render(state, now + i))
            full.append(time.perf_counter() - t0)
        view = PinView()
        view.render(state, now)
        times = []
        more = lines(chains, writes * 20, rng, hot)
        for _ in range(writes):  # the daemon's path: a batch of 20 events, then the write
            for _ in range(20):
                event = to_event(parse_line(next(more), ts=now), position="more")
                if event is not None:
                    state = decide(state, event, now, policy, jitter=0.0).state
                now += 1.0
            t0 = time.perf_counter()
            store.write_keeping_edits(*view.render(state, now))
            times.append(time.perf_counter() - t0)
        size = (Path(tmp) / "fallback-state.json").stat().st_size
    in_fallback = sum(1 for a in state.agents.values() if a.serving != a.chain[0])
    return {
        "agents": n,
        "models": len(state.models),
        "events": events,
        "us_per_event": 1e6 * took / events,
        "pin_write_ms": 1e3 * statistics.median(times),
        "pin_full_ms": 1e3 * statistics.median(full),
        "pin_bytes": size,
        "rss_anon_mib": rss / 1024,
        "in_fallback": in_fallback,
        "cards_per_1k": 1000 * cards / events,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", default="6,60,600,6000")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--root", type=Path, default=ROOT,
        help="directory holding the watcher package to time (a checkout before a change)",
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hot", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(
            child(args.child, args.events, args.writes, args.seed, args.hot, args.root.resolve())
        ))
        return 0
    sizes = [int(x) for x in args.agents.split(",")]
    for hot, title in (
        (0, "Traffic over the whole fleet (the more agents, the more distinct models fail: "
            "the card rate grows with N)"),
        (min(sizes), f"One incident in a growing fleet (traffic over {min(sizes)} agents' "
                     "chains only: the state's size alone)"),
    ):
        table(sizes, args, hot, title)
    return 0


def table(sizes: list[int], args: argparse.Namespace, hot: int, title: str) -> None:
    rows = []
    for n in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(n), "--events", str(args.events),
             "--writes", str(args.writes), "--seed", str(args.seed), "--hot", str(hot),
             "--root", str(args.root)],
            capture_output=True, text=True, check=True,
        ).stdout
        rows.append(json.loads(out))
    base = rows[0]
    print(f"\n{title}; {args.events:,} live events per fleet, seed {args.seed}; "
          f"package {args.root}")
    print("| agents | models | decide µs/event | × smallest | pin write per batch, ms | "
          "whole file, ms | pin file | RssAnon MiB | in fallback at end | cards per 1k events |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['agents']:,} | {r['models']:,} | {r['us_per_event']:.1f} | "
              f"{r['us_per_event'] / base['us_per_event']:.2f} | {r['pin_write_ms']:.2f} | "
              f"{r['pin_full_ms']:.1f} | "
              f"{r['pin_bytes'] / 1024:,.0f} KiB | {r['rss_anon_mib']:.1f} | "
              f"{r['in_fallback']:,} | {r['cards_per_1k']:.0f} |")


if __name__ == "__main__":
    raise SystemExit(main())
