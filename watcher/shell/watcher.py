"""``failover-watcher run``: the imperative shell around ``decide``.

One asyncio process, one writer of the core state. The parts:

- the journal source (``watcher.source``) feeds bounded batches;
- every event (journal evidence, probe results, ticks, pin-file edits, chain
  reloads) goes through ``decide`` in ``Watcher.apply``; nothing else mutates state;
- effects are carried out by thin adapters: pin store, audit log, alert intake
  (outbox; the Telegram sender is its own task), metrics;
- probes run on APScheduler (``watcher.probe``) over ``probe_targets``;
- signals only set flags; the loop acts on them (SIGHUP reload, SIGTERM drain).

Crash consistency: each applied batch first writes ``core-state.json`` atomically
(state, source position, and the effects still to carry out: alerts with sequence
numbers, audit records with the audit sequence they must reach, a pin write), then
carries the effects out idempotently. On restart the snapshot is the authority: the
source resumes from its position, and pending effects are replayed, skipping what
already landed (the outbox remembers the last alert sequence it took; the audit log
its own sequence). So a SIGKILL anywhere neither loses nor repeats a transition.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import logging
import os
import random
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any, TypeVar

from filelock import Timeout as FileLockTimeout

from watcher import __version__
from watcher.alerts.intake import AlertIntake
from watcher.alerts.outbox import DEFAULT_FILENAME, Outbox
from watcher.alerts.service import AlertService
from watcher.audit.log import AuditLog, anchor_of
from watcher.classify.evidence import to_event
from watcher.config import WatcherSettings
from watcher.core.decide import decide, initial_state, probe_targets
from watcher.core.effects import (
    AppendAudit,
    EnqueueAlert,
    MuteAlerts,
    RequestProbes,
    WritePins,
)
from watcher.core.events import (
    ChainsChanged,
    Event,
    PinFileEdited,
    PinFileRejected,
    PluginStateEvidence,
    Tick,
)
from watcher.core.evidence import ProbeResult
from watcher.core.state import State, from_json, to_json, to_pinfile
from watcher.core.transitions import Alert, TransitionType
from watcher.gateway.chains import ChainSource, GatewayConfig, GatewayConfigError
from watcher.gateway.plugin import PluginCheck, check_plugin
from watcher.parse.records import FallbackDecision, PluginState, Unparsed
from watcher.pins.check import chains_validator
from watcher.pins.store import (
    DEFAULT_LOCK_TIMEOUT,
    PIN_FILENAME,
    AdoptedEdit,
    PinStore,
    RejectedEdit,
)
from watcher.probe.client import ProbeClient, ProbeTimeouts
from watcher.probe.providers import ProviderDirectory
from watcher.probe.scheduler import FailbackProber, ProbeScheduler
from watcher.shell.statedir import SNAPSHOT_FILENAME
from watcher.source import Batch, PositionStore, SavedPosition, SourceError, open_source
from watcher.support.atomic import atomic_write_text
from watcher.support.metrics import Metrics

log = logging.getLogger("watcher.shell.watcher")
T = TypeVar("T")

AUDIT_FILENAME = "audit.jsonl"
ALERT_SEQ_META = "daemon_alert_seq"
SNAPSHOT_VERSION = 1


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


@dataclass
class Pending:
    """Effects decided and persisted but maybe not yet carried out."""

    alerts: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    audit_target: int = 0  # the audit log's seq once ``audit`` has landed
    write_pins: bool = False
    mutes: list[tuple[str, float]] = field(default_factory=list)  # operator /mute

    def to_json(self) -> dict[str, Any]:
        return {
            "alerts": [[seq, a] for seq, a in self.alerts],
            "audit": self.audit,
            "audit_target": self.audit_target,
            "write_pins": self.write_pins,
            "mutes": [[key, until] for key, until in self.mutes],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pending:
        return cls(
            alerts=[(int(seq), a) for seq, a in data.get("alerts", [])],
            audit=list(data.get("audit", [])),
            audit_target=int(data.get("audit_target", 0)),
            write_pins=bool(data.get("write_pins", False)),
            mutes=[(str(key), float(until)) for key, until in data.get("mutes", [])],
        )

    def __bool__(self) -> bool:
        return bool(self.alerts or self.audit or self.write_pins or self.mutes)


class SnapshotError(ValueError):
    """``core-state.json`` cannot be read; the message names the file and why."""


class Snapshot:
    """``core-state.json``: the full core state, the source position, pending effects."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise SnapshotError(f"{path} is not valid JSON ({exc})") from None
            if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
                version = data.get("version") if isinstance(data, dict) else None
                raise SnapshotError(f"{path}: unknown snapshot version {version!r}")
            self.data = data

    @property
    def position(self) -> dict[str, Any] | None:
        pos = self.data.get("position")
        return pos if isinstance(pos, dict) else None

    def write(
        self,
        state: State,
        position: dict[str, Any] | None,
        pending: Pending,
        alert_seq: int,
        extra: dict[str, Any],
    ) -> None:
        self.data = {
            "version": SNAPSHOT_VERSION,
            "state": to_json(state),
            "position": position,
            "pending": pending.to_json(),
            "alert_seq": alert_seq,
            **extra,
        }
        atomic_write_text(self.path, json.dumps(self.data, separators=(",", ":")), mode=0o640)


class SnapshotPosition(PositionStore):
    """The source's position lives in the snapshot, written with the state it led to,
    so state and position can never disagree after a crash."""

    def __init__(self, snapshot: Snapshot, source: str) -> None:
        super().__init__(snapshot.path, source)
        self.snapshot = snapshot

    def load(self) -> SavedPosition | None:
        pos = self.snapshot.position
        if not pos or pos.get("source") != self.source or not pos.get("position"):
            return None
        return SavedPosition(pos["position"], pos.get("realtime"), self.source)

    def save(self, position: str, realtime: float | None) -> None:
        """The daemon writes positions in the snapshot; the source's commit is a no-op."""


class Watcher:
    """The wired daemon. ``apply`` is the only place state changes."""

    def __init__(
        self,
        settings: WatcherSettings,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.Random()
        self.environ = environ
        # A provider marked paid in [providers] is paid for the policy too.
        paid = {pid for pid, p in settings.providers.items() if p.paid}
        self.policy = settings.policy.model_copy(
            update={"paid_providers": settings.policy.paid_providers | paid}
        )
        self.state_dir = Path(settings.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        self.metrics = Metrics()
        self._stop = asyncio.Event()
        self._reload = False
        self._alert_seq = 0
        self._position: dict[str, Any] | None = None
        self.last_sentence = ""
        self.applied_entries = 0
        self.lag_s: float | None = None
        self._pins_written_at: float | None = None
        self._lock_wait_since: float | None = None  # monotonic; a decision waits for it
        self.plugin_check: PluginCheck | None = None

        self.chain_source = ChainSource(settings.gateway_config)
        self.snapshot = Snapshot(self.state_dir / SNAPSHOT_FILENAME)
        self.audit, audit_problem = AuditLog.open_or_restart(
            self.state_dir / AUDIT_FILENAME, anchor=anchor_of(self.snapshot.data)
        )
        self.pins = PinStore(
            self.state_dir / PIN_FILENAME,
            validator=chains_validator(self.chain_source.config.chains),
        )
        self.alert_service: AlertService | None = None
        if settings.alerts is not None:
            self.alert_service = AlertService.from_config(
                settings.alerts, self.state_dir, self.metrics, environ=environ
            )
            self.intake = self.alert_service.intake
        else:
            outbox = Outbox(self.state_dir / DEFAULT_FILENAME, metrics=self.metrics.alerts)
            self.intake = AlertIntake(outbox, tz=UTC, metrics=self.metrics.alerts)
        self.state = self._load_state()
        self._recover()
        chains = self.chain_source.config.chains
        if dict(self.state.chains) != dict(chains):
            # openclaw.json changed while we were stopped: through apply, so the pin
            # file is rewritten and the change audited, like a change seen while running.
            self.apply([ChainsChanged(chains)])
        if not self.pins.path.exists():  # first start: the gateway gets a pin file at once
            self._write_pins()
        if audit_problem:
            log.warning("the audit log %s did not verify and was set aside; a new chain "
                        "starts, its first record names the old file: %s",
                        self.audit.path, audit_problem)
            self._carry_out_alert(
                Alert(
                    TransitionType.AUDIT_TAMPERED,
                    ts=self.clock(),
                    detail=audit_problem,
                    extra={"set_aside_as": self.audit.set_aside_as or "?"},
                )
            )
        self.prober: FailbackProber | None = None
        self.scheduler: ProbeScheduler | None = None

    # -- start-up ---------------------------------------------------------------------

    def _load_state(self) -> State:
        chains = self.chain_source.config.chains
        raw = self.snapshot.data.get("state")
        if raw is None:
            return initial_state(chains, self.policy)
        state = from_json(raw)
        self._alert_seq = int(self.snapshot.data.get("alert_seq", 0))
        self._position = self.snapshot.position
        return state

    def _recover(self) -> None:
        """Carry out effects a crash left pending, skipping what already landed."""
        pending = Pending.from_json(self.snapshot.data.get("pending") or {})
        if pending:
            log.info("recovering effects left pending by the last run")
            self._carry_out(pending, audit_repairs=self.audit.repaired_at_open)

    # -- the one mutation point -------------------------------------------------------

    def apply(
        self,
        events: list[Event],
        *,
        position: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> list[str]:
        """Decide every event, persist state+position+effects, carry the effects out.

        Returns the decision sentences (the daemon logs them; tests assert on them)."""
        now = self.clock() if now is None else now
        events = self._pin_edit_events() + events
        pending = Pending()
        sentences: list[str] = []
        for event in events:
            decided = decide(
                self.state, event, now, self.policy, jitter=self.rng.uniform(-1.0, 1.0)
            )
            self.state = decided.state
            noteworthy = False
            for effect in decided.effects:
                if isinstance(effect, EnqueueAlert):
                    self._alert_seq += 1
                    # Who is flapping right after *this* event, not after the batch: the
                    # dedup's flap rule must not depend on batching or on where a crash fell.
                    pending.alerts.append(
                        (
                            self._alert_seq,
                            {**effect.alert.to_json(), "_flapping": self._flapping_agents()},
                        )
                    )
                    self.metrics.watcher.transitions.labels(effect.alert.type.value).inc()
                    noteworthy = True
                elif isinstance(effect, AppendAudit):
                    pending.audit.append({"type": effect.type, "data": dict(effect.data)})
                    noteworthy = True
                elif isinstance(effect, WritePins):
                    # The pin file's view changed (a move, a model going up or down, a
                    # success inside a cooldown): the operator should see why.
                    pending.write_pins = True
                    noteworthy = True
                elif isinstance(effect, MuteAlerts):
                    pending.mutes.append((effect.key, effect.until))
                elif isinstance(effect, RequestProbes):
                    pass  # the probe scheduler owns the cadence (see module docstring)
            if decided.sentence:
                sentences.append(decided.sentence)
                self.last_sentence = decided.sentence
                (log.info if noteworthy else log.debug)("%s", decided.sentence)
        pending.audit_target = self.audit.seq + len(pending.audit)
        moved = position is not None and position != self._position
        if moved:
            self._position = position
        # The first apply writes the snapshot even with nothing to say: ``status`` reads
        # it, and a daemon on a quiet journal is still a running daemon.
        if pending or moved or not self.snapshot.path.exists():
            self.snapshot.write(
                self.state,
                self._position,
                pending,
                self._alert_seq,
                {
                    "written_at": now,
                    "lag_s": self.lag_s,
                    # the audit's last durable record: a later tail deletion shows
                    "audit_head": {"seq": self.audit.seq, "hash": self.audit.head},
                    **self._clock_anchor(),
                },
            )
            self._carry_out(pending)
        self._update_gauges(now)
        return sentences

    def _clock_anchor(self) -> dict[str, Any]:
        """A ``SteadyClock``'s anchor, saved so a restart in the same boot resumes its
        timeline (``watcher.support.clock``); nothing for a plain callable clock."""
        anchor = getattr(self.clock, "anchor", None)
        return {"clock": anchor()} if callable(anchor) else {}

    def _pin_edit_events(self) -> list[Event]:
        read = self._with_pin_lock(self.pins.read)
        if isinstance(read.edit, AdoptedEdit):
            return [PinFileEdited(read.edit.pins)]
        if isinstance(read.edit, RejectedEdit):
            where = str(read.edit.quarantined_to) if read.edit.quarantined_to else None
            return [PinFileRejected(read.edit.error, where)]
        return []

    def _carry_out(self, pending: Pending, *, audit_repairs: int = 0) -> None:
        """``audit_repairs``: records the audit log appended at open (a torn tail noted),
        which took sequence numbers the pending records were counted against."""
        done = int(self.intake.outbox.get_meta(ALERT_SEQ_META) or 0)
        alerts: list[tuple[Alert, list[str]]] = []
        last_seq = done
        for seq, data in pending.alerts:
            if seq <= done:
                continue
            # "_flapping", when ``apply`` recorded it, is who was flapping right after the
            # event that raised the alert: the flap rule of the dedup must not depend on
            # how the journal was batched or where a crash fell.
            fields = dict(data)
            flapping = fields.pop("_flapping", None)  # absent in snapshots of older runs
            if flapping is None:
                flapping = self._flapping_agents()
            alerts.append((Alert.from_json(fields), flapping))
            last_seq = max(last_seq, seq)
        if alerts:
            # One outbox transaction for the whole batch (one fsync, issue 10): every card,
            # the dedup state of the suppressed ones and the highest sequence land together
            # or not at all, so a SIGKILL can neither repeat nor lose a card.
            self.intake.submit_many(alerts, now=self.clock(), meta={ALERT_SEQ_META: str(last_seq)})
        missing = pending.audit_target - (self.audit.seq - audit_repairs)
        if missing > 0:
            with self.audit.batch():
                for record in pending.audit[-missing:]:
                    self.audit.append(record["type"], record["data"])
        for key, until in pending.mutes:  # idempotent: a replay sets the same mute again
            self.intake.mute(key, until)
        if pending.write_pins:
            self._write_pins()

    def _write_pins(self) -> None:
        """Write the state to the pin file without losing a hand edit that landed after
        ``apply`` read the file (a ``flock ... jq`` between the read and this write).

        The store rebases such an edit onto the state instead of overwriting it, and it
        goes through ``apply`` like any other edit (adopted and audited, or quarantined);
        that writes again, until a write lands with no edit in between."""
        while not self._with_pin_lock(
            lambda: self.pins.write_keeping_edits(to_pinfile(self.state, self.clock()))
        ):
            self.apply([])
        self._pins_written_at = self.clock()

    def heartbeat(self) -> None:
        """Refresh the pin file's ``heartbeat_at`` when it is due: the gateway plugin
        stops obeying a pin file whose heartbeat is older than its ``maxAgeSeconds``, so
        a stopped watcher can never keep steering the gateway."""
        last = self._pins_written_at
        if last is None or self.clock() - last >= self.settings.plugin.heartbeat_s:
            self._write_pins()

    def check_plugin(self, *, announce: bool) -> PluginCheck:
        """Does ``openclaw.json`` load the plugin so that this pin file steers? When it
        does not, the core hears it (decision lines about primary attempts count again)
        and, at start-up, the operator gets one PLUGIN_INACTIVE card saying why."""
        check = check_plugin(self.settings.gateway_config, self.pins.path)
        previous = self.plugin_check
        self.plugin_check = check
        if check.ok or (previous is not None and previous.problems == check.problems):
            return check
        why = "; ".join(check.problems)
        log.warning("the pin file cannot steer the gateway: %s", why)
        self.apply([PluginStateEvidence(PluginState(False, "not_configured", why))])
        if announce and self.settings.plugin.required:
            self._carry_out_alert(
                Alert(
                    TransitionType.PLUGIN_INACTIVE,
                    ts=self.clock(),
                    detail=f"openclaw.json does not let the pin steer the gateway: {why}",
                )
            )
        return check

    def _with_pin_lock(self, step: Callable[[], T]) -> T:
        """Run a pin-store step, waiting as long as it takes for the lock.

        ``flock(1)`` waiters queue in the kernel ahead of the store's polling lock, so a
        busy operator script can hold the watcher off for longer than the store's
        timeout. Giving up would drop the batch being applied (or let the task die and
        the daemon exit); waiting, loudly, keeps every decision. The journal keeps the
        entries meanwhile."""
        while True:
            try:
                return step()
            except FileLockTimeout:
                self.metrics.watcher.pin_lock_timeouts.inc()
                log.warning(
                    "the pin file lock %s.lock has been held by someone else for %.0f s; "
                    "still waiting (is an operator script looping on it?)",
                    self.pins.path,
                    DEFAULT_LOCK_TIMEOUT,
                )

    @contextlib.asynccontextmanager
    async def pin_lock_held(self) -> AsyncIterator[None]:
        """Hold the pin file lock, waiting for it without blocking the event loop.

        A ``flock <pin>.lock ...`` held by an operator (or a stuck script) used to stop
        the loop inside ``apply``: no watchdog ping, no STATUS, no cards, no Telegram.
        Now only the decision waits; the lock is polled, and everything else runs."""
        started = time.monotonic()
        warned_at = 0.0
        while not self.pins.try_hold():
            if self._lock_wait_since is None:
                self._lock_wait_since = started
            await asyncio.sleep(LOCK_POLL_ASYNC_S)
            waited = time.monotonic() - started
            if waited - warned_at >= DEFAULT_LOCK_TIMEOUT:
                warned_at = waited
                self.metrics.watcher.pin_lock_timeouts.inc()
                log.warning(
                    "the pin file lock %s.lock has been held by someone else for %.0f s; "
                    "decisions wait for it, everything else goes on (is an operator "
                    "script looping on it?)",
                    self.pins.path,
                    waited,
                )
        if self._lock_wait_since == started:
            self._lock_wait_since = None
        try:
            yield
        finally:
            self.pins.release_hold()

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
            return self.apply(events, position=position, now=now)

    def _carry_out_alert(self, alert: Alert) -> None:
        """An alert the shell raises itself (audit set aside, probe budget spent)."""
        self.intake.submit(alert, now=self.clock(), flapping=self._flapping_agents())

    def _flapping_agents(self) -> list[str]:
        return sorted(agent for agent, s in self.state.agents.items() if s.flapping)

    def _update_gauges(self, now: float) -> None:
        w = self.metrics.watcher
        for agent_id, agent in self.state.agents.items():
            w.in_fallback.labels(agent_id).set(1 if agent.in_fallback else 0)
        for ref, health in self.state.models.items():
            until = health.cooldown_until or 0.0
            w.cooldown_seconds.labels(ref).set(max(0.0, until - now))

    # -- journal ----------------------------------------------------------------------

    def events_of(self, batch: Batch, source: Any) -> list[Event]:
        events: list[Event] = []
        w = self.metrics.watcher
        # Counted per batch, then one inc per label pair: ``labels()`` validates and
        # takes a lock on every call, and a batch repeats a handful of pairs.
        counted: dict[tuple[str, str], int] = {}
        unparsed = 0
        for entry in batch.entries:
            record = source.parse(entry)
            if isinstance(record, Unparsed):
                unparsed += 1
                continue
            event = to_event(record, position=entry.position, catch_up=batch.catch_up)
            if event is None:
                continue
            if isinstance(record, FallbackDecision):
                cls = getattr(event, "failure_class", None)
                pair = (record.decision.value, cls.value if cls else "none")
                counted[pair] = counted.get(pair, 0) + 1
            events.append(event)
        if unparsed:
            w.unparsed.inc(unparsed)
        for (decision, failure_class), count in counted.items():
            w.events.labels(decision, failure_class).inc(count)
        return events

    def apply_batch(self, batch: Batch, source: Any) -> list[str]:
        events = self.events_of(batch, source)
        position = {
            "source": self.settings.journal.source,
            "position": batch.position,
            "realtime": batch.realtime,
        }
        sentences = self.apply(events, position=position)
        self.applied_entries += len(batch.entries)
        if batch.realtime is not None:
            self.lag_s = max(0.0, self.clock() - batch.realtime)
            self.metrics.watcher.journal_lag.set(self.lag_s)
            self.metrics.watcher.last_applied.set(batch.realtime)
        return sentences

    def open_source(self) -> Any:
        j = self.settings.journal
        spec = j.source
        source = open_source(
            spec,
            units=j.units,
            identifiers=j.identifiers,
            start_at=j.start_at,
            catch_up_age=j.catch_up_age_s,
            max_batch=j.max_batch,
            store=SnapshotPosition(self.snapshot, spec),
        )
        source.open()
        return source

    # -- probes -----------------------------------------------------------------------

    def build_prober(self, config: GatewayConfig) -> FailbackProber:
        directory = ProviderDirectory.build(self.settings.providers, config.providers)
        client = ProbeClient(
            timeouts=ProbeTimeouts(total=self.settings.probes.timeout_s),
            environ=self.environ,
        )

        async def on_result(result: ProbeResult) -> None:
            provider = result.model.partition("/")[0]
            outcome = "ok" if result.ok else str(result.failure_class or "unknown")
            self.metrics.watcher.probe_results.labels(provider, outcome).inc()
            await self.apply_async([result])

        async def on_budget(status: Any) -> None:
            self._carry_out_alert(
                Alert(
                    TransitionType.PROBE_BUDGET_EXHAUSTED,
                    ts=self.clock(),
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
        return probe_targets(self.state, self.clock(), self.policy)

    async def probe_now(self, ref: str) -> ProbeResult:
        """One probe of ``ref`` right now, for an operator's failback: the same provider
        directory and probe settings as the scheduled probes, outside their cadence."""
        directory = (
            self.prober.directory
            if self.prober is not None
            else ProviderDirectory.build(
                self.settings.providers, self.chain_source.config.providers
            )
        )
        provider = directory.for_model(ref)
        if provider is None:
            return ProbeResult(
                model=ref,
                ok=False,
                started_at=self.clock(),
                latency_s=0.0,
                probe_id=f"operator-{int(self.clock() * 1000)}",
                detail=f"no provider settings for {ref}; cannot probe it",
            )
        timeouts = ProbeTimeouts(total=self.settings.probes.timeout_s)
        async with ProbeClient(timeouts=timeouts, environ=self.environ) as client:
            return await client.probe(ref, provider)

    # -- operator commands (issue 11) ----------------------------------------------------

    def _build_control(self) -> Any:
        """The Telegram commands and card buttons, when ``[control]`` enables them."""
        if not self.settings.control.enabled or self.settings.alerts is None:
            return None
        from watcher.oversight.poller import TelegramControl

        control = TelegramControl.from_settings(
            self.settings.control,
            self.settings.alerts,
            self,
            environ=self.environ,
            clock=self.clock,
        )
        if self.alert_service is not None:
            self.alert_service.sender.markup_for = control.markup_for
        return control

    # -- reload, status ----------------------------------------------------------------

    def poll_chains(self) -> None:
        stamp = self.chain_source.stamp
        config, error = self.chain_source.poll()
        if self.chain_source.stamp != stamp:  # the file changed: its plugins section too
            self.check_plugin(announce=False)
        if error is not None:
            self.apply([ChainsChanged(config.chains, error=str(error))])
        elif dict(config.chains) != dict(self.state.chains):
            self.pins.validator = chains_validator(config.chains)
            self.apply([ChainsChanged(config.chains)])
            if self.prober is not None:
                self.prober.update_directory(
                    ProviderDirectory.build(self.settings.providers, config.providers)
                )

    def status_line(self) -> str:
        in_fallback = sorted(a for a, s in self.state.agents.items() if s.in_fallback)
        now = self.clock()
        cooling = sorted(r for r, h in self.state.models.items() if h.in_cooldown(now))
        lag = f"{self.lag_s:.1f}s" if self.lag_s is not None else "n/a"
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
        control = self._build_control()  # before the sender starts: cards get buttons
        if self.alert_service is not None:
            await self.alert_service.start()
        if control is not None:
            await control.start()
        if self.settings.probes.enabled:
            self.prober = self.build_prober(self.chain_source.config)
            self.scheduler = ProbeScheduler(
                self.prober,
                self.probe_targets,
                interval_s=self.settings.probes.interval_s,
                jitter_s=self.settings.probes.jitter_s,
                first_run_after_s=self.settings.probes.first_run_after_s,
            )
            self.scheduler.start()
        # The watchdog first: the start-up step below may wait for a held pin lock.
        watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
        async with self.pin_lock_held():
            self.apply([Tick()])  # adopt hand edits made while stopped; expire old holds
            self.check_plugin(announce=True)
            self.heartbeat()
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
        if self.scheduler is not None:
            self.scheduler.shutdown()
        if control is not None:
            await control.stop()
        if self.alert_service is not None:
            await self.alert_service.stop(grace_s=3.0)
        else:
            self.intake.outbox.close()
        if control is not None:
            control.close()
        if metrics_server is not None:
            metrics_server.shutdown()
        for task in crashed:
            log.error("%s failed: %r", task.get_name(), task.exception())
        return 1 if crashed else 0

    async def _tail(self, source: Any) -> None:
        async for batch in source.batches():
            async with self.pin_lock_held():
                self.apply_batch(batch, source)
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
                self.apply([Tick()])
                self.heartbeat()

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

    def _start_metrics(self) -> Any:
        m = self.settings.metrics
        if not m.enabled:
            return None
        from prometheus_client import start_http_server

        server, _thread = start_http_server(m.port, addr=m.host, registry=self.metrics.registry)
        self.metrics_port = server.server_address[1]
        (self.state_dir / "metrics.port").write_text(f"{self.metrics_port}\n")
        log.info("metrics on http://%s:%d/metrics", m.host, self.metrics_port)
        return server


def run(settings: WatcherSettings) -> int:
    """Entry point for ``failover-watcher run``. ``now`` is a ``SteadyClock`` so a
    wall-clock step cannot end cooldowns early (``watcher.support.clock``)."""
    from watcher.support.clock import SteadyClock, read_boot_id, saved_anchor

    # What the unit's UMask=0027 does, for a daemon started by hand too: SQLite's
    # -wal/-shm files, metrics.port and every other file keep out of "other".
    os.umask(os.umask(0o027) | 0o027)
    clock = SteadyClock(
        boot_id=read_boot_id(),
        saved=saved_anchor(Path(settings.state_dir) / SNAPSHOT_FILENAME),
    )
    from watcher.alerts.config import TokenUnavailable

    try:
        watcher = Watcher(settings, clock=clock)
        clock.bind(watcher.metrics.clock, lambda: watcher.state)
        _register_provider_secrets(settings, watcher.chain_source.config.providers)
        return asyncio.run(watcher.run())
    except GatewayConfigError as exc:
        log.error("cannot read the gateway config %s: %s", settings.gateway_config, exc)
    except TokenUnavailable as exc:
        log.error("alerts.bot_token: %s; fix it, then restart (validate-config checks it)",
                  exc)
    except SnapshotError as exc:
        log.error("%s. Restore it from a backup, or move it away to start again from the "
                  "pin file (cooldowns and the journal position are then forgotten)", exc)
    except (OSError, sqlite3.Error) as exc:
        # Nearly always the state directory: its owner, its mode, or a full disk.
        where = getattr(exc, "filename", None) or settings.state_dir
        log.error("cannot use %s: %s (the state directory must be writable by user %s)",
                  where, getattr(exc, "strerror", None) or exc, getpass.getuser())
    return 1


def _register_provider_secrets(settings: WatcherSettings, gateway_providers: Any) -> None:
    """Known API keys are redacted from logs from the start (``watcher.support.redaction``)."""
    from watcher.support.redaction import register_provider_secrets

    try:
        directory = ProviderDirectory.build(settings.providers, gateway_providers)
    except ValueError:  # bad provider config: the prober reports it, without values
        return
    register_provider_secrets(directory)
