"""The JSON Schema and example shipped in state/ match the pin-file model."""

from __future__ import annotations

import json
import subprocess

import jsonschema
import pytest

from tests.pinstore.conftest import PYTHON, ROOT
from watcher.pins import schema as pinfile

SCHEMA = ROOT / "state" / "fallback-state.schema.json"
EXAMPLE = ROOT / "state" / "fallback-state.example.json"


def test_committed_schema_and_example_match_what_the_model_generates() -> None:
    check = subprocess.run(
        [PYTHON, str(ROOT / "scripts" / "gen-state-files"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert json.loads(SCHEMA.read_text()) == pinfile.json_schema()


def test_example_is_valid_canonical_and_tells_the_three_stories() -> None:
    text = EXAMPLE.read_text()
    pins = pinfile.loads(text)
    assert pinfile.dumps(pins) == text, "the example is in the watcher's own key order"
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(json.loads(text))
    agents = pins.agents
    assert len(agents) == 3
    assert any(a.in_fallback and a.transient_throttle_until for a in agents.values())
    assert any(a.hold is not None for a in agents.values())
    assert any(not a.in_fallback for a in agents.values())
    assert any(m.cooldown_until for m in pins.models.values())


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(extra=1),
        lambda d: d["agents"]["research"].pop("current_serving"),
        lambda d: d["agents"]["research"].update(in_fallback=[True]),
        lambda d: d["agents"]["research"].update(in_fallback="no"),
        lambda d: d["models"]["openai/gpt-5.5"].update(cooldown_level="2"),
        lambda d: d["models"]["openai/gpt-5.5"].update(state="sleepy"),
    ],
    ids=[
        "unknown-key",
        "missing-field",
        "wrong-type",
        "string-for-bool",
        "string-for-int",
        "unknown-health-state",
    ],
)
def test_shipped_schema_rejects_what_the_model_rejects(mutate: object) -> None:
    data = json.loads(EXAMPLE.read_text())
    mutate(data)  # type: ignore[operator]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(data)
    with pytest.raises(ValueError):
        pinfile.loads(json.dumps(data))
