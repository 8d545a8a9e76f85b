"""The failback pass and its timer: probe pinned-away models without eating the slots.

``FailbackProber.run_pass(targets)`` is a plain coroutine (tests, the bench and
``/failback``-style immediate probes call it directly). Per pass it:

- takes the models to probe now (the daemon's list: some agent pinned away from them,
  outside cooldown, not flap-frozen; the prober does no policy of its own);
- probes each once, at most ``provider.slots`` in flight per provider (default 1, so
  a provider's probes are serialised and never compete with the gateway for its
  scarce concurrency slots) and at most ``global_cap`` in flight overall. The caps
  live on the prober, so overlapping passes and immediate probes share them;
- spends the provider's daily probe budget before each send; once spent, that
  provider is not probed until the day rolls over, and ``on_budget_exhausted`` is
  awaited once per provider per day (the daemon raises PROBE_BUDGET_EXHAUSTED);
- hands every ``ProbeResult`` to ``on_result`` (the daemon feeds the core), one at a
  time and in completion order, so the callback need not be re-entrant.

``ProbeScheduler`` runs passes on an APScheduler 3.x ``AsyncIOScheduler``: in the
daemon, when the core asks (``request``: the ``RequestProbes`` the core emits once a
pinned-away model is due under ``policy.probe_interval_s``, the same rule
``simulate`` follows), one pass at a time; or, standalone, on an interval job (every
``interval_s`` plus up to 10% jitter, ``max_instances=1``, ``coalesce=True``),
with a warning when a pass overruns its interval.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watcher.core.evidence import ProbeResult
from watcher.probe.budget import BudgetStatus, ProbeBudget, Spend
from watcher.probe.providers import Provider, ProviderDirectory

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 60.0
DEFAULT_GLOBAL_CAP = 16

ResultSink = Callable[[ProbeResult], Awaitable[None]]
BudgetSink = Callable[[BudgetStatus], Awaitable[None]]
TargetSource = Callable[[], "list[str] | Awaitable[list[str]]"]


class Prober(Protocol):
    async def probe(self, ref: str, provider: Provider) -> ProbeResult: ...


@dataclass(frozen=True, slots=True)
class PassReport:
    """What one pass did; ``sentence`` is the one line the daemon logs per pass."""

    started_at: float
    duration_s: float
    results: tuple[ProbeResult, ...] = ()
    over_budget: tuple[str, ...] = ()  # models not probed: provider budget spent
    unknown_provider: tuple[str, ...] = ()  # models whose provider is not configured
    providers: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> int:
        return sum(1 for r in self.results if r.ok)

    @property
    def failed(self) -> int:
        return len(self.results) - self.ok

    def sentence(self) -> str:
        if not self.results and not self.over_budget and not self.unknown_provider:
            return ("failback pass: no model due for a probe (no agent pinned away, or every "
                    "pinned-away primary still cooling down), no probes sent")
        text = (
            f"failback pass: probed {len(self.results)} model(s) on "
            f"{len(self.providers)} provider(s) in {self.duration_s:.2f} s: "
            f"{self.ok} ok, {self.failed} failed"
        )
        if self.over_budget:
            text += f"; {len(self.over_budget)} not probed (daily budget spent)"
        if self.unknown_provider:
            text += f"; {len(self.unknown_provider)} skipped (provider not configured)"
        return text


async def _ignore_budget(status: BudgetStatus) -> None:
    return None


class FailbackProber:
    """Runs failback passes with per-provider and global concurrency caps and budgets."""

    def __init__(
        self,
        client: Prober,
        directory: ProviderDirectory,
        on_result: ResultSink,
        on_budget_exhausted: BudgetSink = _ignore_budget,
        *,
        global_cap: int = DEFAULT_GLOBAL_CAP,
        budget: ProbeBudget | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if global_cap < 1:
            raise ValueError("global_cap must be at least 1")
        self._client = client
        self._on_result = on_result
        self._on_budget_exhausted = on_budget_exhausted
        self._global = asyncio.Semaphore(global_cap)
        self.global_cap = global_cap
        self.budget = budget or ProbeBudget()
        self._wall_clock = wall_clock
        self._slots: dict[str, tuple[int, asyncio.Semaphore]] = {}
        self.directory = directory
        self.update_directory(directory)

    def update_directory(self, directory: ProviderDirectory) -> None:
        """Adopt new provider settings (config reload); caps change for later probes."""
        self.directory = directory
        for provider in directory:
            self.budget.set_limit(provider.id, provider.daily_probe_budget)

    def _slot(self, provider: Provider) -> asyncio.Semaphore:
        held = self._slots.get(provider.id)
        if held is None or held[0] != provider.slots:
            held = (provider.slots, asyncio.Semaphore(provider.slots))
            self._slots[provider.id] = held
        return held[1]

    def budget_status(self) -> dict[str, BudgetStatus]:
        return self.budget.status(self._wall_clock())

    async def run_pass(
        self, targets: Iterable[str], *, on_result: ResultSink | None = None
    ) -> PassReport:
        """Probe each target once; returns when every result has been handed over (to
        ``on_result`` when given, else to the prober's own sink)."""
        sink = on_result or self._on_result
        started_at = self._wall_clock()
        t0 = time.monotonic()
        refs = list(dict.fromkeys(targets))  # once each, order kept
        unknown: list[str] = []
        planned: list[tuple[str, Provider]] = []
        for ref in refs:
            provider = self.directory.for_model(ref)
            if provider is None:
                unknown.append(ref)
            else:
                planned.append((ref, provider))
        if unknown:
            log.warning(
                "not probing %d model(s) with no provider settings: %s",
                len(unknown), ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else ""),
            )

        results: list[ProbeResult] = []
        over_budget: list[str] = []
        outbox: asyncio.Queue[ProbeResult | BudgetStatus | None] = asyncio.Queue()

        async def deliver() -> None:
            while (item := await outbox.get()) is not None:
                try:
                    if isinstance(item, BudgetStatus):
                        await self._on_budget_exhausted(item)
                    else:
                        await sink(item)
                except Exception:
                    log.exception("probe result callback failed")

        async def probe_one(ref: str, provider: Provider) -> None:
            async with self._slot(provider):
                spend = self.budget.spend(
                    provider.id, provider.daily_probe_budget, self._wall_clock()
                )
                if spend is not Spend.GRANTED:
                    over_budget.append(ref)
                    if spend is Spend.EXHAUSTED_NOW:
                        status = self.budget.status(self._wall_clock())[provider.id]
                        log.warning(
                            "probe budget of provider %s spent for %s (%d/%d); "
                            "not probing it again until the day rolls over",
                            provider.id, status.day, status.used, status.limit,
                        )
                        outbox.put_nowait(status)
                    return
                async with self._global:
                    result = await self._client.probe(ref, provider)
            results.append(result)
            outbox.put_nowait(result)

        deliverer = asyncio.create_task(deliver())
        try:
            await asyncio.gather(*(probe_one(ref, p) for ref, p in planned))
        finally:
            outbox.put_nowait(None)
            await deliverer
        return PassReport(
            started_at=started_at,
            duration_s=time.monotonic() - t0,
            results=tuple(results),
            over_budget=tuple(over_budget),
            unknown_provider=tuple(unknown),
            providers=tuple(sorted({p.id for _, p in planned})),
        )


class ProbeScheduler:
    """Runs ``prober.run_pass(targets())`` on a timer, one pass at a time."""

    def __init__(
        self,
        prober: FailbackProber,
        targets: TargetSource,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        jitter_s: float | None = None,
        first_run_after_s: float | None = None,
        scheduler: AsyncIOScheduler | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.prober = prober
        self._targets = targets
        self.interval_s = interval_s
        self.jitter_s = interval_s / 10 if jitter_s is None else jitter_s
        self._first_run_after_s = first_run_after_s
        self._scheduler = scheduler or AsyncIOScheduler(timezone=UTC)
        self._owns_scheduler = scheduler is None
        self.last_report: PassReport | None = None
        self.passes = 0
        self.overruns = 0
        self._stopping = False
        self._wanted: set[str] = set()
        self._running_request = False

    JOB_ID = "failback-pass"

    def start(self, *, on_request_only: bool = False) -> None:
        """Schedule the job (and start the scheduler if we own it); needs a running loop.
        ``on_request_only``: no timer of its own; passes run when ``request`` asks (the
        daemon: the core decides when a model is due, the scheduler runs the probes)."""
        if on_request_only:
            if self._owns_scheduler and not self._scheduler.running:
                self._scheduler.start()
            return
        first = None
        if self._first_run_after_s is not None:
            first = datetime.now(UTC) + timedelta(seconds=self._first_run_after_s)
        kwargs = {} if first is None else {"next_run_time": first}
        self._scheduler.add_job(
            self.run_once,
            IntervalTrigger(seconds=self.interval_s, jitter=self.jitter_s or None),
            id=self.JOB_ID,
            name="failback pass",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(self.interval_s)),
            replace_existing=True,
            **kwargs,
        )
        if self._owns_scheduler and not self._scheduler.running:
            self._scheduler.start()

    def shutdown(self) -> None:
        """Stop the timer. A pass in flight is cancelled (if we own the scheduler);
        results already handed over stay handed over."""
        self._stopping = True
        for job_id in (self.JOB_ID, self.REQUEST_JOB_ID):
            if self._scheduler.get_job(job_id) is not None:
                self._scheduler.remove_job(job_id)
        if self._owns_scheduler and self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    REQUEST_JOB_ID = "requested-probes"

    def request(self, models: Iterable[str]) -> None:
        """Probe these models as soon as possible: what the core asked for
        (``RequestProbes``), on the core's cadence. Requests made while a pass is
        waiting or running are merged into the next one (one pass at a time, so the
        per-provider slots hold); the core asks again after its probe interval if a
        request is ever dropped. Needs ``start()`` first."""
        self._wanted.update(models)
        if self._wanted and self._scheduler.get_job(self.REQUEST_JOB_ID) is None:
            self._scheduler.add_job(
                self._run_requested,
                id=self.REQUEST_JOB_ID,
                name="requested probes",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
                replace_existing=True,
            )

    async def _run_requested(self) -> PassReport | None:
        while self._running_request:  # the previous requested pass still runs
            await asyncio.sleep(0.05)
        wanted, self._wanted = sorted(self._wanted), set()
        if not wanted:
            return None
        self._running_request = True
        try:
            return await self.run_once(wanted)
        finally:
            self._running_request = False

    async def run_once(self, targets: list[str] | None = None) -> PassReport | None:
        """One pass (over ``targets``, or the target source's list); never raises into
        APScheduler."""
        try:
            if targets is None:
                got = self._targets()
                targets = await got if inspect.isawaitable(got) else got
            report = await self.prober.run_pass(targets)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            log.info("failback pass cancelled: shutting down")
            return None
        except Exception:
            log.exception("failback pass failed")
            return None
        self.passes += 1
        self.last_report = report
        log.info("%s", report.sentence())
        if report.duration_s > self.interval_s:
            self.overruns += 1
            log.warning(
                "failback pass took %.1f s, longer than its %.0f s interval; the next pass "
                "is skipped or coalesced (fewer targets, more slots or a longer interval)",
                report.duration_s, self.interval_s,
            )
        return report
