"""The breaker process: account spend from the journal, trip at the cap, reset at midnight.

``Breaker`` is the imperative shell around the pure ledger and cut: it owns the ledger
file, the config writer and the outbox, and ``check(now)`` returns one sentence saying
what it decided (logged, and asserted in tests). ``run_breaker`` is the asyncio loop:
the shared source (its own read position, in the breaker's state directory), a timer
for the day boundary, signals that only set a flag, and sd_notify.

Order of durable steps for a trip, so a crash anywhere leaves a way back:
plan the cut -> save the plan in the ledger (write-ahead) -> replace ``openclaw.json``
-> save the trip as written -> enqueue the card -> mark it announced. On restart a
planned trip whose text hash is in the file is taken as written.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import re
import signal
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from watcher.breaker.config import BreakerConfig
from watcher.breaker.config_writer import ConfigWriteError, ConfigWriter, sha256
from watcher.breaker.cut import Cut, cut_provider, restore_cuts
from watcher.breaker.ledger import (
    Ledger,
    Trip,
    account,
    at_position,
    day_start,
    drop_stale,
    due_resets,
    due_trips,
    local_day,
    next_reset,
    roll,
    with_trip,
    with_written,
    without_trips,
)
from watcher.breaker.store import LedgerStore
from watcher.core.transitions import Alert, TransitionType
from watcher.parse.records import FallbackDecision

log = logging.getLogger("watcher.breaker")

OUTBOX_NAME = "outbox.sqlite3"

_SECRET_LINE = re.compile(
    r"""((["']?)[A-Za-z_]*(?:api[_-]?key|token|secret|password|authorization)[A-Za-z_]*\2"""
    r"""\s*:\s*)("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""",
    re.IGNORECASE,
)


def redact_config_text(text: str) -> str:
    """Blank every secret-looking value (``apiKey``, ``token``...) in config text or a diff."""
    return _SECRET_LINE.sub(lambda m: f'{m.group(1)}"[redacted]"', text)


class AlertSink(Protocol):
    def enqueue(
        self, alert: Alert, text: str, *, now: float, meta: dict[str, str] | None = None
    ) -> int: ...


def _render(alert: Alert, config: BreakerConfig) -> str:
    from watcher.alerts.cards import render

    return render(alert, suppressed_since_last=0, tz=config.zone)


def _iso(ts: float, config: BreakerConfig) -> str:
    return datetime.fromtimestamp(ts, config.zone).isoformat(timespec="seconds")


class Breaker:
    """Ledger, config writer and cards; ``check(now)`` returns its decision sentence."""

    def __init__(
        self,
        config: BreakerConfig,
        *,
        now: float,
        writer: ConfigWriter,
        store: LedgerStore | None,
        outbox: AlertSink | None,
        dry_run: bool = False,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.config = config
        self.zone = config.zone
        self.writer = writer
        self.store = store
        self.outbox = outbox
        self.dry_run = dry_run
        self.echo = echo
        loaded = store.load() if store is not None else None
        self.ledger = loaded or Ledger.empty(now, self.zone)
        self._saved: Ledger | None = loaded
        self._recover_planned()

    # -- persistence -------------------------------------------------------------------

    def _save(self) -> None:
        if self.store is not None and not self.dry_run and self.ledger != self._saved:
            self.store.save(self.ledger)
            self._saved = self.ledger

    def _recover_planned(self) -> None:
        """A trip planned but not confirmed: written iff the file holds the planned text."""
        try:
            current = sha256(self.writer.read()[0])
        except ConfigWriteError:
            current = None
        for trip in self.ledger.trips:
            if trip.planned is None or trip.cut is not None:
                continue
            if trip.planned_sha == current:
                log.warning("trip of %s was written before a restart; recording it", trip.provider)
                self.ledger = with_written(self.ledger, current)
                fixed = dataclasses.replace(trip, cut=trip.planned, planned=None, planned_sha=None)
            else:
                fixed = dataclasses.replace(trip, planned=None, planned_sha=None)
            self.ledger = with_trip(self.ledger, fixed)
        self._save()

    # -- input -------------------------------------------------------------------------

    def account_records(
        self, items: Iterable[tuple[str, Any, float | None]], now: float
    ) -> None:
        """Count ``(source position, parsed record, entry time)`` items."""
        ledger = self.ledger
        for key, record, realtime in items:
            if not isinstance(record, FallbackDecision):
                continue
            ts = record.ts if record.ts is not None else realtime if realtime is not None else now
            ledger = account(ledger, record, key, ts, self.config)
        self.ledger = ledger

    def mark_position(self, position: str, realtime: float | None) -> None:
        self.ledger = at_position(self.ledger, position, realtime)

    # -- decisions ---------------------------------------------------------------------

    def check(self, now: float) -> str:
        """Roll the day, reset ended trips, trip providers over their cap. One sentence."""
        said: list[str] = []
        self.ledger = roll(self.ledger, now, self.zone)
        self.ledger, stale = drop_stale(self.ledger, now, self.zone)
        for trip in stale:
            said.append(f"dropped the unwritten trip of {trip.provider} from {trip.day}")
        resets = due_resets(self.ledger, now, self.zone)
        if resets:
            said.append(self._reset(resets, now))
        for provider, why in due_trips(self.ledger, self.config):
            said.append(self._trip(provider, why, now))
        self._announce_recovered(now)
        self._save()
        if not said:
            tripped = [t.provider for t in self.ledger.trips if t.written]
            return (
                f"nothing to do: {len(tripped)} provider(s) cut off"
                + (f" ({', '.join(tripped)})" if tripped else "")
                + f", next reset {_iso(next_reset(now, self.zone), self.config)}"
            )
        return "; ".join(said)

    def _trip(self, provider: str, why: str, now: float) -> str:
        trip = self.ledger.trip_of(provider) or Trip(provider, self.ledger.day, now, why)

        def prepare(cut: Cut, new_sha: str) -> None:
            self.ledger = with_trip(
                self.ledger, dataclasses.replace(trip, planned=cut, planned_sha=new_sha)
            )
            self._save()

        try:
            outcome = self.writer.apply(
                lambda text: cut_provider(text, provider), dry_run=self.dry_run, prepare=prepare
            )
        except ConfigWriteError as exc:
            first = trip.attempts == 0 or trip.last_error != str(exc)
            self.ledger = with_trip(
                self.ledger,
                dataclasses.replace(trip, attempts=trip.attempts + 1, last_error=str(exc),
                                    planned=None, planned_sha=None),
            )
            if first:
                self._send(Alert(
                    type=TransitionType.BREAKER_TRIPPED, ts=now, from_model=provider,
                    reason="cap reached",
                    detail=f"{why}. The config was NOT changed: {exc}. Retrying on every check.",
                    extra={"provider": provider, "outcome": "not written"},
                ), now)
            return f"{provider} is over its cap ({why}) but openclaw.json was not changed: {exc}"
        cut = outcome.info
        if self.dry_run:
            self.echo(redact_config_text(outcome.diff) or f"(no change for {provider})")
        elif outcome.written:
            self.ledger = with_written(self.ledger, outcome.sha256)
        self.ledger = with_trip(self.ledger, dataclasses.replace(
            trip, cut=cut, attempts=trip.attempts + 1, last_error=None, planned=None,
            planned_sha=None, why=why,
        ))
        self._save()
        self._announce(self.ledger.trip_of(provider), now, backup=outcome.backup)
        verb = "would cut" if self.dry_run else "cut"
        return (
            f"{verb} {provider} off for {trip.day} ({why}): "
            f"{len(cut.removals)} fallback(s) removed, {len(cut.promotions)} primary(ies) "
            f"promoted, {len(cut.affected)} agent(s) affected"
            + (f", {len(cut.uncut)} left on it (nothing else in their chain)" if cut.uncut else "")
        )

    def _announce(self, trip: Trip | None, now: float, backup: Path | None = None) -> None:
        if trip is None or trip.cut is None or trip.announced:
            return
        cut = trip.cut
        extra = {
            "provider": trip.provider,
            "day": trip.day,
            "removed": str(len(cut.removals)),
            "reset_at": _iso(next_reset(day_start(trip.day, self.zone), self.zone), self.config),
        }
        if cut.promotions:
            extra["promoted"] = ", ".join(
                f"{p.owner}: {p.from_ref} -> {p.to_ref}" for p in cut.promotions
            )
        if cut.uncut:
            extra["still_on_provider"] = ", ".join(cut.uncut)
        if backup is not None:
            extra["backup"] = backup.name
        if self.dry_run:
            extra["outcome"] = "dry run: not written"
        removed = "\n".join(
            f"{r.owner}: {r.ref} (position {r.position})" for r in cut.removals
        )
        self._send(Alert(
            type=TransitionType.BREAKER_TRIPPED, ts=now, agents=tuple(sorted(cut.affected)),
            from_model=trip.provider, reason="cap reached",
            detail=f"{trip.why}.\nRemoved:\n{removed}" if removed else trip.why,
            extra=extra,
        ), now)
        self.ledger = with_trip(self.ledger, dataclasses.replace(trip, announced=True))

    def _announce_recovered(self, now: float) -> None:
        for trip in self.ledger.trips:
            if trip.written and not trip.announced:
                self._announce(trip, now)

    def _reset(self, trips: list[Trip], now: float) -> str:
        cuts = [t.cut for t in trips if t.cut is not None]
        try:
            outcome = self.writer.apply(lambda text: restore_cuts(text, cuts),
                                        dry_run=self.dry_run)
        except ConfigWriteError as exc:
            for trip in trips:
                if trip.reset_error != str(exc):
                    self._send(Alert(
                        type=TransitionType.BREAKER_RESET, ts=now, from_model=trip.provider,
                        detail=f"The reset could NOT be written: {exc}. Retrying on every check.",
                        extra={"provider": trip.provider, "outcome": "not written"},
                    ), now)
                self.ledger = with_trip(self.ledger,
                                        dataclasses.replace(trip, reset_error=str(exc)))
            return f"could not reset {', '.join(t.provider for t in trips)}: {exc}"
        if self.dry_run:
            self.echo(redact_config_text(outcome.diff) or "(reset: no change)")
        elif outcome.written:
            self.ledger = with_written(self.ledger, outcome.sha256)
        said = []
        for restore in outcome.info:
            extra = {"provider": restore.provider}
            if restore.left_alone:
                extra["left_alone"] = ", ".join(sorted(restore.left_alone))
            if restore.already:
                extra["already_restored"] = ", ".join(restore.already)
            if outcome.backup is not None:
                extra["backup"] = outcome.backup.name
            detail = "\n".join(
                f"{owner}: {why}; left as the operator set it"
                for owner, why in sorted(restore.left_alone.items())
            ) or None
            self._send(Alert(
                type=TransitionType.BREAKER_RESET, ts=now,
                agents=tuple(sorted(set(restore.restored) | set(restore.already))),
                to_model=restore.provider, detail=detail, extra=extra,
            ), now)
            said.append(
                f"restored {restore.provider} for {len(restore.restored)} place(s)"
                + (f", left {len(restore.left_alone)} changed by the operator alone "
                   f"({', '.join(sorted(restore.left_alone))})" if restore.left_alone else "")
            )
        self.ledger = without_trips(self.ledger, {t.provider for t in trips})
        self._save()
        return "; ".join(said)

    def _send(self, alert: Alert, now: float) -> None:
        log.warning("%s: %s", alert.type.value, alert.detail or alert.from_model or "")
        if self.outbox is None or self.dry_run:
            self.echo(f"[{alert.type.value}] {alert.detail or ''}".rstrip())
            return
        self.outbox.enqueue(alert, _render(alert, self.config), now=now)


# --- the process ----------------------------------------------------------------------


def _notify(state: str) -> None:
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    with contextlib.suppress(Exception):
        from systemd import daemon  # type: ignore[attr-defined]

        daemon.notify(state)


async def run_breaker(
    config: BreakerConfig,
    *,
    dry_run: bool = False,
    clock: Callable[[], float] = time.time,
    echo: Callable[[str], None] = print,
) -> int:
    """The daemon. Returns an exit code: 0 on a clean stop, 1 when it cannot run."""
    from watcher.source import SourceError, open_source

    state = Path(config.state_dir)
    if not dry_run:  # a dry run writes nothing at all, not even its state directory
        state.mkdir(parents=True, exist_ok=True)
    store = LedgerStore(state)
    writer = ConfigWriter(config.gateway_config, backups_keep=config.backups_keep,
                          cas_retries=config.cas_retries, clock=clock)
    outbox: Any = None
    alerts: Any = None
    if not dry_run and config.alerts is not None:
        # The breaker delivers its own cards: its outbox, its own Telegram sender.
        from watcher.alerts.service import AlertService
        from watcher.support.metrics import Metrics

        alerts = AlertService.from_config(config.alerts, state, Metrics())
        outbox = alerts.outbox
    elif not dry_run:
        from watcher.alerts.outbox import Outbox

        outbox = Outbox(state / OUTBOX_NAME)
    now = clock()
    breaker = Breaker(config, now=now, writer=writer, store=store, outbox=outbox,
                      dry_run=dry_run, echo=echo)
    since_midnight = max(1.0, now - day_start(local_day(now, config.zone), config.zone))
    follow: dict[str, Any] = {"follow": False} if dry_run else {}
    try:
        source = open_source(
            config.journal,
            state_dir=None if dry_run else state,
            units=tuple(config.units),
            start_at=f"since:{math.ceil(since_midnight)}s",
            clock=clock,
            # A dry run reads today's journal once, prints what it would write, and exits.
            **follow,
        )
        source.open()
    except SourceError as exc:
        log.error("cannot read %s: %s", config.journal, exc)
        return 1

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    lock = asyncio.Lock()

    def decide(sentence: str) -> None:
        log.info("%s", sentence)

    async def consume() -> None:
        async for batch in source.batches():
            async with lock:
                breaker.account_records(
                    ((e.position, source.parse(e), e.realtime) for e in batch.entries), clock()
                )
                breaker.mark_position(batch.position, batch.realtime)
                decide(breaker.check(clock()))
            if not dry_run:
                await source.commit(batch)
        if dry_run:  # caught up (an empty journal gives no batch): one last look
            async with lock:
                decide(breaker.check(clock()))

    async def timer() -> None:
        while not stop.is_set():
            async with lock:
                decide(breaker.check(clock()))
            now = clock()
            wait = min(config.check_interval, max(0.05, next_reset(now, config.zone) - now + 0.05))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    tasks: list[asyncio.Task[Any]] = [asyncio.create_task(consume(), name="consume")]
    if not dry_run:
        tasks.append(asyncio.create_task(timer(), name="timer"))
    if alerts is not None:
        await alerts.start()
    _notify("READY=1")
    log.info("failover-breaker running: %s, config %s%s", config.journal,
             config.gateway_config, " (dry run)" if dry_run else "")
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    _notify("STOPPING=1")
    source.close()
    stop.set()
    code = 0
    for task in tasks:
        if task in done and task.exception() is not None:
            log.error("%s failed: %r", task.get_name(), task.exception())
            code = 1
    for task in (*tasks, stopper):
        task.cancel()
    await asyncio.gather(*tasks, stopper, return_exceptions=True)
    if alerts is not None:
        await alerts.stop(grace_s=3.0)
    elif outbox is not None:
        outbox.close()
    return code
