"""The daemon's event loop around ``Watcher``: its tasks (tail, tick, watchdog), signals,
sd_notify, the pin-lock wait that keeps the loop free, probe and Telegram-control
wiring, chain polling, and the metrics server.

``Daemon`` holds the ``watcher.shell.watcher.Watcher`` it drives: the Watcher owns the
state, ``apply`` and the effects, and knows nothing of asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from watcher import __version__
from watcher.core.decide import probe_targets
from watcher.core.events import ChainLint, ChainsChanged, Event, Tick
from watcher.core.evidence import ProbeResult
from watcher.core.state import State
from watcher.core.transitions import Alert, TransitionType
from watcher.gateway.chains import GatewayConfig
from watcher.gateway.lint import findings
from watcher.pins.check import chains_validator
from watcher.pins.store import DEFAULT_LOCK_TIMEOUT
from watcher.probe.budget import BudgetStatus
from watcher.probe.client import ProbeClient, ProbeTimeouts
from watcher.probe.drill import DrillReport, drill_reported, run_drill
from watcher.probe.providers import ProviderDirectory
from watcher.probe.scheduler import FailbackProber, ProbeScheduler
from watcher.shell.snapshot import SnapshotPosition
from watcher.source import Source, SourceError, open_source

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from watcher.oversight.poller import TelegramControl
    from watcher.shell.watcher import Watcher

log = logging.getLogger(__name__)


# How often a decision waiting for a held pin lock tries it again. flock(1) waiters
# queue in the kernel and get the lock first anyway; this only bounds the extra delay.
LOCK_POLL_ASYNC_S = 0.02


def sd_notify(message: str) -> None:
    """sd_notify through systemd-python; a no-op outside systemd."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    try:
        from systemd import daemon as sd_daemon  # type: ignore[attr-defined]

        sd_daemon.notify(message)
    except (ImportError, OSError) as exc:  # pragma: no cover - depends on the host
        log.debug("sd_notify failed: %s", exc)


class Daemon:
    """The running daemon: a ``Watcher`` (state and ``apply``) driven by tasks, signals
    and wiring. Only this knows about asyncio; the ``Watcher`` knows nothing of it."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher
        self.settings = watcher.settings
        self._stop = asyncio.Event()
        self._reload = False
        self._lock_wait_since: float | None = None  # monotonic; a decision waits for it
        self.metrics_port: int | None = None

    @property
    def state(self) -> State:
        return self.watcher.state

    @property
    def state_dir(self) -> Path:
        return self.watcher.state_dir

    @contextlib.asynccontextmanager
    async def pin_lock_held(self) -> AsyncIterator[None]:
        """Hold the pin file lock, waiting for it without blocking the event loop.

        A ``flock <pin>.lock ...`` held by an operator (or a stuck script) used to stop
        the loop inside ``apply``: no watchdog ping, no STATUS, no cards, no Telegram.
        Now only the decision waits; the lock is polled, and everything else runs."""
        started = time.monotonic()
        warned_at = 0.0
        while not self.watcher.pins.try_hold():
            if self._lock_wait_since is None:
                self._lock_wait_since = started
            await asyncio.sleep(LOCK_POLL_ASYNC_S)
            waited = time.monotonic() - started
            if waited - warned_at >= DEFAULT_LOCK_TIMEOUT:
                warned_at = waited
                self.watcher.metrics.watcher.pin_lock_timeouts.inc()
                log.warning(
                    "the pin file lock %s.lock has been held by someone else for %.0f s; "
                    "decisions wait for it, everything else goes on (is an operator "
                    "script looping on it?)",
                    self.watcher.pins.path,
                    waited,
                )
        if self._lock_wait_since == started:
            self._lock_wait_since = None
        try:
            yield
        finally:
            self.watcher.pins.release_hold()

    async def apply_async(
        self,
        events: list[Event],
        *,
        position: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> list[str]:
        """``apply`` from the event loop: the pin lock is awaited first, so ``apply``
        finds it held and never blocks the loop."""
        async with self.pin_lock_held():
            return self.watcher.apply(events, position=position, now=now)

    def open_source(self) -> Source:
        j = self.settings.journal
        spec = j.source
        source = open_source(
            spec,
            units=j.units,
            identifiers=j.identifiers,
            start_at=j.start_at,
            catch_up_age=j.catch_up_age_s,
            max_batch=j.max_batch,
            store=SnapshotPosition(self.watcher.snapshot, spec),
        )
        source.open()
        return source

    # -- probes -----------------------------------------------------------------------

    def build_prober(self, config: GatewayConfig) -> FailbackProber:
        directory = ProviderDirectory.build(self.settings.providers, config.providers)
        client = ProbeClient(
            timeouts=ProbeTimeouts(total=self.settings.probes.timeout_s),
            environ=self.watcher.environ,
        )

        async def on_result(result: ProbeResult) -> None:
            provider = result.model.partition("/")[0]
            outcome = "ok" if result.ok else str(result.failure_class or "unknown")
            self.watcher.metrics.watcher.probe_results.labels(provider, outcome).inc()
            await self.apply_async([result])

        async def on_budget(status: BudgetStatus) -> None:
            self.watcher._carry_out_alert(
                Alert(
                    TransitionType.PROBE_BUDGET_EXHAUSTED,
                    ts=self.watcher.clock(),
                    detail=f"provider {status.provider}: {status.used}/{status.limit} probes "
                    "used today; probing stops until the reset",
                )
            )

        return FailbackProber(
            client,
            directory,
            on_result,
            on_budget,
            global_cap=self.settings.probes.global_cap,
        )

    def probe_targets(self) -> list[str]:
        return probe_targets(self.watcher.state, self.watcher.clock(), self.watcher.policy)

    async def probe_now(self, ref: str) -> ProbeResult:
        """One probe of ``ref`` right now, for an operator's failback: the same provider
        directory and probe settings as the scheduled probes, outside their cadence."""
        directory = (
            self.watcher.prober.directory
            if self.watcher.prober is not None
            else ProviderDirectory.build(
                self.settings.providers, self.watcher.chain_source.config.providers
            )
        )
        provider = directory.for_model(ref)
        if provider is None:
            return ProbeResult(
                model=ref,
                ok=False,
                started_at=self.watcher.clock(),
                latency_s=0.0,
                probe_id=f"operator-{int(self.watcher.clock() * 1000)}",
                detail=f"no provider settings for {ref}; cannot probe it",
            )
        timeouts = ProbeTimeouts(total=self.settings.probes.timeout_s)
        async with ProbeClient(timeouts=timeouts, environ=self.watcher.environ) as client:
            return await client.probe(ref, provider)

    # -- drills ----------------------------------------------------------------------------

    async def drill_once(self) -> DrillReport:
        """One drill of every chain (``watcher.probe.drill``), sharing the failback
        prober's slots and budget when probing is on. Results for models no agent is
        served by are health evidence (a drill moves no pin by itself); the summary
        goes through ``apply`` as one DRILL_REPORT card, and CHAIN_DEGRADED for each
        agent that lost its depth or cross-provider fallback since the last drill."""
        w = self.watcher
        config = w.chain_source.config
        prober = w.prober
        directory = (
            prober.directory if prober is not None
            else ProviderDirectory.build(self.settings.providers, config.providers)
        )

        async def evidence(result: ProbeResult) -> None:
            served = {agent.serving for agent in w.state.agents.values()}
            if result.model not in served:
                await self.apply_async([result])

        timeouts = ProbeTimeouts(total=self.settings.probes.timeout_s)
        async with ProbeClient(timeouts=timeouts, environ=w.environ) as client:
            report = await run_drill(
                config.chains, directory, client,
                include_paid=self.settings.drill.include_paid,
                paid_providers=w.policy.paid_providers, prober=prober, on_result=evidence,
            )
        metrics = w.metrics.watcher
        for agent, drill in report.agents.items():
            metrics.chain_working_depth.labels(agent).set(drill.working_depth)
        metrics.drill_last_success.set(w.clock())
        await self.apply_async([drill_reported(report)])
        log.info("drill: %d agent(s), %d degraded", len(report.agents), len(report.degraded))
        return report

    def _start_drills(self) -> AsyncIOScheduler | None:
        schedule = self.settings.drill.schedule
        if schedule is None:
            return None
        scheduler = AsyncIOScheduler()
        scheduler.add_job(
            self.drill_once, CronTrigger.from_crontab(schedule), id="drill",
            name="chain drill", max_instances=1, coalesce=True, misfire_grace_time=3600,
        )
        scheduler.start()
        return scheduler

    # -- operator commands ---------------------------------------------------------------

    def build_control(self) -> TelegramControl | None:
        """The Telegram commands and card buttons, when ``[control]`` enables them."""
        if not self.settings.control.enabled or self.settings.alerts is None:
            return None
        from watcher.oversight.poller import TelegramControl

        control = TelegramControl.from_settings(
            self.settings.control,
            self.settings.alerts,
            self,
            environ=self.watcher.environ,
            clock=self.watcher.clock,
        )
        if self.watcher.alert_service is not None:
            self.watcher.alert_service.sender.markup_for = control.markup_for
        return control

    # -- reload, status ----------------------------------------------------------------

    def poll_chains(self) -> None:
        stamp = self.watcher.chain_source.stamp
        config, error = self.watcher.chain_source.poll()
        if self.watcher.chain_source.stamp != stamp:  # the file changed: its plugins section too
            self.watcher.check_plugin(announce=False)
        if error is not None:
            self.watcher.apply([ChainsChanged(config.chains, error=str(error))])
        elif dict(config.chains) != dict(self.watcher.state.chains):
            self.watcher.pins.validator = chains_validator(config.chains)
            self.watcher.apply(
                [self.watcher.chains_changed(), ChainLint(tuple(findings(config)))]
            )
            if self.watcher.prober is not None:
                self.watcher.prober.update_directory(
                    ProviderDirectory.build(self.settings.providers, config.providers)
                )

    def status_line(self) -> str:
        in_fallback = sorted(a for a, s in self.watcher.state.agents.items() if s.in_fallback)
        now = self.watcher.clock()
        cooling = sorted(r for r, h in self.watcher.state.models.items() if h.in_cooldown(now))
        lag = f"{self.watcher.lag_s:.1f}s" if self.watcher.lag_s is not None else "n/a"
        return (
            f"{len(in_fallback)} agent(s) in fallback"
            + (f" ({', '.join(in_fallback)})" if in_fallback else "")
            + f"; {len(cooling)} model(s) cooling down; journal lag {lag}"
            + self._lock_wait_note()
        )

    def _lock_wait_note(self) -> str:
        since = self._lock_wait_since
        if since is None:
            return ""
        return f"; decisions waiting for the pin lock for {time.monotonic() - since:.0f}s"

    # -- the loop ---------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload = True

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        try:
            source = self.open_source()
        except SourceError as exc:
            log.error("%s", exc)
            return 1
        metrics_server = self._start_metrics()
        drills = self._start_drills()
        control = self.build_control()  # before the sender starts: cards get buttons
        if self.watcher.alert_service is not None:
            await self.watcher.alert_service.start()
        if self.watcher.alertmanager is not None:
            await self.watcher.alertmanager.start()
        if control is not None:
            await control.start()
        if self.settings.probes.enabled:
            self.watcher.prober = self.build_prober(self.watcher.chain_source.config)
            # No timer of its own (so no jitter or first-run delay): it runs the probes
            # apply hands it, on the core's cadence; interval_s is for its overrun warning.
            self.watcher.scheduler = ProbeScheduler(
                self.watcher.prober, self.probe_targets, interval_s=self.settings.probes.interval_s
            )
            self.watcher.scheduler.start(on_request_only=True)
        # The watchdog first: the start-up step below may wait for a held pin lock.
        watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
        async with self.pin_lock_held():
            self.watcher.apply([Tick()])  # adopt hand edits made while stopped; expire old holds
            self.watcher.check_plugin(announce=True)
            self.watcher.heartbeat()
        sd_notify(f"READY=1\nSTATUS={self.status_line()}")
        log.info("failover-watcher %s running: %s", __version__, self.status_line())
        tasks = [
            asyncio.create_task(self._tail(source), name="tail"),
            asyncio.create_task(self._ticker(), name="tick"),
            watchdog,
        ]
        stopper = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        crashed = [t for t in done if t is not stopper and t.exception() is not None]
        sd_notify("STOPPING=1")
        log.info("stopping: draining")
        source.close()
        for task in (*tasks, stopper):
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.watcher.scheduler is not None:
            self.watcher.scheduler.shutdown()
        if drills is not None:
            drills.shutdown(wait=False)
        if control is not None:
            await control.stop()
        if self.watcher.alertmanager is not None:  # its queue is in the outbox: stop it first
            await self.watcher.alertmanager.stop(grace_s=3.0)
        if self.watcher.alert_service is not None:
            await self.watcher.alert_service.stop(grace_s=3.0)
        else:
            self.watcher.intake.outbox.close()
        if control is not None:
            control.close()
        if metrics_server is not None:
            metrics_server.shutdown()
        for task in crashed:
            log.error("%s failed: %r", task.get_name(), task.exception())
        return 1 if crashed else 0

    async def _tail(self, source: Source) -> None:
        async for batch in source.batches():
            async with self.pin_lock_held():
                self.watcher.apply_batch(batch, source)
            if self._stop.is_set():
                break

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_interval_s)
            async with self.pin_lock_held():
                if self._reload:
                    self._reload = False
                    sd_notify("RELOADING=1")
                    self.poll_chains()
                    sd_notify("READY=1")
                    log.info("reloaded: %s", self.status_line())
                else:
                    self.poll_chains()
                self.watcher.apply([Tick()])
                self.watcher.heartbeat()

    async def _watchdog(self) -> None:
        """``WATCHDOG=1`` at half the unit's ``WatchdogSec``, and ``STATUS=`` every tick.

        Nothing here waits for the pin lock or the journal: the pings say the loop is
        alive, so they must not stop while a decision waits (the status says so)."""
        usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        ping_s = usec / 2_000_000 if usec > 0 else None
        status_s = self.settings.tick_interval_s
        next_ping = next_status = time.monotonic()
        while True:
            now = time.monotonic()
            if ping_s is not None and now >= next_ping:
                sd_notify("WATCHDOG=1")
                next_ping = now + ping_s
            if now >= next_status:
                sd_notify(f"STATUS={self.status_line()}")
                next_status = now + status_s
            wake = min(next_status, next_ping) if ping_s is not None else next_status
            await asyncio.sleep(max(0.0, wake - time.monotonic()))

    def _start_metrics(self) -> WSGIServer | None:
        m = self.settings.metrics
        if not m.enabled:
            return None
        from prometheus_client import start_http_server

        registry = self.watcher.metrics.registry
        server, _thread = start_http_server(m.port, addr=m.host, registry=registry)
        self.metrics_port = server.server_address[1]
        (self.watcher.state_dir / "metrics.port").write_text(f"{self.metrics_port}\n")
        log.info("metrics on http://%s:%d/metrics", m.host, self.metrics_port)
        return server


