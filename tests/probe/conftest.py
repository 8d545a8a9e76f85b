"""Fixtures for the probe area: a real loopback fake model server and provider helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from watcher.fakes.models import FakeModelServer
from watcher.probe.providers import Provider


@pytest.fixture
async def fake() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer() as server:
        yield server


def ollama_at(fake: FakeModelServer, provider: str = "ollama", **kw: object) -> Provider:
    return Provider(id=provider, api="ollama", base_url=fake.base_url(provider), **kw)


def openai_at(fake: FakeModelServer, provider: str = "cloud", **kw: object) -> Provider:
    return Provider(
        id=provider, api="openai-completions", base_url=fake.base_url(provider, "openai"), **kw
    )
