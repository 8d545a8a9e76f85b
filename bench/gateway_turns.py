"""Benchmark: a throttled primary's turn time on the real OpenClaw gateway, with and
without the fallback-pin plugin steering, side by side in one gateway run.

One gateway (``.gateway/``, which ``scripts/bootstrap --test`` installs) with the
plugin loaded, on the loopback fake model server. Two agents share one chain,
``tp/busy`` (always 429, ``Retry-After: --retry-after``) then ``fb/one`` (answers):

- ``stock``: no pin file, so the plugin stands down and the gateway serves as stock.
  Agent ``dflt`` keeps the gateway's default provider retries (no ``settings.json``);
  agent ``tuned`` has ``{"retry": {"provider": {"maxRetries": 0}}}``, the README's
  advice.
- ``pinned``: a fresh pin file says both agents are in fallback on ``fb/one``, so the
  plugin moves the primary attempt there.

Per turn it prints the CLI's wall time, and from the fake's request log (each turn's
requests are told apart by a session tag in the message): the requests made to the
primary, and the time from the turn's start to the answer that served it (which
includes the ``openclaw agent`` CLI starting, about 1.5 s, and the gateway's own work
before the first model call).

    .venv/bin/python bench/gateway_turns.py [--turns 3] [--default-turns 1]
                                           [--retry-after 30]

``--default-turns 0`` skips the slow stock default-retries turns (minutes each).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.gateway.rig import GatewayRig, Turn
from watcher.fakes.models import FakeModelServer, Reply

PRIMARY, FALLBACK = "tp/busy", "fb/one"
AGENTS = {"dflt": (PRIMARY, [FALLBACK]), "tuned": (PRIMARY, [FALLBACK])}


def pin_doc() -> str:
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    agents = {a: {"primary": PRIMARY, "current_serving": FALLBACK, "in_fallback": True,
                  "chain": [PRIMARY, FALLBACK]} for a in AGENTS}
    return json.dumps({"schema_version": 1, "updated_at": at, "heartbeat_at": at,
                       "agents": agents, "models": {}})


def row(label: str, turns: list[Turn]) -> str:
    wall = [t.elapsed_s for t in turns]
    primary = [sum(1 for m in t.models if m == PRIMARY) for t in turns]
    served = []  # turn start to the fake's answer that served it (requests log the end)
    for t in turns:
        answered = [r.received_at for r in t.requests if f"{r.provider}/{r.model}" == FALLBACK]
        served.append(answered[-1] - t.started_at if answered else float("nan"))
    ok = sum(t.ok for t in turns)
    return (f"{label:<34} {len(turns):>5} {ok:>4} {statistics.median(wall):>9.2f} "
            f"{max(wall):>8.2f} {statistics.median(primary):>8} "
            f"{statistics.median(served):>12.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=3, help="turns per fast configuration")
    ap.add_argument("--default-turns", type=int, default=1,
                    help="turns of stock with the gateway's default retries (slow)")
    ap.add_argument("--retry-after", default="30", help="the primary's Retry-After")
    args = ap.parse_args(argv)

    fake = FakeModelServer(default=Reply.ok("ok")).start_in_thread()
    fake.script("busy", traffic=Reply.throttle(args.retry_after))
    results: list[tuple[str, list[Turn]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        root = Path(tmp)
        pin = root / "fallback-state.json"
        rig = GatewayRig(root / "gw", AGENTS, fake, pin, default_retries=frozenset({"dflt"}))
        try:
            rig.start()
            print(f"gateway ready in {rig.started_in_s:.1f} s", flush=True)
            rig.turn("tuned", "warm up")  # the first turn after start-up is slower
            stock_tuned = [rig.turn("tuned") for _ in range(args.turns)]
            stock_default = [rig.turn("dflt", timeout=900) for _ in range(args.default_turns)]
            pin.write_text(pin_doc())
            pinned_tuned = [rig.turn("tuned") for _ in range(args.turns)]
            pinned_default = [rig.turn("dflt") for _ in range(args.turns)]
        finally:
            rig.stop()
            fake.stop_in_thread()
    results = [("stock, default retries", stock_default),
               ("stock, maxRetries 0", stock_tuned),
               ("plugin pinned, default retries", pinned_default),
               ("plugin pinned, maxRetries 0", pinned_tuned)]
    print(f"\nthrottled primary {PRIMARY} (429, Retry-After {args.retry_after}), "
          f"fallback {FALLBACK}; medians")
    print(f"{'configuration':<34} {'turns':>5} {'ok':>4} {'wall s':>9} {'max s':>8} "
          f"{'primary':>8} {'to answer s':>12}")
    for label, turns in results:
        if turns:
            print(row(label, turns))
    fast = statistics.median(t.elapsed_s for t in pinned_tuned)
    for label, turns in results[:2]:
        if turns:
            print(f"ratio {label} / plugin pinned: "
                  f"{statistics.median(t.elapsed_s for t in turns) / fast:.1f}x wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
