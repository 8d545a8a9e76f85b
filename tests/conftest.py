"""Shared test configuration. Area fixtures live in ``tests/<area>/conftest.py``."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from watcher.fakes.models import FakeModelServer

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def threaded_models() -> Iterator[FakeModelServer]:
    """The loopback fake model server on its own thread, for sync tests."""
    server = FakeModelServer().start_in_thread()
    try:
        yield server
    finally:
        server.stop_in_thread()
