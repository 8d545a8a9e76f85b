"""Hand edits of the pin file: valid ones are adopted, invalid ones quarantined."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.pinstore.conftest import CLOUD, LOCAL, PAID, agent, pins, write_by_hand
from watcher.pins import schema as pinfile
from watcher.pins.check import PinFileInvalid, chains_validator
from watcher.pins.schema import Hold
from watcher.pins.store import AdoptedEdit, NoChange, PinStore, RejectedEdit

NOW = 1_779_287_880.0  # 2026-05-20T14:38:00Z


def started_store(pin_path: Path, **kw: object) -> PinStore:
    """A watcher-role store that has written one state with two agents."""
    store = PinStore(pin_path, clock=lambda: NOW, **kw)  # type: ignore[arg-type]
    with store.locked() as txn:
        assert isinstance(txn.read().edit, NoChange)
        txn.write(pins(orchestrator=agent(PAID), coder=agent()))
    return store


def test_missing_pin_file_is_an_empty_state_created_on_first_write(pin_path: Path) -> None:
    store = PinStore(pin_path)
    first = store.read()
    assert first.pins == pinfile.PinFile()
    assert isinstance(first.edit, NoChange)
    assert not pin_path.exists()
    with store.locked() as txn:
        txn.read()
        txn.write(pins(orchestrator=agent()))
    assert pinfile.loads(pin_path.read_text()).agents["orchestrator"].current_serving == CLOUD
    assert pin_path.with_name(pin_path.name + ".last-good").read_bytes() == pin_path.read_bytes()


def test_pin_file_and_last_good_are_written_mode_0640(pin_path: Path) -> None:
    old = os.umask(0o022)
    try:
        started_store(pin_path)
    finally:
        os.umask(old)
    for path in (pin_path, pin_path.with_name(pin_path.name + ".last-good")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path


def test_writes_in_one_locked_block_are_coalesced_into_one_write(pin_path: Path) -> None:
    store = started_store(pin_path)
    inode = pin_path.stat().st_ino
    with store.locked() as txn:
        txn.read()
        for serving in (LOCAL, PAID, CLOUD, LOCAL):
            txn.write(pins(orchestrator=agent(serving), coder=agent()))
        assert pin_path.stat().st_ino == inode, "nothing is written before the block ends"
    assert pin_path.stat().st_ino != inode
    assert pinfile.loads(pin_path.read_text()).agents["orchestrator"].current_serving == LOCAL
    inode = pin_path.stat().st_ino
    with store.locked() as txn:
        txn.read()
        txn.write(pins(orchestrator=agent(LOCAL), coder=agent()))
    assert pin_path.stat().st_ino == inode, "an unchanged state is not rewritten"


def test_an_exception_inside_the_block_discards_the_staged_write(pin_path: Path) -> None:
    store = started_store(pin_path)
    before = pin_path.read_bytes()
    with pytest.raises(ZeroDivisionError), store.locked() as txn:
        txn.read()
        txn.write(pins(orchestrator=agent(LOCAL)))
        1 / 0  # noqa: B018
    assert pin_path.read_bytes() == before


def test_writing_without_reading_first_is_refused_so_no_hand_edit_is_lost(pin_path: Path) -> None:
    store = started_store(pin_path)
    with pytest.raises(RuntimeError, match="read"), store.locked() as txn:
        txn.write(pins())


def test_valid_hand_edit_is_adopted_with_the_previous_state(pin_path: Path) -> None:
    store = started_store(pin_path)
    edited = pins(orchestrator=agent(), coder=agent(PAID, hold=Hold(model=PAID, by="alice")))
    write_by_hand(pin_path, json.dumps(edited.model_dump(mode="json"), indent=4))
    got = store.read()
    assert isinstance(got.edit, AdoptedEdit)
    assert got.edit.pins == edited == got.pins
    assert got.edit.previous == pins(orchestrator=agent(PAID), coder=agent())
    assert isinstance(store.read().edit, NoChange), "an edit is reported once"


def test_adopted_edit_survives_a_restart_without_being_reported_again(pin_path: Path) -> None:
    store = started_store(pin_path)
    write_by_hand(pin_path, pinfile.dumps(pins(orchestrator=agent(), coder=agent())))
    assert isinstance(store.read().edit, AdoptedEdit)
    restarted = PinStore(pin_path)
    got = restarted.read()
    assert isinstance(got.edit, NoChange)
    assert got.pins.agents["orchestrator"].current_serving == CLOUD


def test_edit_made_while_the_watcher_was_stopped_is_adopted_at_start(pin_path: Path) -> None:
    started_store(pin_path)
    write_by_hand(pin_path, pinfile.dumps(pins(orchestrator=agent(LOCAL), coder=agent())))
    got = PinStore(pin_path).read()
    assert isinstance(got.edit, AdoptedEdit)
    assert got.edit.previous is not None
    assert got.edit.previous.agents["orchestrator"].current_serving == PAID
    assert got.pins.agents["orchestrator"].current_serving == LOCAL


def test_pin_file_found_without_any_last_good_is_adopted_with_no_previous(pin_path: Path) -> None:
    write_by_hand(pin_path, pinfile.dumps(pins(orchestrator=agent(PAID))))
    got = PinStore(pin_path).read()
    assert isinstance(got.edit, AdoptedEdit)
    assert got.edit.previous is None


def test_reformatting_without_changing_anything_is_not_an_override(pin_path: Path) -> None:
    store = started_store(pin_path)
    data = json.loads(pin_path.read_text())
    write_by_hand(pin_path, json.dumps(data, indent=8, sort_keys=True))
    assert isinstance(store.read().edit, NoChange)


@pytest.mark.parametrize(
    ("human_text", "reason"),
    [
        ('{"schema_version": 1, "agents": {', "not valid JSON"),
        ('{"schema_version": 1, "agents": {}, "colour": "blue"}', "colour"),
        ('{"schema_version": 2}', "schema_version"),
        (
            json.dumps(
                {
                    "schema_version": 1,
                    "agents": {
                        "orchestrator": {
                            "primary": CLOUD,
                            "current_serving": "openai/gpt-4o",
                            "in_fallback": True,
                            "chain": [CLOUD, PAID, LOCAL],
                        }
                    },
                },
                indent=2,
            ),
            "agents.orchestrator: current_serving 'openai/gpt-4o' is not in the agent's chain",
        ),
        ("\xff\xfe garbage", "not valid"),
    ],
    ids=["bad-json", "unknown-key", "wrong-version", "model-not-in-chain", "binary"],
)
def test_invalid_hand_edit_is_quarantined_and_last_good_pin_restored(
    pin_path: Path, human_text: str, reason: str
) -> None:
    store = started_store(pin_path)
    good = pin_path.read_bytes()
    raw = human_text.encode("latin-1") if human_text.startswith("\xff") else human_text.encode()
    write_by_hand(pin_path, raw)
    got = store.read()
    assert isinstance(got.edit, RejectedEdit)
    assert reason in got.edit.error
    assert got.edit.quarantined_to == pin_path.with_name(
        "fallback-state.json.rejected-20260520T143800Z"
    )
    assert got.edit.quarantined_to.read_bytes() == raw, "the human's text is kept exactly"
    assert pin_path.read_bytes() == good, "the last good state is back"
    assert got.pins == pinfile.loads(good)
    assert isinstance(store.read().edit, NoChange)


def test_model_outside_the_live_chain_is_rejected_even_if_the_file_agrees(
    pin_path: Path,
) -> None:
    live = {"orchestrator": [CLOUD, PAID, LOCAL], "coder": [CLOUD, PAID, LOCAL]}
    store = started_store(pin_path, validator=chains_validator(live))
    sneaky = pinfile.PinFile(
        agents={
            "orchestrator": pinfile.AgentPin(
                primary=CLOUD,
                current_serving="openai/gpt-4o",
                in_fallback=True,
                chain=[CLOUD, "openai/gpt-4o"],
            ),
            "coder": agent(),
        }
    )
    write_by_hand(pin_path, pinfile.dumps(sneaky))
    got = store.read()
    assert isinstance(got.edit, RejectedEdit)
    assert "agents.orchestrator.current_serving: 'openai/gpt-4o' is not in the agent's chain" in (
        got.edit.error
    )
    assert got.pins.agents["orchestrator"].current_serving == PAID


def test_two_rejections_in_the_same_second_keep_both_texts(pin_path: Path) -> None:
    store = started_store(pin_path)
    write_by_hand(pin_path, "first mistake")
    first = store.read().edit
    write_by_hand(pin_path, "second mistake")
    second = store.read().edit
    assert isinstance(first, RejectedEdit) and isinstance(second, RejectedEdit)
    assert first.quarantined_to is not None and second.quarantined_to is not None
    assert first.quarantined_to != second.quarantined_to
    assert first.quarantined_to.read_text() == "first mistake"
    assert second.quarantined_to.read_text() == "second mistake"


def test_invalid_pin_at_start_is_quarantined_and_last_good_restored(pin_path: Path) -> None:
    started_store(pin_path)
    good = pin_path.read_bytes()
    write_by_hand(pin_path, "{oops")
    got = PinStore(pin_path, clock=lambda: NOW).read()
    assert isinstance(got.edit, RejectedEdit)
    assert pin_path.read_bytes() == good


def test_deleted_pin_file_is_restored_from_the_last_good_state(pin_path: Path) -> None:
    store = started_store(pin_path)
    good = pin_path.read_bytes()
    pin_path.unlink()
    got = store.read()
    assert isinstance(got.edit, RejectedEdit)
    assert got.edit.quarantined_to is None
    assert "deleted" in got.edit.error
    assert pin_path.read_bytes() == good


def test_operator_role_sees_a_broken_file_as_an_error_and_never_restores(pin_path: Path) -> None:
    started_store(pin_path)
    write_by_hand(pin_path, "{oops")
    with pytest.raises(PinFileInvalid, match="not valid JSON"):
        PinStore(pin_path, role="operator").read()
    assert pin_path.read_text() == "{oops"


def test_operator_role_write_is_adopted_by_the_running_watcher(pin_path: Path) -> None:
    watcher = started_store(pin_path)
    cli = PinStore(pin_path, role="operator")
    with cli.locked() as txn:
        current = txn.read().pins
        held = current.agents["coder"].model_copy(
            update={
                "current_serving": LOCAL,
                "in_fallback": True,
                "hold": Hold(model=LOCAL, by="bob", note="cli"),
            }
        )
        txn.write(current.model_copy(update={"agents": {**current.agents, "coder": held}}))
    got = watcher.read()
    assert isinstance(got.edit, AdoptedEdit)
    assert got.pins.agents["coder"].hold == Hold(model=LOCAL, by="bob", note="cli")


def test_a_state_that_breaks_the_model_is_never_written(pin_path: Path) -> None:
    store = started_store(pin_path)
    before = pin_path.read_bytes()
    current = store.read().pins
    broken = current.agents["coder"].model_copy(update={"current_serving": "not/in-chain"})
    with pytest.raises(PinFileInvalid), store.locked() as txn:
        txn.read()
        txn.write(current.model_copy(update={"agents": {"coder": broken}}))
    assert pin_path.read_bytes() == before
