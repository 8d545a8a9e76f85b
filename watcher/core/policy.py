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
- flap detection: a weighted percent-state-change over the agent's pin changes in
  the last ``flap_window_s`` (recent ones weigh up to 1.2, the oldest 0.8, like
  Nagios/Icinga); ``flap_full_scale`` changes in the window make 100 %. At or above
  ``flap_high_pct`` the agent is frozen on its fallback; below ``flap_low_pct`` it is
  released. The band in between keeps whatever it was (a dead band), so the state
  itself does not flap.

``Policy.naive()`` reproduces the original eighty-line watcher for comparison: rise
2, no cooldown, no traffic rule, no flap detection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

POLICY_VERSION = "2026.11.1"


class Policy(BaseModel):
    """Immutable once loaded; construct it from the watcher's config section."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(
        default=POLICY_VERSION, min_length=1, description="recorded in every audit record"
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
        """The original watcher: rise 2, no cooldown, no traffic rule, no flap detection."""
        settings: dict[str, Any] = {
            "version": "naive",
            "rise": 2,
            "traffic_rule": False,
            "cooldown": False,
            "flap_detection": False,
        }
        settings.update(overrides)
        return cls(**settings)

    def is_paid(self, model: str) -> bool:
        return model.partition("/")[0] in self.paid_providers
