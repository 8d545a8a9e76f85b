"""Benchmark: one failback pass over 200 pinned-away models on 10 providers.

Against the loopback fake model server with 50 ms latency per answer, half the
providers speaking Ollama's native API and half OpenAI-compatible. Prints the pass
time against the ideal (models per provider x latency / per-provider cap) and the
maximum concurrency the fake saw per provider.

Target (DESIGN.md): pass time <= 1.5x ideal, and the cap is never exceeded.

    .venv/bin/python bench/probe.py [--models 200] [--providers 10] [--latency 0.05]
                                    [--slots 1] [--global-cap 16] [--passes 3]
                                    [--fake process|inproc]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import statistics
import subprocess
import sys

import httpx

from watcher.core.evidence import ProbeResult
from watcher.fakes.models import FakeModelServer, Reply
from watcher.probe import FailbackProber, ProbeClient
from watcher.probe.providers import Provider, ProviderDirectory


class FakeEndpoint:
    """The fake model server, in this process or (default) in its own, so that its CPU
    time does not count against the prober on the same event loop."""

    def __init__(self, where: str, latency: float) -> None:
        self.where = where
        self.latency = latency
        self._inproc: FakeModelServer | None = None
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""

    async def __aenter__(self) -> FakeEndpoint:
        if self.where == "inproc":
            self._inproc = await FakeModelServer(default=Reply.ok(latency_s=self.latency)).start()
            self.url = self._inproc.url
        else:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "watcher.fakes.models",
                 "--latency", str(self.latency)],
                stdout=subprocess.PIPE, text=True,
            )
            assert self._proc.stdout is not None
            self.url = f"http://127.0.0.1:{int(self._proc.stdout.readline())}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._inproc is not None:
            await self._inproc.stop()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)

    def base_url(self, provider: str, api: str) -> str:
        root = f"{self.url}/p/{provider}"
        return root if api == "ollama" else f"{root}/v1"

    async def reset(self) -> None:
        if self._inproc is not None:
            self._inproc.reset()
            return
        async with httpx.AsyncClient(trust_env=False) as http:
            (await http.post(f"{self.url}/_fake/reset")).raise_for_status()

    async def max_concurrency(self) -> dict[str, int]:
        if self._inproc is not None:
            return dict(sorted(self._inproc.max_concurrency.items()))
        async with httpx.AsyncClient(trust_env=False) as http:
            stats = (await http.get(f"{self.url}/_fake/stats")).json()
        return dict(sorted(stats["max_concurrency"].items()))


async def bench(args: argparse.Namespace) -> int:
    per_provider = math.ceil(args.models / args.providers)
    ideal = per_provider * args.latency / args.slots
    if args.providers * args.slots > args.global_cap:  # the global cap binds instead
        ideal = max(ideal, math.ceil(args.models / args.global_cap) * args.latency)
    handed_over = 0

    async def on_result(result: ProbeResult) -> None:
        nonlocal handed_over
        handed_over += 1

    async with contextlib.AsyncExitStack() as stack:
        fake = await stack.enter_async_context(FakeEndpoint(args.fake, args.latency))
        client = await stack.enter_async_context(ProbeClient())
        directory = ProviderDirectory(
            Provider(
                id=f"p{i}",
                api="ollama" if i % 2 == 0 else "openai-completions",
                base_url=fake.base_url(f"p{i}", "ollama" if i % 2 == 0 else "openai"),
                slots=args.slots,
                daily_probe_budget=10**9,
            )
            for i in range(args.providers)
        )
        prober = FailbackProber(client, directory, on_result, global_cap=args.global_cap)
        targets = [f"p{i % args.providers}/model-{i}:cloud" for i in range(args.models)]
        times: list[float] = []
        failed = 0
        for _ in range(args.passes):
            await fake.reset()
            report = await prober.run_pass(targets)
            times.append(report.duration_s)
            failed += report.failed
            peaks = await fake.max_concurrency()
            print(f"  {report.sentence()}")

    best, median = min(times), statistics.median(times)
    cap_ok = all(v <= args.slots for v in peaks.values())
    ratio = median / ideal
    print(f"models={args.models} providers={args.providers} latency={args.latency * 1000:.0f} ms "
          f"slots/provider={args.slots} global_cap={args.global_cap} passes={args.passes} "
          f"fake={args.fake}")
    print(f"ideal pass time       {ideal:.3f} s")
    print(f"pass time median      {median:.3f} s  (best {best:.3f} s)")
    verdict = "PASS" if ratio <= 1.5 else "FAIL"
    print(f"ratio to ideal        {ratio:.3f}x  (target <= 1.5x: {verdict})")
    print(f"max concurrency seen  {peaks}")
    print(f"per-provider cap      {'never exceeded' if cap_ok else 'EXCEEDED'}")
    print(f"results handed over   {handed_over} ({failed} failed)")
    return 0 if ratio <= 1.5 and cap_ok and failed == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--providers", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--global-cap", type=int, default=16)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument(
        "--fake", choices=("process", "inproc"), default="process",
        help="run the fake model server in its own process (default) or in this one",
    )
    return asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
