"""Cutting a paid provider out of openclaw.json and putting back exactly what was cut."""

from __future__ import annotations

import json

import json5
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.breaker.conftest import GATEWAY_JSON, GATEWAY_JSON5
from watcher.breaker.cut import Cut, CutError, cut_provider, restore_cuts
from watcher.breaker.document import ModelDocument, PlainDocument
from watcher.gateway.chains import parse_gateway_config


def test_trip_removes_the_provider_from_every_chain_and_promotes_paid_primaries() -> None:
    edited, cut = cut_provider(GATEWAY_JSON, "openai")
    chains = parse_gateway_config(edited.text).chains
    assert dict(chains) == {
        "main": ("ollama/qwen3:8b",),  # string primary on openai, promoted from defaults
        "ops": ("ollama/qwen3-coder:480b-cloud", "openrouter/openrouter/owl-alpha",
                "ollama/qwen3:8b"),
        "local": ("ollama/qwen3:8b",),  # inherited openai/gpt-5.2 gone with the defaults
        "bare": ("ollama/kimi-k2.5:cloud", "ollama/qwen3:8b"),  # runs on the defaults
        "legacy": ("ollama/qwen3:8b",),  # legacy list entry, promoted from its own list
    }
    assert cut.affected == ("bare", "legacy", "local", "main", "ops")
    assert cut.uncut == ()
    assert {(r.owner, r.position, r.ref) for r in cut.removals} == {
        ("defaults", 0, "openai/gpt-5.2"),
        ("ops", 0, "openai/gpt-5.5"),
    }
    assert {(p.owner, p.from_ref, p.to_ref, p.position) for p in cut.promotions} == {
        ("main", "openai/gpt-5.5", "ollama/qwen3:8b", None),
        ("legacy", "openai/gpt-5.3-codex", "ollama/qwen3:8b", 0),
    }


def test_trip_changes_only_the_chain_nodes_byte_for_byte() -> None:
    edited, _ = cut_provider(GATEWAY_JSON, "openai")
    expected = (
        GATEWAY_JSON
        .replace('"fallbacks": [\n          "openai/gpt-5.2",\n          "ollama/qwen3:8b"\n',
                 '"fallbacks": [\n          "ollama/qwen3:8b"\n', 1)
        .replace('"model": "openai/gpt-5.5"', '"model": "ollama/qwen3:8b"', 1)
        .replace('"fallbacks": [\n            "openai/gpt-5.5",\n            "openrouter',
                 '"fallbacks": [\n            "openrouter', 1)
        .replace('"model": "openai/gpt-5.3-codex",\n        "fallbacks": [\n'
                 '          "ollama/qwen3:8b"\n        ]',
                 '"model": "ollama/qwen3:8b",\n        "fallbacks": []', 1)
    )
    assert edited.text == expected
    assert edited.preserves_comments


@pytest.mark.parametrize("provider", ["openai", "openrouter", "ollama", "absent"])
def test_trip_then_reset_gives_back_the_gateway_file_byte_for_byte(provider: str) -> None:
    edited, cut = cut_provider(GATEWAY_JSON, provider)
    saved = Cut.from_json(json.loads(json.dumps(cut.to_json())))  # through the ledger's JSON
    back, [restore] = restore_cuts(edited.text, [saved])
    assert back.text == GATEWAY_JSON
    assert restore.left_alone == {}


def test_comments_survive_a_trip_and_the_reset_restores_them_exactly() -> None:
    edited, cut = cut_provider(GATEWAY_JSON5, "openai")
    assert edited.preserves_comments
    assert "// openclaw.json: hand-edited, keep the comments" in edited.text
    assert "/* always there */" in edited.text
    assert "// local last resort" in edited.text
    assert "// the orchestrator" in edited.text
    # The comment on the removed entry's line leaves with it.
    assert "paid: only when kimi is down" not in edited.text
    assert parse_gateway_config(edited.text).chains["ops"] == (
        "ollama/qwen3-coder:480b-cloud", "ollama/qwen3:8b")
    back, _ = restore_cuts(edited.text, [cut])
    assert back.text == GATEWAY_JSON5


def test_an_agent_with_nothing_but_the_paid_provider_keeps_its_chain_and_is_reported() -> None:
    text = json.dumps({"agents": {"entries": {
        "solo": {"model": {"primary": "openai/gpt-5.5", "fallbacks": ["openai/gpt-5.2"]}},
        "ok": {"model": {"primary": "ollama/a", "fallbacks": ["openai/gpt-5.2", "ollama/b"]}},
    }}}, indent=2)
    edited, cut = cut_provider(text, "openai")
    chains = parse_gateway_config(edited.text).chains
    assert chains["solo"] == ("openai/gpt-5.5",)  # never an empty chain
    assert chains["ok"] == ("ollama/a", "ollama/b")
    assert cut.uncut == ("solo",)
    back, _ = restore_cuts(edited.text, [cut])
    assert back.text == text


def test_an_operator_change_before_the_reset_leaves_that_agent_alone() -> None:
    edited, cut = cut_provider(GATEWAY_JSON, "openai")
    # Mid-day the operator gives ops a new chain by hand.
    changed = edited.text.replace('"openrouter/openrouter/owl-alpha",\n', "", 1)
    back, [restore] = restore_cuts(changed, [cut])
    assert set(restore.left_alone) == {"ops"}
    assert "ops" not in restore.restored
    chains = parse_gateway_config(back.text).chains
    assert chains["ops"] == ("ollama/qwen3-coder:480b-cloud", "ollama/qwen3:8b")  # theirs
    assert chains["main"] == ("openai/gpt-5.5", "openai/gpt-5.2", "ollama/qwen3:8b")  # ours


def test_a_chain_the_operator_already_restored_is_not_touched_again() -> None:
    edited, cut = cut_provider(GATEWAY_JSON, "openai")
    main_edit = next(e for e in cut.edits if e.owner == "main")
    by_hand = edited.text.replace('"model": "ollama/qwen3:8b"\n      },\n      "ops"',
                                  '"model": "openai/gpt-5.5"\n      },\n      "ops"', 1)
    assert by_hand != edited.text and main_edit.before == "openai/gpt-5.5"
    back, [restore] = restore_cuts(by_hand, [cut])
    assert restore.already == ("main",)
    assert back.text == GATEWAY_JSON


def test_two_providers_cut_the_same_day_are_restored_exactly() -> None:
    first, cut_a = cut_provider(GATEWAY_JSON, "openai")
    second, cut_b = cut_provider(first.text, "openrouter")
    back, restores = restore_cuts(second.text, [cut_a, cut_b])
    assert back.text == GATEWAY_JSON
    assert [r.provider for r in restores] == ["openai", "openrouter"]


def test_an_invalid_config_is_never_cut() -> None:
    with pytest.raises(CutError, match="not valid now"):
        cut_provider('{"agents": {"entries": {"x": {"model": 42}}}}', "openai")
    with pytest.raises(CutError, match="not valid"):
        cut_provider('{"agents": ', "openai")


refs = st.sampled_from(["openai/a", "openai/b", "ollama/x", "ollama/y", "groq/z", "or/o/m"])


@given(
    primary=refs,
    fallbacks=st.lists(refs, max_size=5),
    default_fallbacks=st.lists(refs, max_size=4),
    form=st.sampled_from(["string", "object", "object-no-fallbacks"]),
    provider=st.sampled_from(["openai", "ollama", "groq"]),
)
def test_any_chain_is_cut_to_the_old_chain_minus_the_provider_and_restored_exactly(
    primary: str, fallbacks: list[str], default_fallbacks: list[str], form: str, provider: str
) -> None:
    model: object = {"string": primary, "object": {"primary": primary, "fallbacks": fallbacks},
                     "object-no-fallbacks": {"primary": primary}}[form]
    text = json.dumps({"agents": {
        "defaults": {"model": {"primary": "local/base", "fallbacks": default_fallbacks}},
        "entries": {"a": {"model": model}, "b": {}},
    }}, indent=2) + "\n"
    before = parse_gateway_config(text).chains
    edited, cut = cut_provider(text, provider)
    after = parse_gateway_config(edited.text).chains
    for agent, chain in before.items():
        want = tuple(r for r in chain if not r.startswith(provider + "/"))
        assert after[agent] == (want or after[agent]) and after[agent]
    back, _ = restore_cuts(edited.text, [cut])
    assert back.text == text


def test_the_plain_fallback_document_writes_plain_json() -> None:
    doc = PlainDocument(GATEWAY_JSON5)
    assert not doc.preserves_comments
    doc.remove_items(("agents", "defaults", "model", "fallbacks"), [0])
    assert json5.loads(doc.render())["agents"]["defaults"]["model"]["fallbacks"] == [
        "ollama/qwen3:8b"]
    assert ModelDocument(GATEWAY_JSON5).render() == GATEWAY_JSON5
