"""Fixtures for the pin store, the audit log and the jq recovery wrapper."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from watcher.pins import schema as pinfile
from watcher.pins.schema import AgentPin, ModelHealthRecord, PinFile
from watcher.pins.store import PIN_FILENAME

ROOT = Path(__file__).resolve().parents[2]
PIN_EDIT = ROOT / "scripts" / "pin-edit"
PYTHON = sys.executable

CLOUD = "ollama/kimi-k2.5:cloud"
PAID = "deepseek/deepseek-v4-flash"
LOCAL = "ollama/qwen3:8b"
CHAIN = [CLOUD, PAID, LOCAL]


def agent(serving: str = CLOUD, **extra: object) -> AgentPin:
    return AgentPin(
        primary=CLOUD,
        current_serving=serving,
        in_fallback=serving != CLOUD,
        chain=list(CHAIN),
        **extra,  # type: ignore[arg-type]
    )


def pins(**agents: AgentPin) -> PinFile:
    return PinFile(agents=agents, models={CLOUD: ModelHealthRecord(state="healthy")})


@pytest.fixture
def pin_path(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    return state / PIN_FILENAME


def write_by_hand(path: Path, text: str | bytes) -> None:
    """What an editor does: replace the file's content in place, no lock, no checks."""
    data = text.encode() if isinstance(text, str) else text
    with open(path, "wb") as fh:
        fh.write(data)


def run_pin_edit(pin: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FAILOVER_WATCHER_PYTHON": PYTHON}
    return subprocess.run(
        [str(PIN_EDIT), "--pin", str(pin), *args],
        capture_output=True,
        text=True,
        env=env,
        check=check,
        timeout=60,
    )


def canonical(p: PinFile) -> str:
    return pinfile.dumps(p)
