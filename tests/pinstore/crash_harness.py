"""SIGKILL a pin writer at random moments, many times, and check the files each time.

Run as ``python -m tests.pinstore.crash_harness DIR KILLS SEED``; prints a JSON summary
and exits 1 at the first violation. It forks writer children (fork is cheap once the
modules are imported) so that a thousand kills take seconds, not minutes.

Each child loops: lock, read, bump a counter kept in the pin file, write (durable),
then acknowledge the counter on a pipe. After each kill the parent checks that:
- the pin file and ``last-good`` parse and validate (never torn, never invalid);
- the counter on disk is the last acknowledged one or the one after it (nothing
  acknowledged is lost);
- a fresh store reports no hand edit (a crash is never mistaken for an operator) and
  leaves no temp file behind.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

from watcher.pins import schema as pinfile
from watcher.pins.schema import AgentPin, Hold, ModelHealthRecord, PinFile
from watcher.pins.store import PIN_FILENAME, NoChange, PinStore

CHAIN = ["ollama/kimi-k2.5:cloud", "deepseek/deepseek-v4-flash", "ollama/qwen3:8b"]


def state(counter: int) -> PinFile:
    """A state whose size varies with the counter, so a torn write would show."""
    agents = {}
    for i in range(counter % 9 + 1):
        serving = CHAIN[(counter + i) % 3]
        agents[f"agent-{i}"] = AgentPin(
            primary=CHAIN[0],
            current_serving=serving,
            in_fallback=serving != CHAIN[0],
            chain=list(CHAIN),
            hold=Hold(model=serving, by="crash", note="x" * (counter * 37 % 700)),
        )
    return PinFile(
        agents=agents, models={"counter": ModelHealthRecord(state="healthy", probe_streak=counter)}
    )


def counter_of(pins: PinFile) -> int:
    record = pins.models.get("counter")
    return record.probe_streak if record is not None else 0


def writer(pin: Path, ack_fd: int) -> None:
    store = PinStore(pin)
    while True:
        with store.locked() as txn:
            nxt = counter_of(txn.read().pins) + 1
            txn.write(state(nxt))
        os.write(ack_fd, f"{nxt}\n".encode())


def main(directory: str, kills: int, seed: int) -> int:
    rng = random.Random(seed)
    pin = Path(directory) / PIN_FILENAME
    last_good = pin.with_name(pin.name + ".last-good")
    acked = 0
    staged_seen = 0
    window_hits = 0  # killed between replacing last-good and renaming the pin
    started = time.monotonic()
    for round_no in range(1, kills + 1):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            os.close(r)
            try:
                writer(pin, w)
            finally:
                os._exit(0)
        os.close(w)
        time.sleep(rng.uniform(0, 0.012))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with os.fdopen(r, "rb") as fh:
            acks = fh.read().split()
        if acks:
            acked = int(acks[-1])
        problems = []
        staged = list(pin.parent.glob(f".{pin.name}.staged-*"))
        staged_seen += bool(staged)
        if staged and last_good.exists() and pin.exists():
            lg = last_good.read_bytes()
            window_hits += any(s.read_bytes() == lg for s in staged) and pin.read_bytes() != lg
        if pin.exists():
            try:
                on_disk = counter_of(pinfile.loads(pin.read_bytes()))
                pinfile.loads(last_good.read_bytes())
            except ValueError as exc:
                problems.append(f"invalid file after kill: {exc}")
                on_disk = -1
        else:
            on_disk = 0
        read = PinStore(pin).read()
        if not isinstance(read.edit, NoChange):
            problems.append(f"a crash was taken for a hand edit: {read.edit!r}")
        now = counter_of(read.pins)
        if not acked <= now <= acked + 1:
            problems.append(f"counter {now} (file had {on_disk}) but {acked} was acknowledged")
        leftovers = [p.name for p in pin.parent.iterdir() if p.name.startswith(".")]
        if leftovers:
            problems.append(f"temp files left after restart: {leftovers}")
        if problems:
            print(json.dumps({"round": round_no, "problems": problems}))
            return 1
        acked = now
    print(
        json.dumps(
            {
                "kills": kills,
                "writes_acknowledged": acked,
                "kills_that_left_a_staged_file": staged_seen,
                "kills_between_the_two_renames": window_hits,
                "seconds": round(time.monotonic() - started, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
