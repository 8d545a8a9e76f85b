"""audit.jsonl as a SIEM's event stream: every record a real watcher writes fits the
versioned schema in docs/audit.schema.json, and the README's examples do too."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema

from tests.rigs.file_world import write_file_world
from watcher.audit.log import AUDIT_SCHEMA_VERSION
from watcher.classify.evidence import to_event
from watcher.config import load_settings
from watcher.core.events import AccessRefused, Hold, MuteCards, Release, SetServing
from watcher.core.transitions import TransitionType
from watcher.parse.lines import parse_line
from watcher.shell.watcher import Watcher

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "audit.schema.json").read_text())
PRIMARY, PAID, FREE = "ollama/glm-5.1:cloud", "deepseek/deepseek-v4-flash", "ollama/glm-5:cloud"
HEAD = "[model-fallback/decision] model fallback decision: decision="


def _validator() -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    return jsonschema.Draft202012Validator(SCHEMA)


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_record_a_real_watcher_writes_fits_the_schema(tmp_path: Path) -> None:
    config = write_file_world(tmp_path, {"nexus": [PRIMARY, PAID, FREE]})
    watcher = Watcher.open(load_settings(config))
    fail = (
        f"{HEAD}candidate_failed requested={PRIMARY} candidate={PRIMARY} reason=rate_limit "
        f"next={PAID} detail=429 rate_limit_exceeded"
    )
    ok = f"{HEAD}candidate_succeeded requested={PAID} candidate={PAID} reason=unknown next=none"
    events = [to_event(parse_line(line)) for line in (fail, ok)]
    watcher.apply([e for e in events if e is not None])
    watcher.apply([Hold("nexus", FREE, note="provider maintenance", actor="telegram:777001")])
    watcher.apply([Hold("nexus", "openai/not-in-the-chain", actor="cli:root")])  # refused
    watcher.apply([Release("nexus", actor="cli:root")])
    watcher.apply([MuteCards("FALLBACK_FIRED|nexus|-|-|-", until=2e9, actor="telegram:777001")])
    watcher.apply([AccessRefused("telegram:666013", "hold", "not allowlisted", chat="-1001")])
    watcher.apply([SetServing("nexus", PRIMARY, actor="cli:root")])
    (tmp_path / "openclaw.json").write_text(
        json.dumps({"agents": {"entries": {"nexus": {"model": {"primary": PRIMARY,
                                                                "fallbacks": [FREE]}}}}})
    )
    watcher.chain_source.poll()
    watcher.apply([watcher.chains_changed()])
    watcher.intake.outbox.close()
    audit = tmp_path / "state" / "audit.jsonl"
    with audit.open("a") as log:
        log.write('{"seq": 99, "type": "FALLBACK_FI')  # a crash mid-append
    again = Watcher.open(load_settings(config))  # drops the torn line, records it
    again.intake.outbox.close()
    audit.write_text(audit.read_text().replace('"nexus"', '"nexu5"', 1))  # tampering
    third = Watcher.open(load_settings(config))  # sets the log aside, starts a new chain
    third.intake.outbox.close()

    validator = _validator()
    records = [r for p in sorted(audit.parent.glob("audit.jsonl*")) if not p.name.endswith(".head")
               for r in _records(p)]
    for record in records:
        errors = sorted(validator.iter_errors(record), key=str)
        assert not errors, (record["type"], [e.message for e in errors])
    seen = {r["type"] for r in records}
    for wanted in ("FALLBACK_FIRED", "THROTTLE_COOLDOWN", "CHAIN_LINT",
                   "OPERATOR_OVERRIDE", "OPERATOR_REFUSED", "CARDS_MUTED", "ACCESS_REFUSED",
                   "CHAINS_CHANGED", "AUDIT_TAIL_REPAIRED", "AUDIT_CHAIN_RESTARTED"):
        assert wanted in seen, (wanted, sorted(seen))


def test_the_schema_rejects_a_record_that_breaks_the_contract() -> None:
    validator = _validator()
    good = {"seq": 1, "ts": "2026-12-02T04:50:09Z", "type": "CARDS_MUTED", "prev": "0" * 64,
            "hash": "a" * 64, "data": {"cause": "operator", "actor": "cli:root",
                                       "evidence": None, "policy_version": "2026.12.1",
                                       "key": "k", "until": "2026-12-02T05:50:09Z"}}
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "seq": "1"})
    assert not validator.is_valid({**good, "type": "SOMETHING_NEW"})
    assert not validator.is_valid({**good, "data": {**good["data"], "key": None}})


def test_the_schema_names_every_transition_type_and_its_version_is_the_code_s() -> None:
    assert SCHEMA["version"] == AUDIT_SCHEMA_VERSION
    assert {t.value for t in TransitionType} <= set(SCHEMA["properties"]["type"]["enum"])


def test_the_readme_documents_the_contract_with_an_example_per_type_that_validates() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"AUDIT_SCHEMA_VERSION {AUDIT_SCHEMA_VERSION}" in readme
    section = readme.split("### Audit record schema", 1)[1].split("\n## ", 1)[0]
    examples = [json.loads(line) for line in re.findall(r"^(\{\"data\".*\})$", section, re.M)]
    validator = _validator()
    for record in examples:
        assert validator.is_valid(record), record["type"]
    documented = {r["type"] for r in examples}
    special = set(SCHEMA["$defs"]) - {"transition"}
    assert special <= documented, special - documented
    assert "FALLBACK_FIRED" in documented  # the transition shape, by its commonest type
