"""The failback policy: every knob the decision core reads, typed and validated.

Defaults are the cure for the two incidents in the case study:

- ``rise=2``: two consecutive successful probes before a model counts as healthy
  again (the 14 May patch kept this; it was never the bug).
- ``traffic_rule``: a probe success never outranks real traffic. A real-traffic
  failure resets the probe streak, and a streak only counts if no real-traffic
  failure of that model happened since its first success (20 May).
- throttle cooldown: a throttle-class failure (``TAXONOMY[c].starts_cooldown``, from
  traffic or a probe) holds the model down for ``cooldown_base_s`` (5 min), times
  ``cooldown_factor`` (2) per repeat, capped at ``cooldown_cap_s`` (1 h) before a
  ±``jitter_fraction`` (10 %) jitter; Retry-After wins when longer. A repeat is a
  throttle that arrives after the previous cooldown ended but within
  ``cooldown_decay_s`` of the last throttle; each full clean ``cooldown_decay_s``
  lowers the level by one.
- a throttled probe is weak evidence (``probe_escalates`` off): it keeps the model
  down and resets its probe streak, but only real traffic escalates a cooldown, and
  only a probe's Retry-After extends one.
- half-open (``half_open``): while the gateway plugin steers, a down primary that
  passes a probe outside its cooldown is not failed back on the probe's word. One
  agent (the canary: the most recently active agent pinned away from it) gets one
  real turn on it through the plugin, with the gateway's own chain behind that turn;
  the model comes back, for every agent and out of any flap freeze, only when that
  turn succeeds. A failed turn keeps it down for ``trial_interval_s`` (or the
  Retry-After) without escalating; a canary that sends no turn within
  ``trial_timeout_s`` ends the trial unanswered.
- flap detection: a weighted percent-state-change over the agent's pin changes in
  the last ``flap_window_s`` (recent ones weigh up to 1.2, the oldest 0.8, like
  Nagios/Icinga); ``flap_full_scale`` changes in the window make 100 %. At or above
  ``flap_high_pct`` the agent is frozen on its fallback; below ``flap_low_pct`` it is
  released. The band in between keeps whatever it was (a dead band), so the state
  itself does not flap.

``Policy.original()`` is the watcher before 14 May, which never failed back (the
stale-pin incident); ``Policy.naive()`` is the watcher after the 14 May patch, before
20 May: rise 2, no cooldown, no traffic rule, no flap detection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

POLICY_VERSION = "2026.12.1"


class Policy(BaseModel):
    """Immutable once loaded; construct it from the watcher's config section."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(
        default=POLICY_VERSION, min_length=1, description="recorded in every audit record"
    )
    failback: bool = Field(
        default=True,
        description="probe pinned-away models and fail back (False: the watcher before "
        "14 May, which never did)",
    )
    rise: int = Field(default=2, ge=1, description="consecutive probe successes to fail back")
    fall: int = Field(
        default=1,
        ge=1,
        description="real-traffic failures (occurrences) that take a model down",
    )
    traffic_rule: bool = Field(
        default=True, description="a real-traffic failure resets and invalidates a probe streak"
    )
    cooldown: bool = Field(default=True, description="throttle-class failures start a cooldown")
    cooldown_base_s: float = Field(default=300.0, gt=0)
    cooldown_factor: float = Field(default=2.0, ge=1.0)
    cooldown_cap_s: float = Field(default=3600.0, gt=0)
    cooldown_decay_s: float = Field(
        default=3600.0, gt=0, description="a clean period this long lowers the level by one"
    )
    jitter_fraction: float = Field(default=0.10, ge=0.0, lt=1.0)
    honour_retry_after: bool = True
    retry_after_max_s: float = Field(
        default=86400.0, gt=0, description="a Retry-After beyond this is clipped to it"
    )
    probe_escalates: bool = Field(
        default=False,
        description="a throttled probe escalates the cooldown like a throttled real turn "
        "(False: a probe is weak evidence; it keeps the model down, and only its "
        "Retry-After extends the cooldown)",
    )
    half_open: bool = Field(
        default=True,
        description="while the gateway plugin steers, a down primary that passes a probe "
        "gets one agent's next real turn first, and comes back only if that turn succeeds",
    )
    trial_timeout_s: float = Field(
        default=180.0, gt=0, description="a trial whose canary sends no turn ends unanswered"
    )
    trial_interval_s: float = Field(
        default=60.0, ge=0, description="after a failed trial, the next waits this long"
    )
    probe_interval_s: float = Field(
        default=60.0, gt=0, description="a down model is asked for at most once per interval"
    )
    flap_detection: bool = True
    flap_window_s: float = Field(default=3600.0, gt=0)
    flap_full_scale: int = Field(
        default=10, ge=1, description="pin changes inside the window that count as 100 %"
    )
    flap_bounce_s: float = Field(
        default=600.0,
        ge=0,
        description="falling back off a model this soon after failing back to it counts "
        "as two changes (the failback landed in failure); 0 turns this off",
    )
    flap_high_pct: float = Field(default=50.0, gt=0, le=100)
    flap_low_pct: float = Field(default=25.0, ge=0, lt=100)
    lane_hint_window_s: float = Field(
        default=30.0, ge=0, description="a lane line this recent attributes a failure"
    )
    paid_providers: frozenset[str] = Field(
        default=frozenset(), description="providers whose models cost money per call"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        problems = self.cross_field_problems(self.model_dump())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def cross_field_problems(cls, values: Mapping[str, Any]) -> list[str]:
        """What is wrong between fields of ``values`` (a policy section; missing or
        unreadable fields take their defaults). Also run on a section whose fields
        failed, so that every problem of a config is listed at once."""

        def num(name: str) -> float:
            field = cls.model_fields[name]
            try:
                return float(values.get(name, field.default))
            except (TypeError, ValueError):
                return float(field.default)

        problems: list[str] = []
        low, high = num("flap_low_pct"), num("flap_high_pct")
        if low >= high:
            problems.append(
                f"flap_low_pct ({low}) must be below flap_high_pct ({high}): they form "
                "a dead band"
            )
        base, cap = num("cooldown_base_s"), num("cooldown_cap_s")
        if base > cap:
            problems.append(f"cooldown_base_s ({base}) exceeds cooldown_cap_s ({cap})")
        return problems

    @classmethod
    def naive(cls, **overrides: Any) -> Policy:
        """The watcher of 14 to 20 May: failback after rise 2 probes, no cooldown, no
        traffic rule, no flap detection."""
        settings: dict[str, Any] = {
            "version": "naive",
            "rise": 2,
            "traffic_rule": False,
            "cooldown": False,
            "flap_detection": False,
            "half_open": False,
        }
        settings.update(overrides)
        return cls(**settings)

    @classmethod
    def original(cls, **overrides: Any) -> Policy:
        """The watcher before 14 May: alerts and pins, but no failback at all. An agent
        pinned away stays there until an operator moves it (the stale-pin incident)."""
        settings: dict[str, Any] = {"version": "original", "failback": False}
        settings.update(overrides)
        return cls.naive(**settings)

    def is_paid(self, model: str) -> bool:
        return model.partition("/")[0] in self.paid_providers
