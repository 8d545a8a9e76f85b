"""The pin file ``fallback-state.json``: the contract with the gateway and with jq.

The gateway reads ``agents.<id>.current_serving`` on every new session; humans edit
it with ``flock <pin>.lock jq ...``. Field names under ``agents.<id>`` are fixed:
operators already script against them. Timestamps are UTC ISO 8601 strings with
second precision and a ``Z`` suffix, which jq's ``fromdate`` reads directly.

This module holds the model, its validation, and (de)serialisation with a stable key
order. It does no I/O: ``watcher.pins.store`` reads and writes the file.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_VERSION: Literal[1] = 1

HealthState = Literal["healthy", "failing", "throttled", "flapping"]


_EPOCH_DAY = date(1970, 1, 1)
_YEAR_10000 = 253_402_300_800  # datetime's range ends just before


@lru_cache(maxsize=256)
def _day(days: int) -> str:
    return (_EPOCH_DAY + timedelta(days=days)).isoformat()


def iso(ts: float | None) -> str | None:
    """Epoch seconds -> ``2026-05-20T14:38:00Z`` (None stays None).

    On the decision core's hot path (cooldown sentences, the pin view of every batch),
    so the date is cached per day and the time of day is arithmetic; anything outside
    1970..9999 (or NaN) takes ``iso_by_datetime``, which raises as datetime does."""
    if ts is None:
        return None
    if ts == ts and 0 <= ts < _YEAR_10000:  # not NaN, in range: int() cannot fail
        days, sec = divmod(int(ts), 86_400)
        hours, sec = divmod(sec, 3_600)
        minutes, sec = divmod(sec, 60)
        return f"{_day(days)}T{hours:02d}:{minutes:02d}:{sec:02d}Z"
    return iso_by_datetime(ts)


def iso_by_datetime(ts: float | None) -> str | None:
    """The reference formatting ``iso`` must equal for every input."""
    if ts is None:
        return None
    return datetime.fromtimestamp(int(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(text: str | None) -> float | None:
    """Inverse of :func:`iso`; also accepts offsets and fractional seconds."""
    if text is None:
        return None
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


_FIELDS: dict[type[BaseModel], frozenset[str]] = {}


class _Strict(BaseModel):
    # strict: a hand edit of ``"in_fallback": "no"`` is rejected here exactly as the
    # shipped JSON Schema rejects it, instead of being coerced to False.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @classmethod
    def trusted(cls, **values: Any) -> Self:
        """A record built without validation, every field given: only for the watcher's
        own view of its state (``watcher.pins.view``), whose text the store validates in
        full before any reader can see it. About 1 µs, against 5 µs validated (and
        ``model_construct``'s 7 µs): at 6,000 agents a batch's pin write saved 25 ms."""
        fields = _FIELDS.get(cls)
        if fields is None:  # (``model_fields`` costs 5 µs a call in pydantic 2.10+)
            fields = _FIELDS[cls] = frozenset(cls.model_fields)
        if values.keys() != fields:
            raise TypeError(f"{cls.__name__}.trusted needs every field, exactly")
        record = object.__new__(cls)
        object.__setattr__(record, "__dict__", values)
        object.__setattr__(record, "__pydantic_fields_set__", set(values))
        object.__setattr__(record, "__pydantic_extra__", None)
        object.__setattr__(record, "__pydantic_private__", None)
        return record


class Hold(_Strict):
    """An operator hold: keep the agent on ``model`` until released or ``until``."""

    model: str
    by: str
    until: str | None = None
    note: str | None = None


class Trial(_Strict):
    """Half-open: the agent's next run tries ``model`` (its primary) first, not its pin:
    the plugin runs each ``id`` once, until ``until``; the run's outcome decides."""

    model: str
    id: str = Field(min_length=1)
    until: str


class AgentPin(_Strict):
    primary: str
    current_serving: str
    in_fallback: bool
    last_event_ts: str | None = None
    transient_throttle_until: str | None = None
    chain: list[str] = Field(min_length=1)
    failure_class: str | None = None
    reason: str | None = None
    fallback_since: str | None = None
    hold: Hold | None = None
    trial: Trial | None = None

    @model_validator(mode="after")
    def _consistent(self) -> AgentPin:
        if self.chain[0] != self.primary:
            raise ValueError(f"primary {self.primary!r} is not the first entry of chain")
        if self.current_serving not in self.chain:
            raise ValueError(
                f"current_serving {self.current_serving!r} is not in the agent's chain "
                f"{self.chain}"
            )
        if self.in_fallback != (self.current_serving != self.primary):
            raise ValueError(
                "in_fallback must be true exactly when current_serving is not the primary"
            )
        if self.hold is not None and self.hold.model not in self.chain:
            raise ValueError(f"hold model {self.hold.model!r} is not in the agent's chain")
        if self.trial is not None:
            if self.trial.model != self.primary:
                raise ValueError(f"trial model {self.trial.model!r} is not the primary")
            _check_iso("trial.until", self.trial.until)
        for name in ("last_event_ts", "transient_throttle_until", "fallback_since"):
            value = getattr(self, name)
            if value is not None:
                _check_iso(name, value)
        if self.hold is not None and self.hold.until is not None:
            _check_iso("hold.until", self.hold.until)
        return self

    def held(self, hold: Hold) -> AgentPin:
        """This record with the agent held on ``hold.model`` (and serving it), as an
        operator's edit writes it."""
        return self.model_copy(update={
            "hold": hold, "current_serving": hold.model,
            "in_fallback": hold.model != self.primary,
        })


class ModelHealthRecord(_Strict):
    state: HealthState
    failure_class: str | None = None
    since: str | None = None
    cooldown_until: str | None = None
    cooldown_level: int = 0
    flap_score: float = 0.0
    probe_streak: int = 0
    last_traffic_failure: str | None = None


class PinFile(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    updated_at: str | None = None
    # Refreshed by the running watcher (``[plugin] heartbeat_s``); the gateway plugin
    # stops obeying a pin file whose heartbeat is older than its ``maxAgeSeconds``.
    heartbeat_at: str | None = None
    agents: dict[str, AgentPin] = Field(default_factory=dict)
    models: dict[str, ModelHealthRecord] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _timestamps(self) -> PinFile:
        for name in ("updated_at", "heartbeat_at"):
            value = getattr(self, name)
            if value is not None:
                _check_iso(name, value)
        return self




def _check_iso(name: str, value: str) -> None:
    # Only short strings are cached: a hostile hand edit must not fill the cache.
    if not (_is_iso(value) if len(value) <= 40 else _parses(value)):
        raise ValueError(f"{name} is not an ISO 8601 timestamp: {value!r}")


def _parses(value: str) -> bool:
    try:
        from_iso(value)
    except ValueError:
        return False
    return True


# A file's timestamps repeat (a batch writes one second many times): each distinct one
# is parsed once.
_is_iso = lru_cache(maxsize=4096)(_parses)


def dumps(pins: PinFile) -> str:
    """Pretty-printed JSON with a stable key order (agents and models sorted by id).

    pydantic-core writes it (the same text ``json.dumps(indent=2)`` would, five times
    faster: the stdlib's indenting encoder is pure Python)."""
    if list(pins.agents) != sorted(pins.agents) or list(pins.models) != sorted(pins.models):
        pins = pins.model_copy(update={
            "agents": dict(sorted(pins.agents.items())),
            "models": dict(sorted(pins.models.items())),
        })
    return pins.model_dump_json(indent=2) + "\n"


def loads(text: str | bytes) -> PinFile:
    """Parse and validate; raises ``ValueError`` (pydantic's ValidationError is one,
    ``json.JSONDecodeError`` another, with its line and column for a hand edit)."""
    try:
        return PinFile.model_validate_json(text)
    except ValidationError as exc:
        if any(err["type"] == "json_invalid" for err in exc.errors()):
            json.loads(text)  # raises the stdlib's error, which says where
        raise


def json_schema() -> dict[str, Any]:
    schema = PinFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "failover-watcher pin file (fallback-state.json)"
    return schema
