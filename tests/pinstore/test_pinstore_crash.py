"""A crash at any point of a pin write leaves the old or the new valid file, never a torn one."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.pinstore.conftest import LOCAL, PAID, PYTHON, ROOT, agent, pins
from watcher.pins import schema as pinfile
from watcher.pins.store import NoChange, PinStore


def last_good(pin: Path) -> Path:
    return pin.with_name(pin.name + ".last-good")


def staged(pin: Path) -> Path:
    return pin.with_name(f".{pin.name}.staged-4242-1")


def written(pin: Path) -> tuple[bytes, bytes]:
    """A store that wrote an old state; returns (old bytes, new bytes it was about to write)."""
    store = PinStore(pin)
    with store.locked() as txn:
        txn.read()
        txn.write(pins(orchestrator=agent(PAID)))
    return pin.read_bytes(), pinfile.dumps(pins(orchestrator=agent(LOCAL))).encode()


def test_sigkill_at_random_points_during_1000_pin_writes_never_tears_or_loses_the_pin(
    tmp_path: Path,
) -> None:
    proc = subprocess.run(
        [PYTHON, "-m", "tests.pinstore.crash_harness", str(tmp_path), "1000", "20260520"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["kills"] == 1000
    assert summary["writes_acknowledged"] > 100, "the writer really was writing"
    assert summary["kills_that_left_a_staged_file"] > 0, "some kills landed mid-write"


def test_crash_after_staging_before_last_good_keeps_the_old_pin(tmp_path: Path) -> None:
    pin = tmp_path / "fallback-state.json"
    old, new = written(pin)
    staged(pin).write_bytes(new)
    got = PinStore(pin).read()
    assert isinstance(got.edit, NoChange)
    assert pin.read_bytes() == old == last_good(pin).read_bytes()
    assert not staged(pin).exists()


def test_crash_between_replacing_last_good_and_renaming_the_pin_finishes_the_write(
    tmp_path: Path,
) -> None:
    pin = tmp_path / "fallback-state.json"
    _old, new = written(pin)
    staged(pin).write_bytes(new)
    last_good(pin).write_bytes(new)
    got = PinStore(pin).read()
    assert isinstance(got.edit, NoChange), "our own unfinished write is not an operator edit"
    assert pin.read_bytes() == new
    assert not staged(pin).exists()


def test_crash_inside_an_atomic_replace_leaves_only_a_temp_file_that_is_cleaned(
    tmp_path: Path,
) -> None:
    pin = tmp_path / "fallback-state.json"
    old, new = written(pin)
    torn = new[: len(new) // 2]
    pin.with_name(f".{pin.name}.tmp-4242-1").write_bytes(torn)
    pin.with_name(f".{pin.name}.last-good.tmp-4242-1").write_bytes(torn)
    pin.with_name(f".{pin.name}.pin-edit.AbC123").write_bytes(torn)
    got = PinStore(pin).read()
    assert isinstance(got.edit, NoChange)
    assert pin.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fallback-state.json",
        "fallback-state.json.last-good",
        "fallback-state.json.lock",
    ]


def test_crash_before_the_first_pin_ever_existed_restores_the_staged_state(
    tmp_path: Path,
) -> None:
    pin = tmp_path / "fallback-state.json"
    new = pinfile.dumps(pins(orchestrator=agent(LOCAL))).encode()
    staged(pin).write_bytes(new)
    last_good(pin).write_bytes(new)
    got = PinStore(pin).read()
    assert isinstance(got.edit, NoChange)
    assert pin.read_bytes() == new
