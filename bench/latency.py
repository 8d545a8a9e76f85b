"""Live latency: from a journal append to the pin file durable, at 1,000 decision lines/s.

What is measured, exactly
    Two processes, so the writer's pacing never competes with the daemon for the GIL:

    - this process is the gateway: it feeds a long-lived ``systemd-journal-remote``
      through an unbuffered pipe, one decision line per ``write(2)``, paced at
      ``--rate`` lines/s, and notes ``t_append = time.monotonic()`` just before each
      write. It also runs the fake Bot API (``watcher.fakes.botapi``).
    - a child process (this file with ``--child``) runs the real daemon through its
      real entry point ``watcher.shell.main.run(settings)`` (the real ``Watcher`` and its
      ``run()`` loop (live ``JournalSource``
      woken by the journal's inotify fd, parse, classify, ``decide``, snapshot, audit,
      alert outbox, Telegram sender task, pin store), built from a real TOML config.
      The only addition is a ``Watcher`` subclass that stamps ``time.monotonic()`` when
      ``apply_batch`` has returned, i.e. when ``core-state.json`` (state + journal
      position) and, if the batch changed pins, ``fallback-state.json`` have been
      written to a same-dir temp file, fsync'd, renamed and the directory fsync'd.
      It also stamps when the source handed the batch over, to split the latency into
      *wake* (append -> batch read) and *apply* (batch read -> durable).

    CLOCK_MONOTONIC is system-wide on Linux, so the two stamps compare across
    processes. Each line is identified by its journal ``__REALTIME_TIMESTAMP`` (unique,
    chosen by the writer), so no sequence number has to be parsed back.

    The latency includes journal-remote reading the pipe, parsing the export entry
    and appending it to its journal file (mmap, no fsync: journald does not fsync per
    entry either), libsystemd's change notification, the daemon's wake-up, read,
    parse, decide and every fsync of the apply. It does not include any journal fsync.

    "pin-changing" lines are those that moved an agent's pin (by construction of the
    workload) and whose batch wrote the pin file (the core emitted ``WritePins``). Pin
    writes are coalesced per batch, as the daemon does.

Workload
    ``--agents`` agents (default 50), each with its own primary on one of four
    providers and its own fallback. Lines go round-robin over the agents; each agent
    cycles through ``--cycle`` lines (default 10), out of step with the others so the
    moves spread evenly: its primary fails with a 503 (the pin moves to the fallback:
    FALLBACK_FIRED), then repeated failures of the primary (already down: no move) and
    ``skip_candidate`` lines (change nothing), then half-way a real request on the
    primary succeeds (the model is up at once, the pin moves back: RECOVERY). So 2 of
    every ``cycle`` lines move a pin and raise a transition (20 % by default, 200
    transitions/s at 1,000 lines/s; ``--cycle 4`` makes it half, the worst case).
    Flap detection is off in the bench policy (otherwise the agents would be frozen
    on their fallbacks within a second and the pins would stop moving: the easy
    case), probes are off (they are not on the journal-to-pin path), and the dedup
    window is 1 s so cards keep coming.

Phases (one daemon, one run, side by side)
    ``up``: the fake Bot API answers; the sender delivers (paced at 30 cards/s).
    ``down``: ``FakeBotApi.go_down()`` refuses connections; the sender backs off and
    cards pile up in the outbox. Then the fake comes back and the backlog is reported.
    The first ``--warmup`` seconds of each phase are not counted.

Usage::

    .venv/bin/python bench/latency.py [--seconds 20] [--rate 1000] [--agents 50]
        [--cycle 4] [--phases up,down] [--profile] [--dir DIR]

Prints p50 / p99 / max for all lines and for pin-changing lines per phase, the
verdict against the target (p50 <= 10 ms, p99 <= 50 ms), where the time goes
(wake vs apply, per-part timing counters), and with ``--profile`` the daemon's top
functions under cProfile (which slows it down: use it to see what dominates, not for
the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from watcher.fakes.journal import (
    JournalEntry,
    RealtimeClock,
    export_entry,
    journal_remote_binary,
)

TARGET_P50_MS = 10.0
TARGET_P99_MS = 50.0
BOT_TOKEN = "123456:BENCH-not-a-real-token"  # noqa: S105 - the fake Bot API's
CHAT_ID = 4242
DECISION = "[model-fallback/decision] model fallback decision: "


# -- the world: chains, config, lines ---------------------------------------------------


def chains(agents: int) -> dict[str, list[str]]:
    return {
        f"a{i:03d}": [f"prov{i % 4}/primary-{i}", f"prov{(i + 1) % 4}/fallback-{i}"]
        for i in range(agents)
    }


def openclaw(agents: int) -> dict[str, Any]:
    entries = {
        a: {"model": {"primary": c[0], "fallbacks": c[1:]}} for a, c in chains(agents).items()
    }
    return {"agents": {"entries": entries}}


def config_text(root: Path, bot_base_url: str) -> str:
    return f"""\
# bench/latency.py: the daemon as configured for the live-latency bench.
state_dir = "{root / "state"}"
gateway_config = "{root / "openclaw.json"}"
tick_interval_s = 1
log_level = "INFO"  # the production default: every card and move is logged

[journal]
source = "journal:{root / "journal"}"
start_at = "head"

[policy]
flap_detection = false

[probes]
enabled = false

[metrics]
port = 0

[plugin]
required = false

[alerts]
bot_token = "env:BENCH_BOT_TOKEN"
chat_id = {CHAT_ID}
base_url = "{bot_base_url}"
private_per_second = 30
dedup_window_s = 1
backoff_max_s = 5
outbox_limit = 100000
"""


def line(n: int, agents: int, cycle: int = 4) -> tuple[str, bool]:
    """The n-th decision line, and whether it is meant to move a pin.

    Each agent's lines cycle through ``cycle`` steps: step 0 fails its primary (the pin
    moves to the fallback), step ``cycle // 2`` is a real request on the primary that
    succeeded (the pin moves back); the others alternate a repeated failure of the
    primary (already down: no move) and a ``skip_candidate`` (changes nothing).
    """
    i = n % agents
    step = (n // agents + i) % cycle  # agents out of step: moves spread evenly
    primary = f"prov{i % 4}/primary-{i}"
    fallback = f"prov{(i + 1) % 4}/fallback-{i}"
    head = f"{DECISION}decision="
    if step == cycle // 2:
        return (
            f"{head}candidate_succeeded requested={primary} candidate={primary} "
            f"reason=unknown next={fallback}",
            True,
        )
    if step == 0 or (step < cycle // 2 and step % 2 == 1):
        return (
            f"{head}candidate_failed requested={primary} candidate={primary} "
            f"reason=server_error next={fallback} detail=503 upstream unavailable seq={n}",
            step == 0,
        )
    return (
        f"{head}skip_candidate requested={primary} candidate={primary} reason=rate_limit "
        f"next={fallback} detail=Provider prov{i % 4} is in cooldown seq={n}",
        False,
    )


# -- the child: the real daemon, stamped -------------------------------------------------


def child_main(config: Path, out: Path, profile: Path | None) -> int:
    """The daemon exactly as ``failover-watcher run`` starts it (``watcher.shell.main.run``),
    with ``Watcher`` replaced by a subclass that only adds stamps and timing counters."""
    import cProfile

    from watcher.config import load_settings
    from watcher.shell import main as daemon
    from watcher.support.logsetup import setup_logging

    timers: dict[str, list[float]] = {}
    instances: list[Any] = []
    fsyncs = [0]
    real_fsync = os.fsync

    def counted_fsync(fd: Any) -> None:  # Python-level fsyncs (SQLite's own are not seen)
        fsyncs[0] += 1
        real_fsync(fd)

    os.fsync = counted_fsync
    per_batch: dict[str, list[int]] = {"pin": [0, 0, 0], "other": [0, 0, 0]}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        slot = timers.setdefault(name, [0, 0.0])

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                slot[0] += 1
                slot[1] += time.perf_counter() - t

        return wrapper

    def wrap(obj: Any, names: dict[str, str]) -> None:
        for attr, label in names.items():
            if callable(getattr(obj, attr, None)):
                setattr(obj, attr, timed(label, getattr(obj, attr)))

    class TimedWatcher(daemon.Watcher):
        """The real daemon; stamps each entry when the apply that included it returned."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            instances.append(self)
            self.marks: list[tuple[int, float, float, bool, int]] = []
            self._read_at = 0.0
            self._wrote_pins = False
            wrap(self.snapshot, {"write": "snapshot write (fsync)"})
            wrap(self.pins, {"update": "pin file write (fsync)",
                             "write_keeping_edits": "pin file write (fsync)",
                             "read": "pin file read (edit check)"})
            wrap(self.intake, {"submit": "alert intake (outbox fsync)",
                               "submit_many": "alert intake (outbox fsync)"})
            wrap(self.audit, {"append": "audit append"})
            wrap(self.intake.outbox, {"set_meta": "outbox set_meta (fsync)"})

        def _carry_out(self, pending: Any, *args: Any, **kwargs: Any) -> None:
            self._wrote_pins = self._wrote_pins or pending.write_pins
            super()._carry_out(pending, *args, **kwargs)

        def apply_batch(self, batch: Any, source: Any) -> list[str]:
            self._wrote_pins = False
            read_at = self._read_at
            t = time.perf_counter()
            f0 = fsyncs[0]
            cards0 = timers.get("alert intake (outbox fsync)", [0, 0.0])[0]
            sentences = super().apply_batch(batch, source)
            done = time.monotonic()
            kind = per_batch["pin" if self._wrote_pins else "other"]
            kind[0] += 1
            kind[1] += fsyncs[0] - f0
            kind[2] += int(timers.get("alert intake (outbox fsync)", [0, 0.0])[0] - cards0)
            slot = timers.setdefault("apply_batch (all)", [0, 0.0])
            slot[0] += 1
            slot[1] += time.perf_counter() - t
            n = len(batch.entries)
            for entry in batch.entries:
                us = round(entry.realtime * 1_000_000)
                self.marks.append((us, read_at, done, self._wrote_pins, n))
            return sentences

    class TimedDaemon(daemon.Daemon):
        """The real loop; notes when each journal read returned."""

        def open_source(self) -> Any:
            source = super().open_source()
            read = timed("journal read_batch", source.read_batch)
            watcher = self.watcher
            assert isinstance(watcher, TimedWatcher)

            def read_batch() -> Any:
                batch = read()
                watcher._read_at = time.monotonic()
                return batch

            source.read_batch = read_batch  # type: ignore[method-assign]
            return source

    settings = load_settings(config)
    setup_logging(settings.log_level)
    daemon.Watcher = TimedWatcher  # type: ignore[misc]
    daemon.Daemon = TimedDaemon  # type: ignore[misc]
    prof = cProfile.Profile() if profile else None
    if prof:
        prof.enable()
    code = daemon.run(settings)
    if prof and profile:
        prof.disable()
        prof.dump_stats(str(profile))
    marks = instances[0].marks if instances else []
    out.write_text(json.dumps({"marks": marks, "timers": timers, "per_batch": per_batch}))
    return code


# -- the parent: the gateway, paced -------------------------------------------------------


class PacedJournal:
    """``systemd-journal-remote`` fed through an unbuffered pipe: one write per entry."""

    def __init__(self, directory: Path) -> None:
        binary = journal_remote_binary()
        if binary is None:
            raise SystemExit("systemd-journal-remote is not installed (apt-get install "
                             "systemd-journal-remote)")
        directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "-o", str(directory / "live.journal"), "-"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            bufsize=0,
        )
        self.clock = RealtimeClock()

    def append(self, message: str) -> tuple[int, float]:
        us = self.clock.stamp(time.time())
        data = export_entry(JournalEntry(message), us)
        assert self.proc.stdin is not None
        t = time.monotonic()
        self.proc.stdin.write(data)
        return us, t

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(10)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def summary(values_ms: list[float]) -> str:
    if not values_ms:
        return "no lines measured"
    return (f"p50 {pct(values_ms, 50):6.2f} ms   p99 {pct(values_ms, 99):6.2f} ms   "
            f"max {max(values_ms):7.2f} ms   ({len(values_ms)} lines)")


def verdict(values_ms: list[float]) -> str:
    if not values_ms:
        return "n/a"
    ok = pct(values_ms, 50) <= TARGET_P50_MS and pct(values_ms, 99) <= TARGET_P99_MS
    return "ON TARGET" if ok else "OFF TARGET"


def outbox_depth(state: Path) -> int:
    path = state / "outbox.sqlite3"
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute("SELECT COUNT(*) FROM cards WHERE state IN ('pending','sending')")
        return int(row.fetchone()[0])
    finally:
        db.close()


def run_phase(journal: PacedJournal, *, rate: float, seconds: float, agents: int,
              cycle: int, start_n: int) -> tuple[list[tuple[int, float, bool, int]], int]:
    """Append ``rate * seconds`` lines paced by the clock; returns (us, t, pin-meant, n)."""
    total = int(rate * seconds)
    sent: list[tuple[int, float, bool, int]] = []
    t0 = time.monotonic()
    late = 0
    for k in range(total):
        due = t0 + k / rate
        while True:
            left = due - time.monotonic()
            if left <= 0:
                break
            if left > 0.0015:
                time.sleep(left - 0.001)
        if time.monotonic() - due > 0.005:
            late += 1
        n = start_n + k
        text, moves = line(n, agents, cycle)
        us, t = journal.append(text)
        sent.append((us, t, moves, n))
    achieved = total / max(time.monotonic() - t0, 1e-9)
    if late:
        print(f"    (writer fell more than 5 ms behind its schedule on {late} line(s))")
    print(f"    appended {total} lines at {achieved:,.0f} lines/s")
    return sent, start_n + total


def report_phase(name: str, sent: list[tuple[int, float, bool, int]],
                 marks: dict[int, tuple[float, float, bool, int]], warmup_s: float,
                 rate: float) -> dict[str, Any]:
    skip = int(warmup_s * rate)
    lat_all: list[float] = []
    lat_pin: list[float] = []
    wake: list[float] = []
    apply: list[float] = []
    batch_sizes: list[int] = []
    missing = 0
    for us, t, moves, _n in sent[skip:]:
        mark = marks.get(us)
        if mark is None:
            missing += 1
            continue
        read_at, done, wrote, size = mark
        ms = (done - t) * 1000
        lat_all.append(ms)
        if moves and wrote:  # this line moved a pin, and its batch wrote the pin file
            lat_pin.append(ms)
        wake.append((read_at - t) * 1000)
        apply.append((done - read_at) * 1000)
        batch_sizes.append(size)
    print(f"  [{name}]")
    print(f"    all lines            {summary(lat_all)}   {verdict(lat_all)}")
    print(f"    pin-changing lines   {summary(lat_pin)}   {verdict(lat_pin)}")
    print(f"    of which: wake (append -> batch read) p50 {pct(wake, 50):.2f} ms, "
          f"p99 {pct(wake, 99):.2f} ms; apply (read -> durable) p50 {pct(apply, 50):.2f} ms, "
          f"p99 {pct(apply, 99):.2f} ms; "
          f"mean batch {sum(batch_sizes) / max(len(batch_sizes), 1):.1f} lines")
    if missing:
        print(f"    {missing} line(s) never applied before the daemon stopped")
    return {
        "p50": pct(lat_all, 50), "p99": pct(lat_all, 99), "max": max(lat_all, default=0.0),
        "pin_p50": pct(lat_pin, 50), "pin_p99": pct(lat_pin, 99),
        "pin_max": max(lat_pin, default=0.0), "n": len(lat_all), "n_pin": len(lat_pin),
    }


def wait_applied(state: Path, last_us: int, timeout: float) -> bool:
    """Until the daemon's snapshot says it applied the entry with realtime ``last_us``."""
    deadline = time.monotonic() + timeout
    path = state / "core-state.json"
    while time.monotonic() < deadline:
        try:
            pos = json.loads(path.read_text()).get("position") or {}
            if round((pos.get("realtime") or 0) * 1_000_000) >= last_us:
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return False


def parent_main(args: argparse.Namespace) -> int:
    from watcher.fakes.botapi import FakeBotApi

    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="latency-", dir="/var/tmp"))
    root.mkdir(parents=True, exist_ok=True)
    (root / "openclaw.json").write_text(json.dumps(openclaw(args.agents)))
    bot = FakeBotApi(BOT_TOKEN).start()
    config = root / "watcher.toml"
    config.write_text(config_text(root, bot.base_url))
    journal = PacedJournal(root / "journal")
    journal.append("[gateway] listening")
    time.sleep(0.3)
    state = root / "state"
    out = root / "marks.json"
    prof = root / "daemon.prof" if args.profile else None
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(config), "--out", str(out)]
    if prof:
        cmd += ["--profile-out", str(prof)]
    env = {**os.environ, "BENCH_BOT_TOKEN": BOT_TOKEN}
    log = (root / "daemon.log").open("w")
    child = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    results: dict[str, dict[str, Any]] = {}
    sent_by_phase: dict[str, list[tuple[int, float, bool, int]]] = {}
    bot_down = False
    try:
        deadline = time.monotonic() + 30
        while not (state / "metrics.port").exists():
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not start; see {root / 'daemon.log'}")
            time.sleep(0.05)
        time.sleep(0.5)
        print(f"live latency: {args.rate:,.0f} decision lines/s for {args.seconds:g} s per phase, "
              f"{args.agents} agents, state on {root}")
        n = 0
        for k, phase in enumerate(phases, 1):
            name = f"{k}. Telegram {phase}"
            if phase == "down":
                bot.go_down()
                bot_down = True
                print(f"  {name}: the fake Bot API refuses connections")
            else:
                print(f"  {name}: the fake Bot API answers")
            sent, n = run_phase(journal, rate=args.rate, seconds=args.seconds,
                                agents=args.agents, cycle=args.cycle, start_n=n)
            sent_by_phase[name] = sent
            wait_applied(state, sent[-1][0], timeout=30)
            depth = outbox_depth(state)
            print(f"    outbox depth at the end of the phase: {depth} card(s)")
            if phase == "down":
                bot.come_up()
                bot_down = False
                t_up = time.monotonic()
                while outbox_depth(state) and time.monotonic() - t_up < args.drain_s:
                    time.sleep(0.2)
                left = outbox_depth(state)
                print(f"  Telegram back: {depth - left} card(s) delivered in "
                      f"{time.monotonic() - t_up:.1f} s, {left} still queued")
    finally:
        if bot_down:
            bot.come_up()
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        log.close()
        journal.close()
        bot.stop()
    if not out.exists():
        print(f"the daemon wrote no marks; see {root / 'daemon.log'}")
        return 1
    data = json.loads(out.read_text())
    marks = {int(us): (r, d, bool(w), int(s)) for us, r, d, w, s in data["marks"]}
    print()
    print(f"from journal append to pin file durable (target p50 <= {TARGET_P50_MS:g} ms, "
          f"p99 <= {TARGET_P99_MS:g} ms):")
    for phase, sent in sent_by_phase.items():
        results[phase] = report_phase(phase, sent, marks, args.warmup, args.rate)
    if len(results) > 1:
        print()
        print("  side by side        " + "".join(f"{name:>22}" for name in results))
        for key, label in (("p50", "p50 all"), ("p99", "p99 all"), ("max", "max all"),
                           ("pin_p50", "p50 pin-changing"), ("pin_p99", "p99 pin-changing")):
            print(f"  {label:<20}" + "".join(f"{r[key]:19.2f} ms" for r in results.values()))
    print()
    print("where the daemon's time went (timing counters, whole run):")
    for name, (count, total) in sorted(data["timers"].items(), key=lambda kv: -kv[1][1]):
        if count:
            print(f"  {name:<30} {int(count):7d} calls  {total:7.2f} s  "
                  f"{total / count * 1000:7.3f} ms/call")
    for kind, (batches, n_fsync, n_cards) in data.get("per_batch", {}).items():
        if batches:
            label = "batches that wrote pins" if kind == "pin" else "other batches"
            print(f"  {label:<30} {batches:7d}: {n_fsync / batches:5.1f} Python fsyncs and "
                  f"{n_cards / batches:5.1f} alert-intake calls (one SQLite commit each) per batch")
    if prof and prof.exists():
        import pstats

        print()
        print("cProfile of the daemon (top 25 by internal time):")
        pstats.Stats(str(prof)).sort_stats("tottime").print_stats(25)
    if not args.dir and not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"kept {root}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="per phase (default 20)")
    p.add_argument("--rate", type=float, default=1000.0, help="decision lines/s (default 1000)")
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--cycle", type=int, default=10,
                   help="lines per agent per fail/recover cycle: 2 of every CYCLE lines move "
                   "a pin (default 10: 20%% of the lines; 4: half; 40: 5%%)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds not counted per phase")
    p.add_argument("--phases", default="up,down",
                   help="comma-separated phases, each 'up' or 'down' (default up,down; "
                   "up,down,up shows whether a difference is Telegram's or the run's)")
    p.add_argument("--drain-s", type=float, default=30.0,
                   help="after the down phase, wait this long for the backlog")
    p.add_argument("--profile", action="store_true", help="run the daemon under cProfile")
    p.add_argument("--dir", help="work directory (default: a temporary one under /var/tmp)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child_main(Path(args.child), Path(args.out),
                          Path(args.profile_out) if args.profile_out else None)
    if args.rate <= 0 or args.seconds <= 0 or args.agents < 1 or args.cycle < 2:
        p.error("--rate and --seconds must be positive, --agents at least 1, --cycle at least 2")
    phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    if not phases or any(x not in ("up", "down") for x in phases):
        p.error(f"--phases: a comma-separated list of up and down, not {args.phases!r}")
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
