"""The ``[breaker]`` section of the TOML config: typed, validated, immutable once loaded.

```toml
[breaker]
gateway_config = "/home/op/.openclaw/openclaw.json"
state_dir = "/var/lib/failover-breaker"      # ledger, read position, outbox
journal = "journal"                         # a source spec: journal, journal:DIR, file:PATH...
units = ["openclaw-gateway.service"]        # journal units to read ([] = all)
timezone = "Europe/Berlin"                  # the day the caps count in (IANA name)
currency = "USD"
backups_keep = 10
cas_retries = 3
check_interval = 30                         # seconds between day-boundary checks

[breaker.providers.openai]                  # a paid provider
call_price = 0.02                           # estimate per call
failed_call_factor = 1.0                    # a failed call costs this share of a call
daily_cap = 5.00                            # money per day, and/or
daily_calls = 400                           # calls per day
[breaker.providers.openai.model_prices]
"gpt-5.5" = 0.05                            # per-model override (model part or full ref)
```

Every provider listed here with ``paid = true`` (the default) is metered; calls on
any other provider cost nothing and never trip. Validation reports every error at once.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from watcher.alerts.config import AlertsConfig

DEFAULT_CONFIG = Path("/etc/failover-watcher/breaker.toml")

NonNegative = Annotated[float, Field(ge=0)]


class BreakerConfigError(ValueError):
    """The config file is missing, unreadable or invalid; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class ProviderBudget(BaseModel):
    """Prices and daily caps of one paid provider."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    paid: bool = True
    call_price: NonNegative = 0.0
    model_prices: dict[str, NonNegative] = Field(default_factory=dict)
    failed_call_factor: NonNegative = 1.0
    daily_cap: NonNegative | None = None
    daily_calls: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _needs_a_cap(self) -> ProviderBudget:
        if self.paid and self.daily_cap is None and self.daily_calls is None:
            raise ValueError("a paid provider needs daily_cap (money) or daily_calls, or both")
        if self.daily_cap is not None and self.call_price == 0 and not self.model_prices:
            raise ValueError("daily_cap needs a call_price or model_prices to count money")
        return self

    def price(self, provider: str, model: str) -> float:
        """The estimate for one call of ``provider/model``; a full-ref key wins."""
        for key in (f"{provider}/{model}", model):
            if key in self.model_prices:
                return self.model_prices[key]
        return self.call_price


class BreakerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    gateway_config: Path
    state_dir: Path = Path("/var/lib/failover-breaker")
    journal: str = "journal"
    units: tuple[str, ...] = ("openclaw-gateway.service",)
    timezone: str = "UTC"
    currency: str = "USD"
    backups_keep: Annotated[int, Field(ge=1, le=1000)] = 10
    cas_retries: Annotated[int, Field(ge=0, le=100)] = 3
    check_interval: Annotated[float, Field(gt=0, le=3600)] = 30.0
    providers: dict[str, ProviderBudget] = Field(default_factory=dict)
    # Telegram for BREAKER_TRIPPED / BREAKER_RESET; absent: cards stay in the outbox.
    alerts: AlertsConfig | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, value: dict[str, ProviderBudget]) -> dict[str, ProviderBudget]:
        bad = [name for name in value if not name or "/" in name]
        if bad:
            raise ValueError(f"provider names cannot be empty or contain '/': {bad}")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def paid(self) -> dict[str, ProviderBudget]:
        return {name: budget for name, budget in self.providers.items() if budget.paid}


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in ("breaker", *loc))


def parse_config(text: str, source: str = "<config>") -> BreakerConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BreakerConfigError([f"{source}: not valid TOML: {exc}"]) from exc
    section = data.get("breaker")
    if not isinstance(section, dict):
        raise BreakerConfigError([f"{source}: no [breaker] section"])
    try:
        return BreakerConfig.model_validate(section)
    except ValidationError as exc:
        raise BreakerConfigError(
            [f"{source}: {_location(err['loc'])}: {err['msg']}" for err in exc.errors()]
        ) from exc


def load_config(path: Path) -> BreakerConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BreakerConfigError([f"cannot read {path}: {exc.strerror or exc}"]) from exc
    return parse_config(text, str(path))
