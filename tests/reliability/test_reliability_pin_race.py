"""A hand edit that lands between the watcher's read of the pin file and its write.

``Watcher.apply`` reads the pin file (adopting edits) before it decides, and writes it
after, in a second locked step. An operator's ``flock <pin>.lock jq ...`` can take the
lock in between. These tests put a real ``flock``+``jq`` edit exactly there (a hook
that runs right after the adoption read) and check the edit is decided on, never
silently overwritten: a valid one is adopted and audited as an OPERATOR_OVERRIDE, an
invalid one is quarantined and announced as PIN_FILE_REJECTED.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.rigs.file_world import write_file_world
from watcher.config import load_settings
from watcher.core.events import Event, Hold, Tick
from watcher.pins import schema as pinfile
from watcher.pins.schema import AgentPin, PinFile
from watcher.pins.schema import Hold as PinHold
from watcher.pins.store import PIN_FILENAME, AdoptedEdit, PinStore, RejectedEdit
from watcher.shell.watcher import Watcher

pytestmark = pytest.mark.skipif(
    shutil.which("jq") is None or shutil.which("flock") is None, reason="needs jq and flock"
)

CHAINS = {
    "nexus": ["ollama/glm-5.1:cloud", "deepseek/deepseek-v4-flash", "ollama/glm-5:cloud"],
    "hermes": ["ollama/kimi-k2.5:cloud", "ollama/glm-5.1:cloud", "ollama/glm-5:cloud"],
}
HOLD_NEXUS = (
    '.agents.nexus |= (.current_serving = "ollama/glm-5:cloud" | .in_fallback = true'
    ' | .hold = {model: "ollama/glm-5:cloud", by: "alice", until: null, note: "racing edit"})'
)
BREAK_NEXUS = '.agents.nexus.current_serving = "openai/not-in-chain"'


def flock_jq(pin: Path, jq_filter: str) -> None:
    """The operator's recipe: under ``<pin>.lock``, jq into a same-dir temp file, mv."""
    script = 'jq "$2" "$1" > "$1.tmp-edit" && mv -f "$1.tmp-edit" "$1"'
    subprocess.run(
        ["flock", "-w", "10", f"{pin}.lock", "sh", "-c", script, "sh", str(pin), jq_filter],
        check=True,
    )


class EditAfterRead(Watcher):
    """The real watcher, with a hook run right after apply's adoption read."""

    after_read: Callable[[], None] | None = None

    def _pin_edit_events(self) -> list[Event]:
        events = super()._pin_edit_events()
        hook, self.after_read = self.after_read, None
        if hook is not None:
            hook()
        return events


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_file_world(tmp_path, CHAINS)


@pytest.fixture
def watcher(config: Path) -> Iterator[EditAfterRead]:
    w = EditAfterRead.open(load_settings(config))
    w.apply([Tick()])  # as run() does first: the store has read the file
    yield w
    w.intake.outbox.close()


def audit_types(w: Watcher) -> list[tuple[str, list[str]]]:
    lines = (w.state_dir / "audit.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return [(r["type"], r.get("data", {}).get("agents", [])) for r in records]


def pin_on_disk(w: Watcher) -> dict:  # type: ignore[type-arg]
    return json.loads(w.pins.path.read_text())  # type: ignore[no-any-return]


def test_hand_edit_landing_between_read_and_write_is_adopted_not_overwritten(
    watcher: EditAfterRead,
) -> None:
    watcher.after_read = lambda: flock_jq(watcher.pins.path, HOLD_NEXUS)
    # The batch moves hermes, so the watcher writes the pin file after the edit landed.
    watcher.apply([Hold("hermes", "ollama/glm-5:cloud", note="batch")])

    nexus = watcher.state.agents["nexus"]
    assert nexus.hold is not None and nexus.hold.note == "racing edit"
    assert nexus.serving == "ollama/glm-5:cloud"
    on_disk = pin_on_disk(watcher)["agents"]
    assert on_disk["nexus"]["hold"]["note"] == "racing edit"
    assert on_disk["hermes"]["hold"]["note"] == "batch"  # the batch's own write landed too
    assert ("OPERATOR_OVERRIDE", ["nexus"]) in audit_types(watcher)


def test_invalid_edit_landing_between_read_and_write_is_quarantined_and_announced(
    watcher: EditAfterRead,
) -> None:
    watcher.after_read = lambda: flock_jq(watcher.pins.path, BREAK_NEXUS)
    watcher.apply([Hold("hermes", "ollama/glm-5:cloud", note="batch")])

    kept = list(watcher.pins.path.parent.glob("fallback-state.json.rejected-*"))
    assert len(kept) == 1 and "openai/not-in-chain" in kept[0].read_text()
    assert ("PIN_FILE_REJECTED", []) in audit_types(watcher)
    on_disk = pin_on_disk(watcher)["agents"]
    assert on_disk["nexus"]["current_serving"] == CHAINS["nexus"][0]
    assert on_disk["hermes"]["hold"]["note"] == "batch"


def test_edit_made_while_stopped_survives_a_pin_write_left_pending_by_a_crash(
    config: Path,
) -> None:
    first = Watcher.open(load_settings(config))
    first.apply([Hold("hermes", "ollama/glm-5:cloud", note="before the crash")])
    first.intake.outbox.close()
    # A crash after the snapshot and before the pin write leaves the write pending.
    snapshot_path = first.snapshot.path
    snapshot = json.loads(snapshot_path.read_text())
    snapshot["pending"]["write_pins"] = True
    snapshot_path.write_text(json.dumps(snapshot))
    flock_jq(first.pins.path, HOLD_NEXUS)  # the operator edits while the watcher is down

    second = Watcher.open(load_settings(config))  # recovers the pending write
    try:
        second.apply([Tick()])  # what run() does first
        nexus = second.state.agents["nexus"]
        assert nexus.hold is not None and nexus.hold.note == "racing edit"
        assert pin_on_disk(second)["agents"]["nexus"]["hold"]["note"] == "racing edit"
        assert ("OPERATOR_OVERRIDE", ["nexus"]) in audit_types(second)
    finally:
        second.intake.outbox.close()


# -- the store's part: rebasing the edit onto the watcher's newer state ------------------

CHAIN = ["ollama/kimi-k2.5:cloud", "deepseek/deepseek-v4-flash", "ollama/qwen3:8b"]


def _agent(serving: str, note: str | None = None) -> AgentPin:
    hold = PinHold(model=serving, by="alice", note=note) if note else None
    return AgentPin(
        primary=CHAIN[0],
        current_serving=serving,
        in_fallback=serving != CHAIN[0],
        chain=list(CHAIN),
        hold=hold,
    )


def test_rebased_edit_keeps_the_operators_agent_and_the_watchers_newer_others(
    tmp_path: Path,
) -> None:
    pin = tmp_path / PIN_FILENAME
    store = PinStore(pin)
    base = PinFile(agents={"a": _agent(CHAIN[0]), "b": _agent(CHAIN[0])})
    store.update(lambda _read: base)
    flock_jq(pin, '.agents.a.hold = {model: .agents.a.primary, by: "alice", note: "mine"}')
    newer = PinFile(agents={"a": _agent(CHAIN[0]), "b": _agent(CHAIN[1])})  # decided meanwhile

    assert store.write_keeping_edits(newer) is False  # an edit waits: nothing overwritten
    on_disk = pinfile.loads(pin.read_bytes())
    assert on_disk.agents["a"].hold is not None and on_disk.agents["a"].hold.note == "mine"
    assert on_disk.agents["b"] == newer.agents["b"]
    # A restart before the next read sees the same edit, against the same baseline.
    for reader in (PinStore(pin), store):
        read = reader.read()
        assert isinstance(read.edit, AdoptedEdit)
        assert read.edit.previous == newer  # so only the operator's change differs
        assert read.pins == on_disk
    assert store.write_keeping_edits(read.pins) is True


def test_invalid_edit_is_left_for_the_next_read_to_quarantine(tmp_path: Path) -> None:
    pin = tmp_path / PIN_FILENAME
    store = PinStore(pin)
    store.update(lambda _read: PinFile(agents={"a": _agent(CHAIN[0])}))
    flock_jq(pin, '.agents.a.current_serving = "openai/not-in-chain"')
    broken = pin.read_bytes()

    assert store.write_keeping_edits(PinFile(agents={"a": _agent(CHAIN[1])})) is False
    assert pin.read_bytes() == broken
    read = store.read()
    assert isinstance(read.edit, RejectedEdit) and read.edit.quarantined_to is not None
    assert read.edit.quarantined_to.read_bytes() == broken
