"""Memory: the real daemon's anonymous RSS after 0.5M and 1M journal entries.

Target (DESIGN): anonymous RSS below 60 MB after 1M events, growing less than 5% from
0.5M to 1M.

Why the real daemon as a subprocess, not ``Watcher.apply_batch`` in this process:
the number an operator sees is the daemon's, with everything it loads and keeps
(python-telegram-bot, httpx, APScheduler, prometheus-client, the outbox, the probe
scheduler, asyncio); an in-process loop would measure a different program and mix in
this harness's own allocations. ``RssAnon`` (``/proc/<pid>/status``) is heap and
other anonymous memory, without the shared libraries and mapped journal files that
make plain RSS depend on the page cache.

How:
- the workload is ``bench/tail.py``'s cached journal (``bench/out/journal-N``: 5%
  ``[model-fallback/decision]`` lines from the log contract, 1% lane hints, the rest
  chatter; built once with systemd-journal-remote if missing);
- the gateway config gives agents chains over every model the mix names, so the
  decisions are real evidence: pins move, cards are sent (to the fake Bot API), probes
  run (against the fake model server), audit and outbox are written;
- the daemon starts on a directory holding one old entry, idles, and its RssAnon is
  the baseline; then the 1M-entry file is hard-linked in and the daemon tails it
  live (``catch_up_age_s`` is set past the entries' age, so nothing is treated as
  history and every transition goes through the alert pipeline);
- the entry index is read off ``core-state.json`` (the mix spaces entries 0.05 s
  apart), and RssAnon is sampled when it first reaches 0.5M and at 1M.

``--profile`` also runs the same entries through ``Watcher.apply_batch`` in this
process under tracemalloc and prints the top allocation sites still alive at the end
(what to look at when the daemon is off target).

Usage: ``.venv/bin/python bench/memory.py [--entries 1000000] [--profile]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.rigs.daemon_rig import DaemonRig
from watcher.fakes.botapi import FakeBotApi
from watcher.fakes.journal import JournalEntry, write_journal
from watcher.fakes.models import FakeModelServer

BENCH = Path(__file__).resolve().parent
SPACING_S = 0.05  # bench/tail.py: realtime = start + i * 0.05
TARGET_KIB = 60 * 1000 * 1000 // 1024  # 60 MB (decimal, as DESIGN says), in KiB
GROWTH_TARGET = 0.05

# Every model the tail mix names, in chains of two providers or more.
CHAINS = {
    "main": ["openai/gpt-5.5", "openai/gpt-5.2", "ollama/qwen3:8b"],
    "codex": ["openai/gpt-5.3-codex", "openai/gpt-5.5", "ollama/qwen3:8b"],
    "coder": ["ollama/qwen2.5-coder:7b", "ollama/qwen3:8b", "openai/gpt-5.2"],
    "ops": ["openrouter/openrouter/owl-alpha", "custom-token-sensenova-cn/deepseek-v4-flash",
            "ollama/qwen3:8b"],
    "kimi": ["opencode-go/kimi-k2.5", "openai/gpt-5.2", "ollama/qwen3:8b"],
    "stub": ["stub/primary-r429", "stub/third-r503", "stub/backup", "ollama/backup:cloud"],
}


def _tail_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_tail", BENCH / "tail.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rss_anon_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise RuntimeError(f"no RssAnon for pid {pid}")


def _openclaw(fake: FakeModelServer) -> dict[str, Any]:
    providers = sorted({m.partition("/")[0] for chain in CHAINS.values() for m in chain})
    return {
        "agents": {
            "defaults": {"model": {"primary": CHAINS["main"][0],
                                   "fallbacks": CHAINS["main"][1:]}},
            "entries": {a: {"model": {"primary": c[0], "fallbacks": c[1:]}}
                        for a, c in CHAINS.items()},
        },
        "models": {"providers": {p: {"baseUrl": fake.base_url(p), "api": "ollama"}
                                 for p in providers}},
    }


def _config(journal_dir: Path) -> Any:
    def text(root: Path, _spec: str, bot: FakeBotApi) -> str:
        return f"""\
state_dir = "{root / "state"}"
gateway_config = "{root / "openclaw.json"}"
tick_interval_s = 1
log_level = "INFO"

[journal]
source = "journal:{journal_dir}"
start_at = "head"
catch_up_age_s = 315360000

[probes]
interval_s = 5
first_run_after_s = 1

[alerts]
bot_token = "env:DEMO_BOT_TOKEN"
chat_id = 4242
base_url = "{bot.base_url}"
private_per_second = 20

[metrics]
port = 0

[plugin]
required = false  # no gateway here: nothing for the pin to steer
"""
    return text


def _first_realtime(directory: Path) -> float:
    from systemd import journal  # type: ignore[attr-defined]

    with journal.Reader(path=str(directory)) as reader:
        reader.seek_head()
        if not reader._next():
            raise RuntimeError(f"{directory} holds no entries")
        return float(reader._get_realtime()) / 1e6


def _position_index(state: Path, first: float) -> int | None:
    try:
        pos = json.loads((state / "core-state.json").read_text()).get("position") or {}
    except (OSError, ValueError):
        return None
    rt = pos.get("realtime")
    if not isinstance(rt, int | float) or rt < first:
        return None
    return round((rt - first) / SPACING_S)


def measure_daemon(journal_file: Path, entries: int, work: Path) -> dict[str, Any]:
    first = _first_realtime(journal_file.parent)
    live_dir = work / "journal-live"
    # One entry older than the whole mix: the daemon reads it and idles there, so the
    # baseline is start-up alone and the mix (hard-linked in later) comes after it.
    write_journal(live_dir, [JournalEntry("[gateway] listening", realtime=first - 10.0,
                                          identifier="node")], name="boot.journal")
    rig = DaemonRig(work, config_text=_config(live_dir), openclaw=_openclaw)
    out: dict[str, Any] = {"entries": entries}
    try:
        rig.start()
        assert rig.proc is not None
        pid = rig.proc.pid
        time.sleep(3.0)  # start-up done, first probes and ticks run, sender connected
        out["baseline"] = rss_anon_kib(pid)
        os.link(journal_file, live_dir / "gateway.journal")
        t0 = time.monotonic()
        half_at = entries // 2
        peak = out["baseline"]
        while True:
            if rig.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with {rig.proc.returncode}: "
                                   + rig.logs[-1].read_text(errors="replace")[-2000:])
            index = _position_index(rig.state, first)
            rss = rss_anon_kib(pid)
            peak = max(peak, rss)
            if index is not None and index >= half_at and "half" not in out:
                out["half"], out["half_index"] = rss, index
                out["half_s"] = time.monotonic() - t0
            if index is not None and index >= entries - 1:
                out["full"], out["full_s"] = rss, time.monotonic() - t0
                break
            if time.monotonic() - t0 > 1800:
                raise RuntimeError(f"the daemon did not reach the end (index {index})")
            time.sleep(0.05)
        time.sleep(2.0)  # the outbox sender and the probes catch up
        out["settled"] = rss_anon_kib(pid)
        out["peak"] = max(peak, out["settled"])
        metrics = rig.metrics()
        out["decisions"] = int(sum(v for k, v in metrics.items()
                                   if k.startswith("failover_watcher_events_total")))
        out["transitions"] = int(sum(v for k, v in metrics.items()
                                     if k.startswith("failover_watcher_transitions_total")))
        out["cards"] = len(rig.bot.messages)
        out["exit"] = rig.stop()
    finally:
        rig.close()
    return out


def profile_in_process(journal_dir: Path, entries: int, work: Path, top: int) -> None:
    """The same entries through ``Watcher.apply_batch`` here, under tracemalloc."""
    import tracemalloc

    from watcher.config import load_settings
    from watcher.shell.watcher import Watcher
    from watcher.source import JournalSource

    fake = FakeModelServer().start_in_thread()
    try:
        (work / "openclaw.json").write_text(json.dumps(_openclaw(fake)))
        (work / "watcher.toml").write_text(
            f'state_dir = "{work / "state"}"\ngateway_config = "{work / "openclaw.json"}"\n'
            '[probes]\nenabled = false\n[metrics]\nenabled = false\n[plugin]\nrequired = false\n')
        settings = load_settings(work / "watcher.toml")
        watcher = Watcher.open(settings)
        source = JournalSource(journal_dir, units=["openclaw-gateway.service"],
                               start_at="head", follow=False, catch_up_age=math.inf)

        async def drain() -> int:
            n = 0
            async for batch in source.batches():
                watcher.apply_batch(batch, source)
                n += 1
            return n

        tracemalloc.start(25)
        before = tracemalloc.take_snapshot()
        batches = asyncio.run(drain())
        after = tracemalloc.take_snapshot()
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"in-process profile: {batches} batches over {entries:,} entries; Python "
              f"heap traced now {current / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB")
        print(f"top {top} allocation sites still alive (growth since start):")
        for stat in after.compare_to(before, "lineno")[:top]:
            print(f"  {stat}")
        watcher.intake.outbox.close()
    finally:
        fake.stop_in_thread()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached journal")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the same entries in-process with tracemalloc")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    directory, built = _tail_module().build(args.entries, args.rebuild)
    journal_file = directory / "gateway.journal"
    extra = sorted(p.name for p in directory.glob("*.journal") if p != journal_file)
    if extra:  # journal-remote rotated: the hard-link trick needs one file
        print(f"{directory} holds more than one journal file ({extra}); rebuild with a "
              "larger file or use fewer entries", file=sys.stderr)
        return 2
    print(f"journal: {directory} ({args.entries:,} entries: 5% decisions, 1% lane hints)"
          + (f", built in {built:.1f} s" if built else ""))
    with tempfile.TemporaryDirectory(prefix="bench-memory-", dir=BENCH / "out") as tmp:
        r = measure_daemon(journal_file, args.entries, Path(tmp))
        mib = 1024.0
        growth = (r["full"] - r["half"]) / r["half"]
        print(f"daemon (subprocess, RssAnon from /proc/<pid>/status), chains over "
              f"{len({m for c in CHAINS.values() for m in c})} models, {len(CHAINS)} agents:")
        print(f"  baseline after start-up:        {r['baseline'] / mib:6.1f} MiB")
        print(f"  after {r['half_index']:>9,} entries:        {r['half'] / mib:6.1f} MiB"
              f"  ({r['half_s']:.1f} s)")
        print(f"  after {args.entries:>9,} entries:        {r['full'] / mib:6.1f} MiB"
              f"  ({r['full_s']:.1f} s; 2 s later {r['settled'] / mib:.1f} MiB; "
              f"peak {r['peak'] / mib:.1f} MiB)")
        print(f"  decisions counted {r['decisions']:,}, transitions {r['transitions']:,}, "
              f"cards received {r['cards']:,}, SIGTERM exit {r['exit']}")
        ok_abs = r["full"] <= TARGET_KIB
        ok_growth = growth < GROWTH_TARGET
        print(f"  growth {r['half_index']:,} -> {args.entries:,} entries: {growth * 100:+.1f}%"
              f"  (target < {GROWTH_TARGET * 100:.0f}%: {'OK' if ok_growth else 'OFF TARGET'})")
        print(f"  RssAnon after {args.entries:,} entries: {r['full'] * 1024 / 1e6:.1f} MB "
              f"(target < 60 MB: "
              f"{'OK' if ok_abs else 'OFF TARGET'}); of which start-up "
              f"{r['baseline'] * 1024 / 1e6:.1f} MB, growth while reading "
              f"{(r['full'] - r['baseline']) * 1024 / 1e6:.1f} MB")
        if args.profile:
            work = Path(tmp) / "profile"
            work.mkdir()
            profile_in_process(directory, args.entries, work, args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
