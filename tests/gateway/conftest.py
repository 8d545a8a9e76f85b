"""Fixtures for the gateway area: one real OpenClaw gateway per module (start-up costs
about 20 s on the 2-core CI box), with the fallback-pin plugin, on a loopback fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.rig import GatewayRig, gateway_binaries
from watcher.fakes.journal import LiveJournal
from watcher.fakes.models import FakeModelServer, Reply

PRIMARY = "ollama/first"
FALLBACK = "backup/second"
AGENTS = {"alpha": (PRIMARY, [FALLBACK])}
MAX_AGE_S = 120


def iso_z(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pin_doc(
    agents: dict[str, dict[str, Any]], *, age_s: float = 0.0
) -> dict[str, Any]:
    """A schema-1 pin file as failover-watcher writes it, ``age_s`` old."""
    at = iso_z(datetime.now(UTC) - timedelta(seconds=age_s))
    return {"schema_version": 1, "updated_at": at, "heartbeat_at": at,
            "agents": agents, "models": {}}


def in_fallback(agent: str, serving: str) -> dict[str, dict[str, Any]]:
    """The ``agents`` part of a pin saying ``agent`` is in fallback on ``serving``."""
    primary, fallbacks = AGENTS[agent]
    return {agent: {"primary": primary, "current_serving": serving, "in_fallback": True,
                    "chain": [primary, *fallbacks]}}


class PinFile:
    """The pin file the module's gateway reads; writes are atomic, as the watcher's are."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write_text(self, text: str) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(self.path)

    def write(self, doc: dict[str, Any]) -> None:
        self.write_text(json.dumps(doc, indent=2) + "\n")

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeModelServer]:
    server = FakeModelServer(default=Reply.ok("ok")).start_in_thread()
    try:
        yield server
    finally:
        server.stop_in_thread()


@pytest.fixture(scope="module")
def gateway_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gateway_binaries()  # fail fast, with the fix in the message, when not installed
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="module")
def journal(gateway_root: Path) -> Iterator[LiveJournal]:
    with LiveJournal(gateway_root / "journal") as live:
        yield live


@pytest.fixture(scope="module")
def pin(gateway_root: Path) -> PinFile:
    return PinFile(gateway_root / "fallback-state.json")


@pytest.fixture(scope="module")
def gateway(
    gateway_root: Path, fake: FakeModelServer, pin: PinFile, journal: LiveJournal
) -> Iterator[GatewayRig]:
    """The stock gateway, plugin loaded, started with no pin file."""
    with GatewayRig(gateway_root, AGENTS, fake, pin.path, max_age_s=MAX_AGE_S,
                    journal=journal) as rig:
        yield rig
