"""Config and token: a reference in the config, the token itself only in memory."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from watcher.alerts.config import AlertsConfig, TokenUnavailable, resolve_token
from watcher.alerts.secret import Secret
from watcher.alerts.service import AlertService
from watcher.fakes.botapi import DEFAULT_TOKEN, FakeBotApi
from watcher.support.metrics import Metrics

from .conftest import PRIVATE_CHAT, T0, alert

TOKEN = DEFAULT_TOKEN


def test_a_token_pasted_into_the_config_is_refused_without_being_echoed() -> None:
    with pytest.raises(ValidationError) as err:
        AlertsConfig(bot_token=TOKEN, chat_id=1)
    assert TOKEN not in str(err.value)
    assert "cred:NAME" in str(err.value)


def test_a_pasted_token_is_not_echoed_when_alerts_is_a_section_of_a_larger_config() -> None:
    class WatcherConfig(BaseModel):
        alerts: AlertsConfig

    with pytest.raises(ValidationError) as err:
        WatcherConfig.model_validate({"alerts": {"bot_token": TOKEN, "chat_id": 1}})
    assert TOKEN not in str(err.value)


def test_bad_settings_are_all_reported_at_once() -> None:
    with pytest.raises(ValidationError) as err:
        AlertsConfig(
            bot_token="env:TG",
            chat_id=1,
            timezone="Mars/Olympus",
            dedup_window_s=0,
            base_url="ftp://x",
        )
    assert err.value.error_count() == 3


def test_the_token_is_read_from_a_systemd_credential(tmp_path: Path) -> None:
    (tmp_path / "telegram-token").write_text(TOKEN + "\n")
    secret = resolve_token("cred:telegram-token", environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert secret.reveal() == TOKEN
    assert TOKEN not in repr(secret) and TOKEN not in f"{secret}"


def test_the_token_is_read_from_an_environment_variable() -> None:
    assert resolve_token("env:TG_TOKEN", environ={"TG_TOKEN": TOKEN}) == Secret(TOKEN)


@pytest.mark.parametrize(
    ("reference", "environ", "message"),
    [
        ("env:TG_TOKEN", {}, "TG_TOKEN is unset"),
        ("cred:tg", {}, "$CREDENTIALS_DIRECTORY is unset"),
        ("cred:tg", {"CREDENTIALS_DIRECTORY": "/nonexistent"}, "cannot read credential file"),
    ],
)
def test_a_missing_token_says_where_it_looked(
    reference: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(TokenUnavailable, match=message.replace("$", r"\$")):
        resolve_token(reference, environ=environ)


async def test_the_service_wires_config_to_a_working_pipeline(tmp_path: Path) -> None:
    config = AlertsConfig(
        bot_token="env:TG_TOKEN",
        chat_id=PRIVATE_CHAT,
        base_url="http://127.0.0.1:1/bot",
        timezone="Europe/Berlin",
    )
    with FakeBotApi() as fake:
        config = config.model_copy(update={"base_url": fake.base_url})
        service = AlertService.from_config(config, tmp_path, Metrics(), environ={"TG_TOKEN": TOKEN})
        await service.start()
        service.intake.submit(alert(), now=T0)
        (msg,) = await _wait(fake)
        await service.stop()
    assert "CEST" in msg.plain_text
    assert (tmp_path / "outbox.sqlite3").exists()


async def _wait(fake: FakeBotApi) -> list:  # type: ignore[type-arg]
    import asyncio

    async with asyncio.timeout(5):
        while not fake.messages:
            await asyncio.sleep(0.01)
    return fake.messages
