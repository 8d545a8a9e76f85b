"""The breaker's ledger: spend per paid provider today, and the trips still in force.

Pure: no clock, no files. Every function takes ``now`` (epoch seconds) or an event
time and returns a new ``Ledger``. ``watcher.breaker.store`` persists it.

Spend comes only from what the gateway logs: ``candidate_succeeded`` (a call served
by a candidate after earlier failures) and ``candidate_failed`` (counting its
suppressed duplicates: N suppressed are N more calls). A primary that succeeds on
its first try logs nothing, so the ledger counts fallback traffic, which is exactly
the traffic that lands on paid providers when a free primary fails.

Days are local days in the configured IANA timezone: an event counts towards the
day its own timestamp falls in, a trip holds until that day ends, and the reset is due
at the next local midnight (``zoneinfo`` handles DST, so a day may be 23 or 25 hours).

Replay is idempotent: each counted entry's source position is remembered for the
day, so an entry delivered twice (a crash between saving the ledger and committing
the read position) is counted once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from watcher.breaker.config import BreakerConfig, ProviderBudget
from watcher.breaker.cut import Cut
from watcher.parse.records import Decision, FallbackDecision

LEDGER_VERSION = 1


def local_day(ts: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, zone).date().isoformat()


def day_start(day: str, zone: ZoneInfo) -> float:
    """Epoch seconds of local midnight starting ``day`` (the first instant of that date)."""
    return datetime.combine(date.fromisoformat(day), time(0), tzinfo=zone).timestamp()


def next_reset(ts: float, zone: ZoneInfo) -> float:
    """The next local midnight after ``ts``: when today's trips are reset."""
    today = date.fromisoformat(local_day(ts, zone))
    return day_start((today + timedelta(days=1)).isoformat(), zone)


@dataclass(frozen=True)
class Spend:
    calls_ok: int = 0
    calls_failed: int = 0
    cost: float = 0.0

    @property
    def calls(self) -> int:
        return self.calls_ok + self.calls_failed


@dataclass(frozen=True)
class Trip:
    """A provider cut off for ``day``. ``cut`` is what the config write removed.

    ``cut`` is ``None`` while the write has not succeeded yet (the file was being
    edited concurrently, or the result would have been invalid): the trip is retried
    on every check, and ``last_error`` says why it is still pending.
    """

    provider: str
    day: str
    tripped_at: float
    why: str
    cut: Cut | None = None
    attempts: int = 0
    last_error: str | None = None
    reset_error: str | None = None
    # Write-ahead: the cut about to be written and the SHA-256 of the text it produces.
    # Saved before the rename; on restart a file with that hash means it was written.
    planned: Cut | None = None
    planned_sha: str | None = None
    announced: bool = False

    @property
    def written(self) -> bool:
        return self.cut is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "day": self.day,
            "tripped_at": self.tripped_at,
            "why": self.why,
            "cut": None if self.cut is None else self.cut.to_json(),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "reset_error": self.reset_error,
            "planned": None if self.planned is None else self.planned.to_json(),
            "planned_sha": self.planned_sha,
            "announced": self.announced,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Trip:
        raw_cut = data.get("cut")
        raw_planned = data.get("planned")
        return cls(
            provider=str(data["provider"]),
            day=str(data["day"]),
            tripped_at=float(data["tripped_at"]),
            why=str(data.get("why", "")),
            cut=None if raw_cut is None else Cut.from_json(raw_cut),
            attempts=int(data.get("attempts", 0)),
            last_error=data.get("last_error"),
            reset_error=data.get("reset_error"),
            planned=None if raw_planned is None else Cut.from_json(raw_planned),
            planned_sha=data.get("planned_sha"),
            announced=bool(data.get("announced", False)),
        )


@dataclass(frozen=True)
class Ledger:
    day: str
    spend: Mapping[str, Spend] = field(default_factory=dict)
    counted: frozenset[str] = frozenset()
    trips: tuple[Trip, ...] = ()
    position: str | None = None  # the source position of the last batch applied
    realtime: float | None = None
    # sha256 of the texts this breaker wrote into openclaw.json, newest last: how the
    # watcher tells a breaker cut from a human edit (``watcher.gateway.writers``).
    written: tuple[str, ...] = ()

    @classmethod
    def empty(cls, now: float, zone: ZoneInfo) -> Ledger:
        return cls(day=local_day(now, zone))

    def spend_of(self, provider: str) -> Spend:
        return self.spend.get(provider, Spend())

    def trip_of(self, provider: str) -> Trip | None:
        for trip in self.trips:
            if trip.provider == provider:
                return trip
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": LEDGER_VERSION,
            "day": self.day,
            "spend": {
                p: {"calls_ok": s.calls_ok, "calls_failed": s.calls_failed, "cost": s.cost}
                for p, s in sorted(self.spend.items())
            },
            "counted": sorted(self.counted),
            "trips": [t.to_json() for t in self.trips],
            "position": self.position,
            "realtime": self.realtime,
            "written_sha256": list(self.written),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Ledger:
        if data.get("version") != LEDGER_VERSION:
            raise ValueError(f"ledger version {data.get('version')!r}, expected {LEDGER_VERSION}")
        return cls(
            day=str(data["day"]),
            spend={
                str(p): Spend(int(s["calls_ok"]), int(s["calls_failed"]), float(s["cost"]))
                for p, s in dict(data.get("spend") or {}).items()
            },
            counted=frozenset(str(k) for k in data.get("counted") or ()),
            trips=tuple(Trip.from_json(t) for t in data.get("trips") or ()),
            position=data.get("position"),
            realtime=data.get("realtime"),
            written=tuple(str(s) for s in data.get("written_sha256") or ()),
        )


def roll(ledger: Ledger, now: float, zone: ZoneInfo) -> Ledger:
    """Start a new day when ``now`` is past the ledger's: spend starts from zero.

    Trips stay: they end only through a reset, which restores the config first.
    """
    today = local_day(now, zone)
    if today <= ledger.day:
        return ledger
    return dataclasses.replace(ledger, day=today, spend={}, counted=frozenset())


def call_cost(record: FallbackDecision, budget: ProviderBudget) -> tuple[int, int, float]:
    """(calls served, calls failed, estimated cost) that one decision line stands for."""
    price = budget.price(record.candidate.provider, record.candidate.model)
    if record.decision is Decision.CANDIDATE_SUCCEEDED:
        return 1, 0, price
    if record.decision is Decision.CANDIDATE_FAILED:
        n = record.occurrences
        return 0, n, price * budget.failed_call_factor * n
    return 0, 0, 0.0


def account(
    ledger: Ledger, record: object, key: str, ts: float, config: BreakerConfig
) -> Ledger:
    """Add one parsed record, seen at source position ``key`` at event time ``ts``."""
    if not isinstance(record, FallbackDecision):
        return ledger
    budget = config.paid.get(record.candidate.provider)
    if budget is None:
        return ledger
    ok, failed, cost = call_cost(record, budget)
    if ok == 0 and failed == 0:
        return ledger
    day = local_day(ts, config.zone)
    if day < ledger.day:
        return ledger  # a finished day's spend no longer matters
    ledger = roll(ledger, ts, config.zone)
    if key in ledger.counted:
        return ledger
    provider = record.candidate.provider
    old = ledger.spend_of(provider)
    new = Spend(old.calls_ok + ok, old.calls_failed + failed, round(old.cost + cost, 9))
    return dataclasses.replace(
        ledger, spend={**ledger.spend, provider: new}, counted=ledger.counted | {key}
    )


def over_cap(spend: Spend, budget: ProviderBudget, currency: str) -> str | None:
    """Why the provider is over its cap, or ``None``. Reaching the cap counts as over."""
    if budget.daily_cap is not None and spend.cost >= budget.daily_cap - 1e-9:
        return f"spent {spend.cost:.2f} {currency} of a {budget.daily_cap:.2f} {currency} daily cap"
    if budget.daily_calls is not None and spend.calls >= budget.daily_calls:
        return f"{spend.calls} calls of a {budget.daily_calls}-call daily cap"
    return None


def due_trips(ledger: Ledger, config: BreakerConfig) -> list[tuple[str, str]]:
    """(provider, why) for each paid provider over its cap today and not yet cut off."""
    due = []
    for provider, budget in sorted(config.paid.items()):
        trip = ledger.trip_of(provider)
        if trip is not None and (trip.written or trip.day != ledger.day):
            continue
        why = over_cap(ledger.spend_of(provider), budget, config.currency)
        if why is not None:
            due.append((provider, why))
    return due


def due_resets(ledger: Ledger, now: float, zone: ZoneInfo) -> list[Trip]:
    """Written trips whose day has ended, in the order they were made."""
    today = local_day(now, zone)
    return [t for t in ledger.trips if t.day < today and t.written]


def drop_stale(ledger: Ledger, now: float, zone: ZoneInfo) -> tuple[Ledger, list[Trip]]:
    """Forget trips of a finished day that were never written: nothing to restore."""
    today = local_day(now, zone)
    stale = [t for t in ledger.trips if t.day < today and not t.written]
    if not stale:
        return ledger, []
    keep = tuple(t for t in ledger.trips if t not in stale)
    return dataclasses.replace(ledger, trips=keep), stale


def with_trip(ledger: Ledger, trip: Trip) -> Ledger:
    """Record (or update) the trip of ``trip.provider``, keeping the order trips were made."""
    trips = list(ledger.trips)
    for i, old in enumerate(trips):
        if old.provider == trip.provider:
            trips[i] = trip
            break
    else:
        trips.append(trip)
    return dataclasses.replace(ledger, trips=tuple(trips))


def without_trips(ledger: Ledger, providers: set[str]) -> Ledger:
    return dataclasses.replace(
        ledger, trips=tuple(t for t in ledger.trips if t.provider not in providers)
    )


MAX_WRITTEN = 32  # texts remembered; a human edit after them is "not the breaker" anyway


def with_written(ledger: Ledger, sha: str | None) -> Ledger:
    """Remember that the breaker wrote the text with this sha256."""
    if sha is None or (ledger.written and ledger.written[-1] == sha):
        return ledger
    return dataclasses.replace(ledger, written=(*ledger.written, sha)[-MAX_WRITTEN:])


def at_position(ledger: Ledger, position: str, realtime: float | None) -> Ledger:
    return dataclasses.replace(ledger, position=position, realtime=realtime)


def remaining(spend: Spend, budget: ProviderBudget) -> dict[str, float | int | None]:
    """What is left under each cap (``None`` when that cap is not set)."""
    money = None if budget.daily_cap is None else round(max(0.0, budget.daily_cap - spend.cost), 6)
    calls = None if budget.daily_calls is None else max(0, budget.daily_calls - spend.calls)
    return {"money": money, "calls": calls}
