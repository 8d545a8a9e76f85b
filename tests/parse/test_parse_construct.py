"""The generated record constructors give the object the dataclass's own ``__init__``
gives, and refuse the classes they cannot stand in for."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import pytest

from tests.parse.vectors import load_vectors
from watcher.classify import evidence
from watcher.classify.evidence import to_event
from watcher.core.events import TrafficEvidence
from watcher.parse import lines
from watcher.parse._construct import constructor
from watcher.parse.lines import parse_line
from watcher.parse.records import Decision, FallbackDecision

new_decision = constructor(FallbackDecision)


def same(a: object, b: object) -> bool:
    names = [f.name for f in fields(a)]  # type: ignore[arg-type]
    return (
        type(a) is type(b) and a == b and hash(a) == hash(b) and repr(a) == repr(b)
        and all(getattr(a, n) is getattr(b, n) or getattr(a, n) == getattr(b, n) for n in names)
    )


def _parsed(line: str) -> tuple[object, object]:
    lines._body_fields.cache_clear()  # the full parse, not the memo's
    record = parse_line(line, ts=1_790_000_000.25)
    return record, to_event(record, position="p", catch_up=True)


@pytest.mark.parametrize("vector", load_vectors(), ids=lambda v: v.id)
def test_every_parsed_record_and_event_is_what_init_makes(
    vector: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = vector.line  # type: ignore[attr-defined]
    fast = [_parsed(line), _parsed(line)]  # the full parse, then the memo's
    monkeypatch.setattr(lines, "_new_decision", FallbackDecision)
    monkeypatch.setattr(evidence, "_new_traffic", TrafficEvidence)
    slow = _parsed(line)
    for record, event in fast:
        if isinstance(slow[0], FallbackDecision):
            assert same(record, slow[0])
            assert same(event, slow[1])
            assert same(record, replace(record))  # ``replace`` goes through ``__init__``
        else:
            assert record == slow[0]


def test_positional_keyword_and_default_arguments_as_init_takes_them() -> None:
    args = (Decision.CANDIDATE_FAILED, "a/b", "a/b", "rate_limit", None)
    assert same(new_decision(*args), FallbackDecision(*args))
    more = {"detail": "x", "ts": 2.0}
    assert same(new_decision(*args, **more), FallbackDecision(*args, **more))
    with pytest.raises(TypeError):
        new_decision(*args[:3])  # a required field missing
    with pytest.raises(TypeError):
        new_decision(*args, colour="red")  # no such field


def test_it_refuses_what_it_cannot_stand_in_for() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = field(default_factory=list)

    @dataclass(frozen=True, slots=True)
    class NotScalarDefault:  # only plain scalars are taken as surely immutable
        a: tuple[int, ...] = ()

    for cls in (NoSlots, PostInit, Factory, NotScalarDefault, int):
        with pytest.raises(TypeError):
            constructor(cls)
