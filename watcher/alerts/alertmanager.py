"""The Alertmanager sink: its config, and the sender that drains its queue.

The producer side (``am_feed``) writes ops into the outbox file; this sender, its own
asyncio task beside the Telegram one, posts them to ``POST /api/v2/alerts``:

- **Every peer.** Like Prometheus, it posts each batch to every URL in ``urls`` (the
  peers of one cluster gossip, so Alertmanager sends one notification). A batch counts
  as delivered when at least one peer took it; a peer that missed it gets the firing
  alerts again at the next re-post.
- **Re-post before ``endsAt``.** Firing alerts are posted with ``endsAt`` = now +
  4 × ``resend_interval_s`` (a cooldown's never past its end) and posted again every
  ``resend_interval_s``, so Alertmanager resolves them by itself if the watcher dies.
- **Retry with backoff**, on a refused connection, a timeout or a 5xx: the ops stay
  queued, nothing is lost, and Telegram, on its own queue, goes on meanwhile. A batch
  every peer refused with a 4xx can never succeed: it is dead-lettered and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from watcher.alerts.am_feed import SINK, AmFeed
from watcher.alerts.intake import AlertIntake
from watcher.alerts.pacing import Backoff
from watcher.alerts.sinkqueue import SinkOp, SinkQueue
from watcher.support.metrics import SinkMetrics
from watcher.support.tasks import finish, wake_threadsafe

log = logging.getLogger(__name__)

API_PATH = "/api/v2/alerts"


class AlertmanagerConfig(BaseModel):
    """``[alertmanager]``: where the fleet's alerts go, and how this watcher names itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    urls: list[str] = Field(
        min_length=1, description="the peers of one Alertmanager cluster, e.g. http://127.0.0.1:9093"
    )
    instance: str = Field(
        default_factory=socket.gethostname, min_length=1,
        description="this gateway's name: the 'gateway' label (default: the host name)",
    )
    resend_interval_s: float = Field(default=60.0, gt=0, description="re-post firing alerts")
    event_ttl_s: float = Field(
        default=900.0, gt=0, description="how long a one-shot event (RECOVERY...) stays up"
    )
    timeout_s: float = Field(default=5.0, gt=0)
    backoff_base_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=60.0, gt=0)
    batch: int = Field(default=64, ge=1, le=1000, description="ops per POST")

    @field_validator("urls")
    @classmethod
    def _http(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} must start with http:// or https://")
        return [url.rstrip("/") for url in urls]


def shown(url: str) -> str:
    """``url`` for a log line: any ``user:password@`` in it replaced."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="[credentials]@" + parts.netloc.rsplit("@", 1)[1]))


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def wire(op: dict[str, Any], now: float, hold_s: float) -> dict[str, Any]:
    """One op as Alertmanager's JSON: a fixed ``endsAt`` (ended, one-shot) or, for a
    firing alert, now + ``hold_s``, never past its cap."""
    ends = op.get("ends_at")
    if ends is None:
        ends = now + hold_s
        if op.get("ends_cap") is not None:
            ends = min(ends, float(op["ends_cap"]))
    starts = float(op["starts_at"])
    return {
        "labels": op["labels"],
        "annotations": op["annotations"],
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(max(float(ends), starts)),
    }


@dataclass(frozen=True)
class Posted:
    ok: bool  # at least one peer took it
    permanent: bool  # every peer refused it with a 4xx: it will never be taken
    error: str


class AlertmanagerSender:
    """Drain the ``alertmanager`` queue, and keep the firing alerts fresh."""

    def __init__(
        self,
        config: AlertmanagerConfig,
        queue: SinkQueue,
        feed: AmFeed,
        *,
        metrics: SinkMetrics | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        idle_poll_s: float = 1.0,
    ) -> None:
        self.config = config
        self.queue = queue
        self.feed = feed
        self.metrics = metrics
        self.wall_clock = wall_clock
        self.clock = clock
        self.rng = rng
        self.idle_poll_s = idle_poll_s
        self.backoff = Backoff(config.backoff_base_s, config.backoff_max_s)
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(config.timeout_s), transport=transport)
        self.failures = 0
        self._next_refresh = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def hold_s(self) -> float:
        return 4 * self.config.resend_interval_s

    def notify(self) -> None:
        """Ops were queued: wake the sender. Safe from any thread."""
        wake_threadsafe(self._loop, self._wake)

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="alertmanager-sender")
        await asyncio.sleep(0)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        log.info("alertmanager sender started: %s as gateway=%s (%d queued)",
                 ", ".join(map(shown, self.config.urls)), self.config.instance,
                 self.queue.depth())
        while not self._stopping:
            self._wake.clear()
            delay = await self.step()
            if self.metrics:
                self.metrics.pending.labels(SINK).set(await asyncio.to_thread(self.queue.depth))
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)

    async def stop(self, grace_s: float = 3.0) -> None:
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        await finish(self._task, grace_s)  # a post cut off leaves its ops queued
        await self.http.aclose()

    async def step(self) -> float:
        """Post the queued ops, or else re-post the firing set when due; the seconds to
        wait before the next step."""
        ops = await asyncio.to_thread(self.queue.head, self.config.batch)
        if ops:
            return await self._deliver(ops)
        if self.clock() >= self._next_refresh:
            return await self._refresh()
        return min(self.idle_poll_s, max(0.0, self._next_refresh - self.clock()))

    async def _deliver(self, ops: list[SinkOp]) -> float:
        now = self.wall_clock()
        posted = await self.post([wire(op.op, now, self.hold_s) for op in ops])
        ids = [op.id for op in ops]
        if posted.ok:
            await asyncio.to_thread(self.queue.mark_sent, ids, self.wall_clock())
            self.failures = 0
            if self.metrics:
                self.metrics.sent.labels(SINK).inc(len(ids))
            return 0.0
        if posted.permanent:
            await asyncio.to_thread(self.queue.mark_dead, ids, posted.error, self.wall_clock())
            if self.metrics:
                self.metrics.dead_lettered.labels(SINK).inc(len(ids))
            log.error("alertmanager refused %d alert(s) for good, dead-lettered: %s",
                      len(ids), posted.error)
            return 0.0
        await asyncio.to_thread(self.queue.mark_retry, ids, posted.error)
        return self._failed(posted, f"{len(ids)} queued alert(s)")

    async def _refresh(self) -> float:
        firing = self.feed.firing()
        self._next_refresh = self.clock() + self.config.resend_interval_s
        if not firing:
            return min(self.idle_poll_s, self.config.resend_interval_s)
        now = self.wall_clock()
        posted = await self.post([wire(f.op(ends_at=None), now, self.hold_s) for f in firing])
        if posted.ok or posted.permanent:
            self.failures = 0
            return 0.0
        delay = self._failed(posted, f"the {len(firing)} firing alert(s)")
        self._next_refresh = self.clock() + delay
        return delay

    def _failed(self, posted: Posted, what: str) -> float:
        self.failures += 1
        if self.metrics:
            self.metrics.failed.labels(SINK).inc()
        delay = self.backoff.delay(self.failures, self.rng)
        (log.warning if self.failures == 1 else log.info)(
            "alertmanager post of %s failed (%s); retry %d in %.1fs",
            what, posted.error, self.failures, delay,
        )
        return delay

    async def post(self, alerts: list[dict[str, Any]]) -> Posted:
        """POST ``alerts`` to every peer at once."""
        results = await asyncio.gather(*(self._post_one(url, alerts) for url in self.config.urls))
        if any(code is not None and 200 <= code < 300 for code, _ in results):
            return Posted(ok=True, permanent=False, error="")
        permanent = all(code is not None and 400 <= code < 500 and code != 429
                        for code, _ in results)
        return Posted(ok=False, permanent=permanent, error="; ".join(e for _, e in results))

    async def _post_one(self, url: str, alerts: list[dict[str, Any]]) -> tuple[int | None, str]:
        try:
            response = await self.http.post(url + API_PATH, json=alerts)
        except httpx.HTTPError as exc:
            return None, f"{shown(url)}: {type(exc).__name__}"
        if response.is_success:
            return response.status_code, ""
        body = response.text[:200].strip()
        return response.status_code, f"{shown(url)}: HTTP {response.status_code} {body}"


def attach(
    config: AlertmanagerConfig | None, intake: AlertIntake, metrics: SinkMetrics | None = None
) -> AlertmanagerSender | None:
    """Give ``intake`` its Alertmanager feed, and return the sender
    that drains it (start it in the daemon's loop). None when not configured."""
    if config is None:
        return None
    with intake.outbox.reading() as db:
        feed = AmFeed(db, instance=config.instance, tz=intake.tz, event_ttl_s=config.event_ttl_s)
    sender = AlertmanagerSender(config, SinkQueue(intake.outbox, SINK), feed, metrics=metrics)
    intake.feed = feed
    intake.on_feed = sender.notify
    return sender
