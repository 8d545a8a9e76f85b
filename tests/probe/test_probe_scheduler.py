"""The failback pass and its timer: caps, budget, no overlapping passes."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from tests.probe.conftest import ollama_at, openai_at
from watcher.classify.table import FailureClass
from watcher.core.evidence import ProbeResult
from watcher.fakes.models import FakeModelServer, Reply
from watcher.probe import FailbackProber, ProbeClient, ProbeScheduler
from watcher.probe.budget import BudgetStatus, ProbeBudget, Spend
from watcher.probe.providers import Provider, ProviderDirectory


class Sink:
    """Collects what the prober hands the daemon."""

    def __init__(self) -> None:
        self.results: list[ProbeResult] = []
        self.exhausted: list[BudgetStatus] = []

    async def result(self, r: ProbeResult) -> None:
        self.results.append(r)

    async def budget(self, status: BudgetStatus) -> None:
        self.exhausted.append(status)


def fleet(fake: FakeModelServer, providers: int, **kw: object) -> ProviderDirectory:
    return ProviderDirectory(
        (ollama_at if i % 2 == 0 else openai_at)(fake, f"p{i}", **kw)  # type: ignore[operator]
        for i in range(providers)
    )


def models(providers: int, per_provider: int) -> list[str]:
    return [f"p{i}/model-{j}:cloud" for j in range(per_provider) for i in range(providers)]


async def test_per_provider_cap_is_never_exceeded_with_200_models_on_10_providers():
    async with FakeModelServer(default=Reply.ok(latency_s=0.01)) as fake, ProbeClient() as c:
        sink = Sink()
        prober = FailbackProber(c, fleet(fake, 10), sink.result, sink.budget)
        report = await prober.run_pass(models(10, 20))
    assert len(report.results) == 200 and report.ok == 200
    assert len(sink.results) == 200
    assert {p: fake.max_concurrency[p] for p in fake.max_concurrency} == {
        f"p{i}": 1 for i in range(10)
    }
    assert fake.max_total_concurrency == 10  # all ten providers ran side by side
    assert len(fake.requests) == 200
    assert report.sentence().startswith("failback pass: probed 200 model(s) on 10 provider(s)")


async def test_provider_with_more_slots_runs_that_many_and_no_more(fake):
    fake.default = Reply.ok(latency_s=0.02)
    directory = ProviderDirectory([ollama_at(fake, "wide", slots=3), ollama_at(fake, "narrow")])
    async with ProbeClient() as c:
        sink = Sink()
        targets = [f"wide/m{i}" for i in range(12)] + [f"narrow/m{i}" for i in range(4)]
        await FailbackProber(c, directory, sink.result).run_pass(targets)
    assert fake.max_concurrency["wide"] == 3
    assert fake.max_concurrency["narrow"] == 1


async def test_global_cap_bounds_probes_across_providers(fake):
    fake.default = Reply.ok(latency_s=0.02)
    async with ProbeClient() as c:
        sink = Sink()
        prober = FailbackProber(c, fleet(fake, 10, slots=4), sink.result, global_cap=6)
        await prober.run_pass(models(10, 8))
    assert fake.max_total_concurrency == 6
    assert len(sink.results) == 80


async def test_overlapping_passes_share_the_provider_cap(fake):
    fake.default = Reply.ok(latency_s=0.02)
    async with ProbeClient() as c:
        sink = Sink()
        prober = FailbackProber(c, fleet(fake, 2), sink.result)
        await asyncio.gather(
            prober.run_pass(models(2, 5)), prober.run_pass(["p0/urgent", "p1/urgent"])
        )
    assert dict(fake.max_concurrency) == {"p0": 1, "p1": 1}
    assert len(sink.results) == 12


async def test_each_model_is_probed_once_per_pass_and_unknown_providers_are_skipped(fake):
    async with ProbeClient() as c:
        sink = Sink()
        prober = FailbackProber(c, fleet(fake, 1), sink.result)
        report = await prober.run_pass(["p0/a", "p0/a", "nowhere/b", "p0/c"])
    assert [r.model for r in report.results] == ["p0/a", "p0/c"]
    assert report.unknown_provider == ("nowhere/b",)
    assert "1 skipped (provider not configured)" in report.sentence()


async def test_failed_probes_are_handed_over_classified(fake):
    fake.script("kimi-k2.5:cloud", probe=Reply.throttle("60"))
    async with ProbeClient() as c:
        sink = Sink()
        prober = FailbackProber(c, fleet(fake, 1), sink.result)
        report = await prober.run_pass(["p0/kimi-k2.5:cloud", "p0/glm-5.1:cloud"])
    by_model = {r.model: r for r in sink.results}
    assert by_model["p0/kimi-k2.5:cloud"].failure_class is FailureClass.THROTTLE
    assert by_model["p0/kimi-k2.5:cloud"].retry_after_s == 60
    assert by_model["p0/glm-5.1:cloud"].ok
    assert (report.ok, report.failed) == (1, 1)


async def test_a_failing_result_callback_does_not_stop_the_pass(fake):
    seen: list[str] = []

    async def flaky(result: ProbeResult) -> None:
        seen.append(result.model)
        raise RuntimeError("core hiccup")

    async with ProbeClient() as c:
        report = await FailbackProber(c, fleet(fake, 1), flaky).run_pass(["p0/a", "p0/b"])
    assert seen == ["p0/a", "p0/b"] and len(report.results) == 2


async def test_spent_budget_stops_probing_and_reports_once_until_the_utc_day_rolls(fake):
    clock = [datetime(2026, 5, 20, 23, 59, tzinfo=UTC).timestamp()]
    directory = ProviderDirectory(
        [ollama_at(fake, "cloud", daily_probe_budget=3), ollama_at(fake, "local")]
    )
    async with ProbeClient() as c:
        sink = Sink()
        prober = FailbackProber(
            c, directory, sink.result, sink.budget, wall_clock=lambda: clock[0]
        )
        first = await prober.run_pass([f"cloud/m{i}" for i in range(5)] + ["local/x"])
        second = await prober.run_pass(["cloud/m0", "local/x"])
        status = prober.budget_status()
        clock[0] += 120  # past midnight UTC
        third = await prober.run_pass(["cloud/m0"])

    assert len(first.results) == 4 and first.over_budget == ("cloud/m3", "cloud/m4")
    assert "2 not probed (daily budget spent)" in first.sentence()
    assert [r.model for r in second.results] == ["local/x"]
    assert second.over_budget == ("cloud/m0",)
    assert len(sink.exhausted) == 1
    card = sink.exhausted[0]
    assert (card.provider, card.day, card.used, card.limit) == ("cloud", "2026-05-20", 3, 3)
    assert status["cloud"].to_json() == {
        "provider": "cloud", "day": "2026-05-20", "used": 3, "limit": 3, "remaining": 0,
        "refused": 3, "exhausted": True,
    }
    assert status["local"].used == 2 and not status["local"].exhausted
    assert len(third.results) == 1 and third.results[0].ok
    assert prober.budget_status()["cloud"].day == "2026-05-21"
    assert len([r for r in fake.requests if r.provider == "cloud"]) == 4


def test_budget_day_follows_the_configured_time_zone():
    # 23:30 UTC on 20 May is already 21 May in Stockholm
    now = datetime(2026, 5, 20, 23, 30, tzinfo=UTC).timestamp()
    budget = ProbeBudget("Europe/Stockholm")
    assert budget.spend("cloud", 1, now) is Spend.GRANTED
    assert budget.status(now)["cloud"].day == "2026-05-21"
    assert budget.spend("cloud", 1, now) is Spend.EXHAUSTED_NOW
    assert budget.spend("cloud", 1, now) is Spend.REFUSED


def test_configured_providers_show_in_budget_status_before_any_probe():
    directory = ProviderDirectory(
        [Provider(id="ollama", api="ollama", base_url="http://127.0.0.1:1")]
    )

    async def sink(result: ProbeResult) -> None:
        return None

    prober = FailbackProber(ProbeClientStub(), directory, sink)
    assert prober.budget_status()["ollama"].to_json()["remaining"] == 500


class ProbeClientStub:
    async def probe(self, ref: str, provider: Provider) -> ProbeResult:
        raise AssertionError("not called")


class CountingProber(FailbackProber):
    """Observes how many passes run at once."""

    active = 0
    most_active = 0

    async def run_pass(self, targets):  # type: ignore[no-untyped-def]
        CountingProber.active += 1
        CountingProber.most_active = max(CountingProber.most_active, CountingProber.active)
        try:
            return await super().run_pass(targets)
        finally:
            CountingProber.active -= 1


async def test_scheduled_passes_run_and_never_overlap_and_overruns_are_warned(fake, caplog):
    caplog.set_level(logging.INFO, logger="watcher.probe.scheduler")
    fake.default = Reply.ok(latency_s=0.15)  # pass of 2 serialised probes: 0.3 s > 0.1 s
    calls: list[int] = []

    def targets() -> list[str]:
        calls.append(1)
        return ["p0/a", "p0/b"]

    async with ProbeClient() as c:
        sink = Sink()
        prober = CountingProber(c, fleet(fake, 1), sink.result)
        scheduler = ProbeScheduler(
            prober, targets, interval_s=0.1, jitter_s=0, first_run_after_s=0
        )
        scheduler.start()
        try:
            await asyncio.sleep(1.0)
        finally:
            scheduler.shutdown()
        await asyncio.sleep(0.05)  # the pass in flight, if any, ends on its cancellation
    assert scheduler.passes >= 2
    assert CountingProber.most_active == 1
    assert fake.max_concurrency["p0"] == 1
    assert scheduler.overruns >= 1
    assert "longer than its" in caplog.text
    assert "failback pass: probed 2 model(s) on 1 provider(s)" in caplog.text
    assert "raised an exception" not in caplog.text  # shutdown is quiet
    assert scheduler.last_report is not None and scheduler.last_report.ok == 2


async def test_scheduler_accepts_async_targets_and_survives_a_failing_one(fake, caplog):
    async def broken() -> list[str]:
        raise RuntimeError("core not ready")

    async def good() -> list[str]:
        return ["p0/a"]

    async with ProbeClient() as c:
        sink = Sink()
        prober = FailbackProber(c, fleet(fake, 1), sink.result)
        assert await ProbeScheduler(prober, broken).run_once() is None
        report = await ProbeScheduler(prober, good).run_once()
    assert report is not None and report.ok == 1
    assert "failback pass failed" in caplog.text
