"""The daily probe budget per provider: probes cost the operator money and slots.

A provider's count resets at midnight in the budget's time zone (UTC unless
configured). ``spend`` is the only way to send a probe: it says whether this one may
go, and flags the first refusal of the day so exactly one card is raised per
provider per day. Time is passed in, so the class is easy to drive in tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from enum import Enum
from zoneinfo import ZoneInfo


class Spend(Enum):
    GRANTED = "granted"
    EXHAUSTED_NOW = "exhausted_now"  # first refusal today: report it
    REFUSED = "refused"  # already reported today


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One provider's budget today; ``to_json`` is the shape ``status --json`` shows."""

    provider: str
    day: str  # ISO date in the budget's time zone
    used: int
    limit: int
    refused: int  # probes not sent today because the budget was spent

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def exhausted(self) -> bool:
        return self.used >= self.limit

    def to_json(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "day": self.day,
            "used": self.used,
            "limit": self.limit,
            "remaining": self.remaining,
            "refused": self.refused,
            "exhausted": self.exhausted,
        }


class ProbeBudget:
    """Counts probes per provider per day and refuses past the limit."""

    def __init__(self, tz: str | tzinfo | None = None) -> None:
        self.tz: tzinfo = (
            UTC if tz is None else ZoneInfo(tz) if isinstance(tz, str) else tz
        )
        self._day: dict[str, date] = {}
        self._used: dict[str, int] = {}
        self._refused: dict[str, int] = {}
        self._limit: dict[str, int] = {}

    def _today(self, now: float) -> date:
        return datetime.fromtimestamp(now, self.tz).date()

    def _roll(self, provider: str, now: float) -> None:
        today = self._today(now)
        if self._day.get(provider) != today:
            self._day[provider] = today
            self._used[provider] = 0
            self._refused[provider] = 0

    def set_limit(self, provider: str, limit: int) -> None:
        """Make a provider visible in ``status`` before its first probe."""
        self._limit[provider] = limit

    def spend(self, provider: str, limit: int, now: float) -> Spend:
        self._roll(provider, now)
        self._limit[provider] = limit
        if self._used[provider] < limit:
            self._used[provider] += 1
            return Spend.GRANTED
        self._refused[provider] += 1
        return Spend.EXHAUSTED_NOW if self._refused[provider] == 1 else Spend.REFUSED

    def status(self, now: float) -> dict[str, BudgetStatus]:
        out: dict[str, BudgetStatus] = {}
        for provider in sorted(self._limit):
            self._roll(provider, now)
            out[provider] = BudgetStatus(
                provider=provider,
                day=self._day[provider].isoformat(),
                used=self._used[provider],
                limit=self._limit[provider],
                refused=self._refused[provider],
            )
        return out
