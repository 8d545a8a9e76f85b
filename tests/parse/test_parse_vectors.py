"""The sample vectors are the specification of the parser and the taxonomy.

One generated test per sample line; plus the guards that keep the taxonomy honest:
every signature has a positive sample, no sample is claimed by two classes in the tier
that decides it, and the vectors cover every decision and every reason.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from tests.parse.vectors import Vector, load_vectors
from watcher.classify.taxonomy import (
    SIGNATURES,
    TIERS,
    Classification,
    Evidence,
    classify,
    classify_outcome,
    evidence_of,
    matching_signatures,
    outcome_evidence,
)
from watcher.parse.lines import parse_any
from watcher.parse.records import (
    KNOWN_REASONS,
    ChainStopped,
    Decision,
    FallbackDecision,
    LaneHint,
    PluginState,
    RunOutcome,
    Unparsed,
)

VECTORS = load_vectors()
_KIND = {
    FallbackDecision: "decision",
    ChainStopped: "chain_stopped",
    LaneHint: "lane",
    RunOutcome: "run_outcome",
    PluginState: "plugin_state",
}


def _evaluate(v: Vector) -> tuple[Any, Classification | None, Evidence]:
    """Run the production code on one vector: (record, classification, evidence)."""
    exp = v.expect
    if exp["kind"] == "outcome":
        text = v.line if isinstance(v.line, str) else v.line.decode("utf-8", "replace")
        reason, status = exp.get("given_reason"), exp.get("given_status")
        return None, classify_outcome(reason, status, text), outcome_evidence(reason, status, text)
    record = parse_any(v.line, ts=exp.get("ts_arg"))
    if isinstance(record, FallbackDecision | ChainStopped):
        return record, classify(record), evidence_of(record)
    return record, None, ("", None, None, "")


def _kind(record: object) -> str:
    if record is None:
        return "none"
    if isinstance(record, Unparsed):
        return "unparsed"
    return _KIND[type(record)]


@pytest.mark.parametrize("vector", VECTORS, ids=[v.id for v in VECTORS])
def test_sample_line_parses_and_classifies_as_annotated(vector: Vector) -> None:
    exp = vector.expect
    record, c, evidence = _evaluate(vector)
    if exp["kind"] != "outcome":
        assert _kind(record) == exp["kind"], f"{vector.id}: got {record!r}"
    if isinstance(record, FallbackDecision):
        checks = {
            "decision": record.decision.value,
            "requested": str(record.requested),
            "candidate": str(record.candidate),
            "provider": record.candidate.provider,
            "model": record.candidate.model,
            "reason": record.reason,
            "next": str(record.next) if record.next else "none",
            "provider_error_type": record.provider_error_type,
            "detail": record.detail,
            "suppressed": record.suppressed_duplicates,
            "http_code": record.http_code,
            "session_id": record.session_id,
            "run_id": record.run_id,
            "lane": record.lane,
            "final_outcome": record.final_outcome,
        }
    elif isinstance(record, ChainStopped):
        checks = {
            "reason": record.reason,
            "candidate": str(record.candidate),
            "error_name": record.error_name,
        }
    elif isinstance(record, LaneHint):
        checks = {
            "agent": record.agent_id,
            "lane": record.lane,
            "error": record.error,
            "error_name": record.error_name,
        }
    elif isinstance(record, RunOutcome):
        checks = {
            "agent": record.agent_id,
            "run": record.run_id,
            "ok": record.ok,
            "model": str(record.model) if record.model else None,
            "primary": str(record.primary) if record.primary else None,
            "pinned": str(record.pinned) if record.pinned else None,
            "attempts": [
                [str(a.model), a.ok, a.primary, a.overridden, a.status] for a in record.attempts
            ],
        }
    elif isinstance(record, PluginState):
        checks = {"steering": record.steering, "state_kind": record.kind}
        if "why" in exp:
            assert exp["why"] in record.why, f"{vector.id}: why {record.why!r}"
            exp = {k: v for k, v in exp.items() if k != "why"}
    else:
        checks = {}
    for key, actual in checks.items():
        if key in exp:
            assert actual == exp[key], f"{vector.id}: {key} is {actual!r}, expected {exp[key]!r}"
    if "ts" in exp:
        actual_ts = getattr(record, "ts", None)
        if exp["ts"] is None:
            assert actual_ts is None, f"{vector.id}: ts {actual_ts!r}"
        else:
            assert actual_ts == pytest.approx(exp["ts"], abs=1e-3), f"{vector.id}: ts {actual_ts!r}"
    if "why" in exp:
        assert isinstance(record, Unparsed) and exp["why"] in record.why, f"{vector.id}: {record!r}"
    if c is not None:
        if "class" in exp:
            got = c.failure_class.value if c.failure_class is not None else None
            assert got == exp["class"], f"{vector.id}: class {got!r} via {c.signature}"
        if "signature" in exp:
            assert c.signature == exp["signature"], f"{vector.id}: decided by {c.signature}"
        if "status" in exp:
            assert c.http_status == exp["status"], f"{vector.id}: status {c.http_status!r}"
        if "retry_after" in exp:
            assert c.retry_after_s == exp["retry_after"], f"{vector.id}: {c.retry_after_s!r}"
        claimed = {s.id for s in matching_signatures(*evidence)}
        for sig in exp.get("not_signatures", []):
            assert sig in {s.id for s in SIGNATURES}, f"{vector.id}: no signature {sig!r}"
            assert sig not in claimed, f"{vector.id}: {sig} claims this near miss"
    else:
        assert "class" not in exp and "signature" not in exp, f"{vector.id}: nothing classified"


def test_every_signature_has_a_positive_sample() -> None:
    decided = {v.expect["signature"] for v in VECTORS if "signature" in v.expect}
    missing = [s.id for s in SIGNATURES if s.id not in decided]
    assert not missing, f"signatures without a positive sample in tests/vectors: {missing}"


def test_every_text_signature_has_a_near_miss_sample() -> None:
    near = {sig for v in VECTORS for sig in v.expect.get("not_signatures", [])}
    pattern_tiers = {"local", "specific", "text"}
    missing = [
        s.id
        for s in SIGNATURES
        if s.pattern is not None and s.tier in pattern_tiers and s.id not in near
    ]
    assert not missing, f"text signatures without a negative (near-miss) sample: {missing}"


def test_no_sample_is_claimed_by_two_classes_in_the_tier_that_decides_it() -> None:
    conflicts = []
    for v in VECTORS:
        _, c, evidence = _evaluate(v)
        if c is None:
            continue
        by_tier: dict[str, set[object]] = defaultdict(set)
        ids: dict[str, list[str]] = defaultdict(list)
        for sig in matching_signatures(*evidence):
            by_tier[sig.tier].add(sig.failure_class)
            ids[sig.tier].append(sig.id)
        deciding = next(t for t in TIERS if by_tier.get(t))
        if len(by_tier[deciding]) > 1:
            conflicts.append(f"{v.id}: {ids[deciding]}")
    assert not conflicts, "lines claimed by signatures of different classes:\n" + "\n".join(
        conflicts
    )


def test_signature_ids_are_unique_and_tiers_known() -> None:
    ids = [s.id for s in SIGNATURES]
    assert len(ids) == len(set(ids))
    assert {s.tier for s in SIGNATURES} <= set(TIERS)


def test_vectors_cover_every_decision_and_every_reason() -> None:
    records = [parse_any(v.line) for v in VECTORS if v.expect["kind"] == "decision"]
    decisions = {r.decision for r in records if isinstance(r, FallbackDecision)}
    reasons = {r.reason for r in records if isinstance(r, FallbackDecision)}
    assert decisions == set(Decision)
    assert reasons >= KNOWN_REASONS, f"reasons without a sample: {KNOWN_REASONS - reasons}"


def test_vectors_include_negative_and_unparsed_samples() -> None:
    kinds = [v.expect["kind"] for v in VECTORS]
    assert kinds.count("none") >= 5
    assert kinds.count("unparsed") >= 5
