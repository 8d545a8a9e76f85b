"""``Watcher``: the imperative shell around ``decide``, and the one writer of its state.

- every event (journal evidence, probe results, ticks, pin-file edits, chain
  reloads) goes through ``decide`` in ``Watcher.apply``; nothing else mutates state;
- effects are carried out by thin adapters: pin store, audit log, alert intake
  (outbox; the Telegram sender is its own task), metrics;
- the loop that feeds it (tasks, signals, sd_notify, probes, Telegram control) is
  ``watcher.shell.loop.Daemon``, which holds a ``Watcher``; the entry point is
  ``watcher.shell.main.run``. ``Watcher.open`` makes one and brings it back to where
  the last run stopped.

Crash consistency (``watcher.shell.snapshot``): each applied batch first writes
``core-state.json`` atomically (state, source position, and the effects still to
carry out: alerts with sequence numbers, audit records with the audit sequence they
must reach, a pin write), then carries the effects out idempotently. On restart the
snapshot is the authority: the source resumes from its position, and pending effects
are replayed, skipping what already landed (the outbox remembers the last alert
sequence it took; the audit log its own sequence). So a SIGKILL anywhere neither
loses nor repeats a transition.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from datetime import UTC
from pathlib import Path
from typing import Any, TypeVar

from filelock import Timeout as FileLockTimeout

from watcher.alerts.alertmanager import attach
from watcher.alerts.dedup import SuppressionReason
from watcher.alerts.intake import AlertIntake
from watcher.alerts.outbox import DEFAULT_FILENAME, Outbox
from watcher.alerts.service import AlertService
from watcher.audit.log import AuditLog, anchor_of
from watcher.config import WatcherSettings
from watcher.core.decide import decide, initial_state
from watcher.core.effects import (
    carry,
)
from watcher.core.events import (
    ChainLint,
    ChainsChanged,
    Event,
    PinFileEdited,
    PinFileRejected,
    PluginStateEvidence,
)
from watcher.core.state import State, check_invariants, from_json
from watcher.core.transitions import Alert, TransitionType
from watcher.gateway.chains import ChainSource
from watcher.gateway.lint import findings
from watcher.gateway.plugin import PluginCheck, check_plugin
from watcher.gateway.writers import writer_of
from watcher.parse.records import PluginState
from watcher.pins.check import chains_validator
from watcher.pins.store import (
    DEFAULT_LOCK_TIMEOUT,
    PIN_FILENAME,
    AdoptedEdit,
    PinStore,
    RejectedEdit,
)
from watcher.pins.view import PinView
from watcher.probe.scheduler import FailbackProber, ProbeScheduler
from watcher.shell.batches import events_of
from watcher.shell.effects import StagedEffects
from watcher.shell.gauges import StateGauges
from watcher.shell.snapshot import Pending, Snapshot
from watcher.source import Batch, Source
from watcher.support.metrics import Metrics
from watcher.support.statedir import SNAPSHOT_FILENAME

log = logging.getLogger(__name__)
T = TypeVar("T")

AUDIT_FILENAME = "audit.jsonl"
ALERT_SEQ_META = "daemon_alert_seq"


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
        self.metrics = Metrics()
        self.metrics.initialise((t.value for t in TransitionType),
                                (r.value for r in SuppressionReason))
        self._alert_seq = 0
        self._position: dict[str, Any] | None = None
        self.last_sentence = ""
        self.applied_entries = 0
        self.lag_s: float | None = None
        self._pins_written_at: float | None = None
        self.plugin_check: PluginCheck | None = None
        # Set by the loop (``watcher.shell.loop.Daemon``) once running: apply hands the
        # probes the core asks for to the scheduler; operator probes use the prober's
        # provider directory.
        self.prober: FailbackProber | None = None
        self.scheduler: ProbeScheduler | None = None

        self.chain_source = ChainSource(settings.gateway_config)
        self.snapshot = Snapshot(self.state_dir / SNAPSHOT_FILENAME)
        self.audit, audit_problem = AuditLog.open_or_restart(
            self.state_dir / AUDIT_FILENAME, anchor=anchor_of(self.snapshot.data)
        )
        self.pin_view = PinView()  # remakes only the records that changed, batch to batch
        self.gauges = StateGauges(self.metrics.watcher, self.policy)
        self.pins = PinStore(self.state_dir / PIN_FILENAME,
                             validator=chains_validator(self.chain_source.config.chains))
        self.alert_service: AlertService | None = None
        if settings.alerts is not None:
            self.alert_service = AlertService.from_config(
                settings.alerts, self.state_dir, self.metrics, environ=environ
            )
            self.intake = self.alert_service.intake
        else:
            outbox = Outbox(self.state_dir / DEFAULT_FILENAME, metrics=self.metrics.alerts)
            self.intake = AlertIntake(outbox, tz=UTC, metrics=self.metrics.alerts)
        self.alertmanager = attach(settings.alertmanager, self.intake, self.metrics.sinks)
        self._audit_problem = audit_problem
        self.state = self._load_state()

    @classmethod
    def open(
        cls,
        settings: WatcherSettings,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        environ: dict[str, str] | None = None,
    ) -> Watcher:
        """Make the state directory if needed, wire a ``Watcher`` on it, and bring it
        back to where the last run stopped (``start_up``). The constructor alone only
        wires the parts and reads their files: it makes no directory, replays nothing,
        and writes no pin file and no card."""
        Path(settings.state_dir).mkdir(parents=True, exist_ok=True, mode=0o750)
        watcher = cls(settings, clock=clock, rng=rng, environ=environ)
        watcher.start_up()
        return watcher

    def start_up(self) -> None:
        """Replay what a crash left pending, take in an openclaw.json changed while
        stopped, give a first start its pin file, and say if the audit log had to be
        set aside. Once, before the first ``apply``."""
        first_start = not self.snapshot.data
        self._recover()
        chains = self.chain_source.config.chains
        if dict(self.state.chains) != dict(chains):
            # openclaw.json changed while we were stopped: through apply, so the pin
            # file is rewritten and the change audited, like a change seen while running.
            self.apply([self.chains_changed()])
        # The chain check now: what is new or cleared since the last run is announced.
        lint = ChainLint(tuple(findings(self.chain_source.config)), baseline=first_start)
        self.apply([lint])
        if not self.pins.path.exists():  # first start: the gateway gets a pin file at once
            self._write_pins_now()
        problem, self._audit_problem = self._audit_problem, None
        if problem:
            log.warning("the audit log %s did not verify and was set aside; a new chain "
                        "starts, its first record names the old file: %s",
                        self.audit.path, problem)
            self._carry_out_alert(
                Alert(
                    TransitionType.AUDIT_TAMPERED,
                    ts=self.clock(),
                    detail=problem,
                    extra={"set_aside_as": self.audit.set_aside_as or "?"},
                )
            )

    def chains_changed(self) -> ChainsChanged:
        """The event for the chains ``chain_source`` holds now, naming their writer."""
        source = self.chain_source
        return ChainsChanged(
            source.config.chains, writer=writer_of(source.sha256, self.settings.breaker_state_dir)
        )

    # -- start-up ---------------------------------------------------------------------

    def _load_state(self) -> State:
        chains = self.chain_source.config.chains
        raw = self.snapshot.data.get("state")
        if raw is None:
            return initial_state(chains, self.policy)
        state = from_json(raw)
        for problem in check_invariants(state, self.clock()):
            # Said, not fatal: the next decisions repair what they touch, and a daemon
            # that refused to start over its own state would steer nothing at all.
            log.warning("core-state.json: %s", problem)
        self._alert_seq = int(self.snapshot.data.get("alert_seq", 0))
        self._position = self.snapshot.position
        return state

    def _recover(self) -> None:
        """Carry out effects a crash left pending, skipping what already landed."""
        pending = Pending.from_json(self.snapshot.data.get("pending") or {})
        if pending:
            log.info("recovering effects left pending by the last run")
            if not self._carry_out(pending, audit_repairs=self.audit.repaired_at_open):
                self.apply([])

    # -- the one mutation point -------------------------------------------------------

    def apply(
        self,
        events: list[Event],
        *,
        position: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> list[str]:
        """Decide every event, persist state+position+effects, carry the effects out.

        Returns the decision sentences (the daemon logs them; tests assert on them).
        When a hand edit of the pin file lands between this round's read and its write,
        the write keeps it, and another round decides it (and writes again): a loop
        here, never ``apply`` re-entered from inside its own effects."""
        now = self.clock() if now is None else now
        sentences: list[str] = []
        while not self._apply_round(events, position, now, sentences):
            events, position = [], None
        return sentences

    def _apply_round(
        self,
        events: list[Event],
        position: dict[str, Any] | None,
        now: float,
        sentences: list[str],
    ) -> bool:
        """One round of ``apply``; False when the pin write found a hand edit to decide."""
        events = self._pin_edit_events() + events
        pending = Pending()
        sink = StagedEffects(
            pending,
            next_alert_seq=self._next_alert_seq,
            flapping=self._flapping_among,
            metrics=self.metrics,
            probes=self.scheduler,
        )
        for event in events:
            decided = decide(
                self.state, event, now, self.policy, jitter=self.rng.uniform(-1.0, 1.0)
            )
            self.state = decided.state
            sink.noteworthy = False
            carry(decided.effects, sink)
            noteworthy = sink.noteworthy
            if decided.sentence:
                sentences.append(decided.sentence)
                self.last_sentence = decided.sentence
                (log.info if noteworthy else log.debug)("%s", decided.sentence)
        pending.audit_target = self.audit.seq + len(pending.audit)
        moved = position is not None and position != self._position
        if moved:
            self._position = position
        # The first apply writes the snapshot even with nothing to say: ``status`` reads
        # it, and a daemon on a quiet journal is still a running daemon. (``data`` is
        # empty until the file has been read or written: no stat on every batch.)
        if pending or moved or not self.snapshot.data:
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
            landed = self._carry_out(pending)
        else:
            landed = True
        self.gauges.update(self.state, now)
        return landed

    def _next_alert_seq(self) -> int:
        self._alert_seq += 1
        return self._alert_seq

    def _clock_anchor(self) -> dict[str, Any]:
        """A ``SteadyClock``'s anchor, saved so a restart in the same boot resumes its
        timeline (``watcher.shell.clock``); nothing for a plain callable clock."""
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

    def _carry_out(self, pending: Pending, *, audit_repairs: int = 0) -> bool:
        """``audit_repairs``: records the audit log appended at open (a torn tail noted),
        which took sequence numbers the pending records were counted against. False when
        the pin write met a hand edit that still has to be decided."""
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
            alert = Alert.from_json(fields)
            if flapping is None:
                flapping = self._flapping_among(alert.agents)
            alerts.append((alert, flapping))
            last_seq = max(last_seq, seq)
        # One outbox transaction for the whole batch (one fsync): every card, the dedup
        # state, the highest sequence and the Alertmanager ops (what the state ended too)
        # land together or not at all, so a SIGKILL can neither repeat nor lose a card.
        self.intake.submit_many(alerts, now=self.clock(), meta={ALERT_SEQ_META: str(last_seq)},
                                state=self.state)
        missing = pending.audit_target - (self.audit.seq - audit_repairs)
        if missing > 0:
            with self.audit.batch():
                for record in pending.audit[-missing:]:
                    self.audit.append(record["type"], record["data"])
        for key, until in pending.mutes:  # idempotent: a replay sets the same mute again
            self.intake.mute(key, until)
        return self._write_pins() if pending.write_pins else True

    def _write_pins(self) -> bool:
        """Write the state to the pin file without losing a hand edit that landed after
        ``apply`` read the file (a ``flock ... jq`` between the read and this write).

        The store rebases such an edit onto the state instead of overwriting it, and
        returns False: the edit then goes through ``apply`` like any other (adopted and
        audited, or quarantined), which writes again. True: the write landed."""
        landed = self._with_pin_lock(
            lambda: self.pins.write_keeping_edits(*self.pin_view.render(self.state, self.clock()))
        )
        if landed:
            self._pins_written_at = self.clock()
        return landed

    def _write_pins_now(self) -> None:
        """A pin write outside ``apply`` (first start, heartbeat): any edit it meets is
        decided by ``apply``, which then writes."""
        if not self._write_pins():
            self.apply([])

    def heartbeat(self) -> None:
        """Refresh the pin file's ``heartbeat_at`` when it is due: the gateway plugin
        stops obeying a pin file whose heartbeat is older than its ``maxAgeSeconds``, so
        a stopped watcher can never keep steering the gateway."""
        last = self._pins_written_at
        if last is None or self.clock() - last >= self.settings.plugin.heartbeat_s:
            self._write_pins_now()

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

    def _carry_out_alert(self, alert: Alert) -> None:
        """An alert the shell raises itself (audit set aside, probe budget spent)."""
        self.intake.submit(alert, now=self.clock(), flapping=self._flapping_among(alert.agents))

    def _flapping_among(self, agents: Iterable[str]) -> list[str]:
        """Which of ``agents`` (an alert's) are flapping now. The dedup's flap rule asks
        only that of an alert's own agents, so this is all an alert records: a scan of
        the whole fleet per card cost 0.4 ms at 6,000 agents."""
        current = self.state.agents
        return sorted(a for a in agents if (s := current.get(a)) is not None and s.flapping)

    # -- journal ----------------------------------------------------------------------

    def apply_batch(self, batch: Batch, source: Source) -> list[str]:
        events = events_of(batch, source, self.metrics.watcher)
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

