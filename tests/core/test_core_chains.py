"""The chain reader: every accepted shape of openclaw.json, inheritance, JSON5, all
problems at once, and a ChainSource that keeps the last good chains."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from watcher.gateway.chains import (
    DEFAULT_AGENT_ID,
    ChainSource,
    GatewayConfigError,
    parse_gateway_config,
)

DEFAULTS = '"defaults": {"model": {"primary": "ollama/kimi-k2.5:cloud", "fallbacks": ["deepseek/deepseek-v4-flash", "ollama/qwen3:8b"]}}'  # noqa: E501
DEFAULT_CHAIN = ("ollama/kimi-k2.5:cloud", "deepseek/deepseek-v4-flash", "ollama/qwen3:8b")


def test_entries_accept_a_string_or_primary_and_fallbacks() -> None:
    config = parse_gateway_config(
        """{"agents": {"entries": {
            "coder": {"model": {"primary": "openai/gpt-5.5",
                                "fallbacks": ["anthropic/claude-4", "ollama/qwen3:8b"]}},
            "vision": {"model": "google/gemini-3"}
        }}}"""
    )
    assert config.chains == {
        "coder": ("openai/gpt-5.5", "anthropic/claude-4", "ollama/qwen3:8b"),
        "vision": ("google/gemini-3",),
    }
    assert config.default_chain is None


def test_a_string_model_inherits_the_default_fallbacks_and_a_missing_model_the_chain() -> None:
    config = parse_gateway_config(
        "{agents: {"
        + DEFAULTS
        + """,
           entries: {
             research: {model: "openrouter/openrouter/owl-alpha"},
             orchestrator: {},
             coder: {model: {primary: "openai/gpt-5.5", fallbacks: []}},
           }}}"""
    )
    assert config.chains["research"] == ("openrouter/openrouter/owl-alpha", *DEFAULT_CHAIN[1:])
    assert config.chains["orchestrator"] == DEFAULT_CHAIN
    assert config.chains["coder"] == ("openai/gpt-5.5",)  # fallbacks given: they replace
    assert config.default_chain == DEFAULT_CHAIN
    assert config.agents_using("ollama/qwen3:8b") == ["orchestrator", "research"]


def test_defaults_alone_watch_the_main_agent() -> None:
    config = parse_gateway_config('{"agents": {' + DEFAULTS + "}}")
    assert config.chains == {DEFAULT_AGENT_ID: DEFAULT_CHAIN}


def test_legacy_list_is_read_and_entries_win_over_it() -> None:
    config = parse_gateway_config(
        """{"agents": {
            "list": [
              {"id": "ops", "model": "openai/gpt-5.5", "fallbacks": ["ollama/qwen3:8b"]},
              {"id": "coder", "model": "openai/gpt-5.3-codex"}
            ],
            "entries": {"coder": {"model": "anthropic/claude-4"}}
        }}"""
    )
    assert config.chains == {
        "ops": ("openai/gpt-5.5", "ollama/qwen3:8b"),
        "coder": ("anthropic/claude-4",),
    }


def test_json5_comments_trailing_commas_and_duplicates() -> None:
    config = parse_gateway_config(
        """// the gateway's config
        {
          /* agents */
          agents: {
            entries: {
              ops: {model: {primary: "a/x", fallbacks: ["b/y", "a/x", "b/y",],},},
            },
          },
          models: {providers: {ollama: {baseUrl: "http://127.0.0.1:11434", api: "ollama",
                                        apiKey: "sk-secret", models: [{id: "qwen3:8b"}],},},},
        }"""
    )
    assert config.chains == {"ops": ("a/x", "b/y")}
    provider = config.providers["ollama"]
    assert (provider.base_url, provider.api, provider.models) == (
        "http://127.0.0.1:11434",
        "ollama",
        ("qwen3:8b",),
    )
    assert provider.api_key == "sk-secret"
    assert "sk-secret" not in repr(provider)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(GatewayConfigError) as err:
        parse_gateway_config(
            """{"agents": {"entries": {
                "a": {"model": "no-slash"},
                "b": {"model": {"primary": "ok/model", "fallbacks": ["bad", 7]}},
                "c": {"model": 42},
                "d": "not an object",
                "e": {}
            }}}"""
        )
    problems = err.value.problems
    assert len(problems) == 6, problems
    joined = "; ".join(problems)
    assert "agent 'a' model: 'no-slash' is not a provider/model ref" in joined
    assert "fallbacks[0]: 'bad'" in joined and "fallbacks[1]: 7" in joined
    assert "agent 'c' model must be" in joined
    assert "agents.entries.d must be an object" in joined
    assert "agent 'e' has no model and there is no agents.defaults.model" in joined
    assert str(err.value) == joined


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON5"),
        ("[1, 2]", "top level must be an object"),
        ('{"agents": [1]}', "agents must be an object"),
        ("{}", "nothing to watch"),
        ('{"agents": {"list": {}}}', "agents.list must be a list"),
        ('{"agents": {"list": [{"model": "a/b"}]}}', "agents.list[0] needs a string id"),
    ],
)
def test_unusable_configs_say_why(text: str, message: str) -> None:
    with pytest.raises(GatewayConfigError, match=message.replace("[", r"\[")):
        parse_gateway_config(text)


def _write(path: Path, text: str, bump: int) -> None:
    path.write_text(text, encoding="utf-8")
    stamp = 1_700_000_000 + bump
    os.utime(path, (stamp, stamp))  # a distinct mtime even within one clock tick


def test_chain_source_reloads_on_change_and_keeps_the_last_good_chains(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    _write(path, '{"agents": {"entries": {"ops": {"model": "a/x"}}}}', 0)
    source = ChainSource(path)
    assert source.poll() == (source.config, None)
    assert source.config.chains == {"ops": ("a/x",)}

    _write(
        path,
        '{"agents": {"entries": {"ops": {"model": {"primary": "a/x", "fallbacks": ["b/y"]}}}}}',
        1,
    )
    config, error = source.poll()
    assert error is None and config.chains == {"ops": ("a/x", "b/y")}

    _write(path, '{"agents": {"entries": {"ops": {"model": 7', 2)
    config, error = source.poll()
    assert isinstance(error, GatewayConfigError) and "not valid JSON5" in str(error)
    assert config.chains == {"ops": ("a/x", "b/y")}
    assert source.poll() == (config, None)  # the same broken file is reported once

    path.unlink()
    config, error = source.poll()
    assert error is not None and "cannot read" in str(error)
    assert config.chains == {"ops": ("a/x", "b/y")}

    _write(path, '{"agents": {"entries": {"ops": {"model": "c/z"}}}}', 3)
    config, error = source.poll()
    assert error is None and config.chains == {"ops": ("c/z",)}


def test_chain_source_refuses_to_start_on_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    path.write_text("{", encoding="utf-8")
    with pytest.raises(GatewayConfigError):
        ChainSource(path)
    with pytest.raises(GatewayConfigError, match="cannot read"):
        ChainSource(tmp_path / "missing.json")
