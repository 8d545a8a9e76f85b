"""Wire the alert pipeline from an ``AlertsConfig``: outbox, intake, Telegram sender.

The daemon does::

    alerts = AlertService.from_config(cfg.alerts, state_dir, metrics)
    await alerts.start()                  # the sender becomes its own asyncio task
    alerts.intake.submit(alert, now=time.time(), flapping=core_state.flapping_agents)
    ...
    await alerts.stop()                   # finishes the send in flight, closes the outbox
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from watcher.alerts.config import AlertsConfig, resolve_token
from watcher.alerts.dedup import DedupPolicy
from watcher.alerts.intake import AlertIntake
from watcher.alerts.outbox import DEFAULT_FILENAME, Outbox
from watcher.alerts.pacing import Backoff, ChatRateLimit
from watcher.alerts.telegram import BotApi, PtbBotApi, TelegramSender, build_bot
from watcher.support.metrics import Metrics


class AlertService:
    """The three parts and the sender task's lifetime."""

    def __init__(self, outbox: Outbox, intake: AlertIntake, sender: TelegramSender) -> None:
        self.outbox = outbox
        self.intake = intake
        self.sender = sender
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_config(
        cls,
        config: AlertsConfig,
        state_dir: Path,
        metrics: Metrics,
        *,
        environ: dict[str, str] | None = None,
        api: BotApi | None = None,
    ) -> AlertService:
        outbox = Outbox(
            Path(state_dir) / DEFAULT_FILENAME, limit=config.outbox_limit, metrics=metrics.alerts
        )
        if api is None:
            token = resolve_token(config.bot_token, environ=environ)
            api = PtbBotApi(
                build_bot(
                    token,
                    base_url=config.base_url,
                    connect_timeout=config.connect_timeout_s,
                    read_timeout=config.read_timeout_s,
                )
            )
        sender = TelegramSender(
            outbox,
            api,
            chat_id=config.chat_id,
            thread_id=config.message_thread_id,
            rate_limit=ChatRateLimit(
                private_per_second=config.private_per_second,
                group_per_minute=config.group_per_minute,
            ),
            backoff=Backoff(config.backoff_base_s, config.backoff_max_s),
            metrics=metrics.alerts,
            sink_metrics=metrics.sinks,
        )
        intake = AlertIntake(
            outbox,
            tz=config.tz,
            policy=DedupPolicy(
                window_s=config.dedup_window_s,
                dominance_min_suppressed=config.dominance_min_suppressed,
                dominance_ratio=config.dominance_ratio,
                dominance_window_s=config.dominance_window_s,
            ),
            metrics=metrics.alerts,
            on_enqueue=sender.notify,
        )
        return cls(outbox, intake, sender)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.sender.run(), name="telegram-sender")
            await asyncio.sleep(0)  # let it register its loop for notify()

    async def stop(self, grace_s: float = 5.0) -> None:
        if self._task is not None:
            await self.sender.stop(grace_s)
            self._task = None
        await self.sender.api.close()
        self.outbox.close()
