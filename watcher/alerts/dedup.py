"""Dedup that counts: which cards to send, which to suppress, and how much was suppressed.

Pure: the clock comes in as ``now`` (epoch seconds); no I/O. The state round-trips
through JSON (``to_json``/``from_json``) so a restart keeps the counts.

The 20 May flap hid behind a 60 s window that silently ate cards. Here nothing is
silent: every suppressed card is counted per dedup key with a reason, the count since
the key's last sent card goes into that key's next card footer, the last hour is kept
for ``status``, and when suppression does more work than alerting, a
SUPPRESSION_DOMINANT card says so (oversight of the oversight).

Decision order for one alert:
1. ``catch_up`` (replayed history, already announced before a restart): suppressed,
   whatever its type. These do not count towards dominance: they protect against
   repeats, not attention.
2. ``NEVER_SUPPRESSED`` types: sent.
3. muted key (operator mute; the hook is ``mute``/``unmute``): suppressed.
4. FALLBACK_FIRED/RECOVERY when every agent on it is flapping: suppressed, because the
   FLAPPING_START card tells that story and the flip cards would only be noise.
5. the same key sent less than ``window_s`` ago: suppressed (``dedup``). The window runs
   from the last *sent* card, so a steady stream still yields one card per window,
   each carrying "+N similar suppressed".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from watcher.core.transitions import NEVER_SUPPRESSED, Alert, TransitionType

STATE_VERSION = 1
OTHER_KEYS = "(other keys)"
FLAP_SUPPRESSIBLE = frozenset({TransitionType.FALLBACK_FIRED, TransitionType.RECOVERY})


class SuppressionReason(StrEnum):
    DEDUP = "dedup"
    FLAPPING = "flapping"
    CATCH_UP = "catch_up"
    MUTED = "muted"


@dataclass(frozen=True)
class DedupPolicy:
    window_s: float = 60.0
    dominance_min_suppressed: int = 10
    dominance_ratio: float = 2.0  # suppressed / sent over the last hour
    dominance_window_s: float = 3600.0  # at most one SUPPRESSION_DOMINANT card per this
    history_s: float = 3600.0  # the rolling record ``status`` shows
    bucket_s: float = 300.0  # granularity of that record
    max_keys: int = 2000  # per-key states kept (memory bound)
    max_keys_per_bucket: int = 100  # beyond this, counts go to "(other keys)"
    top_keys: int = 5  # listed on a SUPPRESSION_DOMINANT card


@dataclass(frozen=True)
class Verdict:
    """What to do with one alert. ``suppressed_since_last`` feeds the card footer."""

    alert: Alert
    send: bool
    reason: SuppressionReason | None = None
    suppressed_since_last: int = 0


@dataclass
class _KeyState:
    last_sent: float | None = None
    pending: int = 0  # suppressed since last_sent
    last_seen: float = 0.0


@dataclass
class _Bucket:
    sent: int = 0
    suppressed: dict[str, dict[str, int]] = field(default_factory=dict)  # key -> reason -> n


class Deduplicator:
    """Stateful but pure: feed it alerts with ``now``; it answers with verdicts."""

    def __init__(self, policy: DedupPolicy | None = None) -> None:
        self.policy = policy or DedupPolicy()
        self._keys: dict[str, _KeyState] = {}
        self._buckets: dict[int, _Bucket] = {}
        self._mutes: dict[str, float] = {}
        self._last_dominance: float | None = None

    # -- decisions -------------------------------------------------------------------

    def decide(self, alert: Alert, now: float, flapping: Iterable[str] = ()) -> list[Verdict]:
        """The verdict for ``alert``, followed by a SUPPRESSION_DOMINANT verdict if due."""
        key = alert.dedup_key
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyState()
        state.last_seen = now
        reason = self._reason(alert, key, state, now, frozenset(flapping))
        verdicts: list[Verdict]
        if reason is None:
            verdicts = [Verdict(alert, True, None, state.pending)]
            state.last_sent, state.pending = now, 0
            self._bucket(now).sent += 1
        else:
            state.pending += 1
            self._count_suppressed(key, reason, now)
            verdicts = [Verdict(alert, False, reason, state.pending)]
            dominant = self._dominance(now)
            if dominant is not None:
                verdicts.append(dominant)
        self._prune(now)
        return verdicts

    def _reason(
        self,
        alert: Alert,
        key: str,
        state: _KeyState,
        now: float,
        flapping: frozenset[str],
    ) -> SuppressionReason | None:
        if alert.catch_up:
            return SuppressionReason.CATCH_UP
        if alert.type in NEVER_SUPPRESSED:
            return None
        until = self._mutes.get(key)
        if until is not None and now < until:
            return SuppressionReason.MUTED
        if (
            alert.type in FLAP_SUPPRESSIBLE
            and alert.agents
            and all(agent in flapping for agent in alert.agents)
        ):
            return SuppressionReason.FLAPPING
        if state.last_sent is not None and now - state.last_sent < self.policy.window_s:
            return SuppressionReason.DEDUP
        return None

    def _dominance(self, now: float) -> Verdict | None:
        policy = self.policy
        if (
            self._last_dominance is not None
            and now - self._last_dominance < policy.dominance_window_s
        ):
            return None
        by_key = self.suppressed_last_hour(now, include_catch_up=False)
        suppressed = sum(sum(reasons.values()) for reasons in by_key.values())
        sent = self.sent_last_hour(now)
        if suppressed < policy.dominance_min_suppressed:
            return None
        if suppressed <= policy.dominance_ratio * sent:
            return None
        self._last_dominance = now
        top = sorted(by_key.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        lines = []
        for key, reasons in top[: policy.top_keys]:
            parts = ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))
            lines.append(f"{sum(reasons.values())} × {key} ({parts})")
        alert = Alert(
            type=TransitionType.SUPPRESSION_DOMINANT,
            ts=now,
            detail="\n".join(lines),
            extra={
                "suppressed_last_hour": str(suppressed),
                "sent_last_hour": str(sent),
                "suppressed_keys": str(len(by_key)),
            },
        )
        self._bucket(now).sent += 1
        return Verdict(alert, True, None, 0)

    # -- the operator's mute hook --------------------------------------------------------

    def mute(self, key: str, until: float) -> None:
        self._mutes[key] = until

    def unmute(self, key: str) -> None:
        self._mutes.pop(key, None)

    def mutes(self, now: float) -> dict[str, float]:
        return {k: u for k, u in self._mutes.items() if u > now}

    def recent_keys(self, now: float, limit: int = 10) -> list[tuple[str, float]]:
        """The keys seen in the last ``history_s``, newest first, with when: what an
        operator picks from to mute (``/status`` lists them)."""
        horizon = now - self.policy.history_s
        seen = [(k, s.last_seen) for k, s in self._keys.items() if s.last_seen >= horizon]
        return sorted(seen, key=lambda kv: (-kv[1], kv[0]))[:limit]

    # -- the rolling record ------------------------------------------------------------

    def suppressed_last_hour(
        self, now: float, *, include_catch_up: bool = True
    ) -> dict[str, dict[str, int]]:
        """Suppressed counts over the last ``history_s``, by key, then by reason."""
        out: dict[str, dict[str, int]] = {}
        for start, bucket in self._buckets.items():
            if not self._in_history(start, now):
                continue
            for key, reasons in bucket.suppressed.items():
                for reason, n in reasons.items():
                    if not include_catch_up and reason == SuppressionReason.CATCH_UP:
                        continue
                    slot = out.setdefault(key, {})
                    slot[reason] = slot.get(reason, 0) + n
        return out

    def sent_last_hour(self, now: float) -> int:
        return sum(b.sent for s, b in self._buckets.items() if self._in_history(s, now))

    def pending(self, key: str) -> int:
        """Suppressed since the last card sent for ``key`` (the next footer's N)."""
        state = self._keys.get(key)
        return state.pending if state else 0

    def _in_history(self, start: int, now: float) -> bool:
        return start + self.policy.bucket_s > now - self.policy.history_s

    def _bucket(self, now: float) -> _Bucket:
        start = int(now // self.policy.bucket_s * self.policy.bucket_s)
        bucket = self._buckets.get(start)
        if bucket is None:
            bucket = self._buckets[start] = _Bucket()
        return bucket

    def _count_suppressed(self, key: str, reason: SuppressionReason, now: float) -> None:
        bucket = self._bucket(now)
        full = len(bucket.suppressed) >= self.policy.max_keys_per_bucket
        if full and key not in bucket.suppressed:
            key = OTHER_KEYS
        reasons = bucket.suppressed.setdefault(key, {})
        reasons[reason.value] = reasons.get(reason.value, 0) + 1

    def _prune(self, now: float) -> None:
        for start in [s for s in self._buckets if not self._in_history(s, now)]:
            del self._buckets[start]
        for key in [k for k, u in self._mutes.items() if u <= now]:
            del self._mutes[key]
        if len(self._keys) <= self.policy.max_keys:
            return
        horizon = now - max(self.policy.window_s, self.policy.history_s)
        for key in [k for k, s in self._keys.items() if s.pending == 0 and s.last_seen < horizon]:
            del self._keys[key]
        excess = len(self._keys) - self.policy.max_keys
        if excess > 0:
            # Oldest first; their counts remain in the metrics and the hour record.
            oldest = sorted(self._keys.items(), key=lambda kv: kv[1].last_seen)[:excess]
            for key, _ in oldest:
                del self._keys[key]

    # -- persistence -------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "keys": {
                k: [s.last_sent, s.pending, s.last_seen] for k, s in sorted(self._keys.items())
            },
            "buckets": {
                str(start): {"sent": b.sent, "suppressed": b.suppressed}
                for start, b in sorted(self._buckets.items())
            },
            "mutes": dict(sorted(self._mutes.items())),
            "last_dominance": self._last_dominance,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], policy: DedupPolicy | None = None) -> Deduplicator:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"dedup state version {data.get('version')!r} is not {STATE_VERSION}")
        dedup = cls(policy)
        for key, (last_sent, pending, last_seen) in data.get("keys", {}).items():
            dedup._keys[str(key)] = _KeyState(
                None if last_sent is None else float(last_sent), int(pending), float(last_seen)
            )
        for start, raw in data.get("buckets", {}).items():
            dedup._buckets[int(start)] = _Bucket(
                sent=int(raw.get("sent", 0)),
                suppressed={
                    str(k): {str(r): int(n) for r, n in reasons.items()}
                    for k, reasons in raw.get("suppressed", {}).items()
                },
            )
        dedup._mutes = {str(k): float(u) for k, u in data.get("mutes", {}).items()}
        last = data.get("last_dominance")
        dedup._last_dominance = None if last is None else float(last)
        return dedup
