"""Provider settings for probing: openclaw.json merged with the watcher's overrides."""

from __future__ import annotations

import pytest

from watcher.gateway.chains import parse_gateway_config
from watcher.probe.providers import (
    OLLAMA_DEFAULT_BASE_URL,
    CredentialError,
    CredentialRef,
    ProviderConfig,
    ProviderConfigError,
    ProviderDirectory,
    parse_provider_configs,
)

GATEWAY = {
    "ollama": {"baseUrl": "http://127.0.0.1:11434/v1", "api": "ollama", "apiKey": "ollama-local"},
    "openai": {"baseUrl": "https://api.openai.com/v1/", "api": "openai-completions",
               "apiKey": "${OPENAI_API_KEY}"},
    "direct": {"baseUrl": "https://direct.example/v1", "api": "openai-responses",
               "apiKey": "sk-inline-7d1e"},
}


def test_gateway_providers_resolve_with_ollama_at_its_native_root():
    d = ProviderDirectory.build(gateway_providers=GATEWAY)
    ollama = d.get("ollama")
    assert ollama is not None and ollama.base_url == "http://127.0.0.1:11434"
    openai = d.for_model("openai/gpt-5.5")
    assert openai is not None
    assert (openai.api, openai.base_url) == ("openai-completions", "https://api.openai.com/v1")
    assert openai.credential == CredentialRef(kind="env", name="OPENAI_API_KEY")
    assert (openai.slots, openai.daily_probe_budget, openai.paid) == (1, 500, False)


def test_inline_gateway_api_key_is_kept_secret():
    direct = ProviderDirectory.build(gateway_providers=GATEWAY).get("direct")
    assert direct is not None and direct.credential is not None
    assert "sk-inline-7d1e" not in repr(direct)
    assert "sk-inline-7d1e" not in direct.credential.describe()
    assert direct.credential.resolve({}).get_secret_value() == "sk-inline-7d1e"


def test_watcher_override_wins_field_by_field():
    overrides = parse_provider_configs(
        {"openai": {"paid": True, "credential": "cred:openai-key", "slots": 2,
                    "daily_probe_budget": 50}}
    )
    openai = ProviderDirectory.build(overrides, GATEWAY).get("openai")
    assert openai is not None
    assert openai.paid and openai.slots == 2 and openai.daily_probe_budget == 50
    assert openai.base_url == "https://api.openai.com/v1"  # still from openclaw.json
    assert openai.credential == CredentialRef(kind="cred", name="openai-key")


def test_chain_reader_endpoints_are_accepted_as_gateway_providers():
    gateway = parse_gateway_config(
        '{agents: {defaults: {model: "cloud/m"}}, models: {providers: {cloud: '
        '{baseUrl: "http://127.0.0.1:9/v1", api: "openai-completions", apiKey: "k-1"}}}}'
    )
    cloud = ProviderDirectory.build(gateway_providers=gateway.providers).get("cloud")
    assert cloud is not None and cloud.base_url == "http://127.0.0.1:9/v1"
    assert cloud.credential is not None and cloud.credential.kind == "inline"


def test_unconfigured_ollama_defaults_to_the_local_daemon_and_others_are_unknown():
    d = ProviderDirectory.build()
    ollama = d.for_model("ollama/kimi-k2.5:cloud")
    assert ollama is not None and ollama.base_url == OLLAMA_DEFAULT_BASE_URL
    assert d.for_model("openai/gpt-5.5") is None
    assert d.for_model("not-a-ref") is None


def test_every_provider_problem_is_reported_at_once():
    with pytest.raises(ProviderConfigError) as err:
        ProviderDirectory.build(
            gateway_providers={
                "a": {"baseUrl": "http://x"},  # no api
                "b": {"api": "anthropic-messages", "baseUrl": "http://x"},
                "c": {"api": "openai-completions"},  # no base
            }
        )
    text = str(err.value)
    assert "'a': no api" in text and "'b': api 'anthropic-messages'" in text
    assert "'c': no base URL" in text


def test_bad_watcher_settings_are_reported_with_their_path():
    with pytest.raises(ProviderConfigError) as err:
        parse_provider_configs(
            {"openai": {"slots": 0, "credential": "sk-live-inline", "colour": "red"},
             "other": {"credential": {"kind": "inline", "value": "sk-live-inline"}},
             "x": "nope"}
        )
    problems = err.value.problems
    assert any(p.startswith("providers.openai.slots") for p in problems)
    assert any("providers.openai.credential" in p and "inline secrets" in p for p in problems)
    assert any(p.startswith("providers.openai.colour") for p in problems)
    assert any(p.startswith("providers.other.credential") for p in problems)
    assert "providers.x must be a table" in problems
    assert all("sk-live-inline" not in p for p in problems)


def test_systemd_credential_file_is_read_at_resolve_time(tmp_path):
    ref = ProviderConfig(credential="cred:openai").credential  # type: ignore[arg-type]
    assert ref is not None
    (tmp_path / "openai").write_text("sk-from-file\n")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert ref.resolve(env).get_secret_value() == "sk-from-file"
    (tmp_path / "openai").write_text("sk-rotated\n")
    assert ref.resolve(env).get_secret_value() == "sk-rotated"


def test_missing_credentials_say_where_to_look_and_never_what():
    with pytest.raises(CredentialError, match=r"env:KEY: variable is not set"):
        CredentialRef.parse("env:KEY").resolve({})
    with pytest.raises(CredentialError, match="LoadCredential"):
        CredentialRef.parse("cred:key").resolve({})
    with pytest.raises(ValueError, match="plain file name"):
        CredentialRef.parse("cred:../etc/shadow")
