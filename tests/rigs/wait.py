"""Waiting on a condition in tests, the one way every rig does it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | None], timeout: float = 15.0, what: str = "condition"
) -> T:
    """Poll ``predicate`` every 0.05 s until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def require_root() -> None:
    """Fail, not skip, without root: these tests change file owners and add users, and
    the README's test command runs as root (or with sudo), as CI does."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root: run ./scripts/test as root or with sudo, as the "
                    "README's quick start and CI do", pytrace=False)
