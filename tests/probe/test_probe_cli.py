"""``failover-watcher probe MODEL`` against a fake on its own thread."""

from __future__ import annotations

import argparse
import json
import logging

import pytest

from watcher.cli import probe as probe_cli
from watcher.fakes.models import FakeModelServer, Reply, closed_port


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="failover-watcher")
    probe_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["probe", *argv])
    code: int = args.func(args)
    return code


@pytest.fixture
def fake(threaded_models: FakeModelServer) -> FakeModelServer:
    return threaded_models


def test_probe_of_a_healthy_model_prints_ok_and_exits_0(fake, capsys):
    code = run_cli("ollama/kimi-k2.5:cloud", "--base-url", fake.base_url(), "--api", "ollama")
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("ollama/kimi-k2.5:cloud: ok in ")
    assert "answered by kimi-k2.5:cloud" in out


def test_probe_is_a_failover_watcher_subcommand(fake, capsys):
    from watcher.cli import main

    assert main(["probe", "ollama/qwen3:8b", "--base-url", fake.base_url()]) == 0
    assert capsys.readouterr().out.startswith("ollama/qwen3:8b: ok in ")


def test_probe_of_a_throttled_model_prints_the_class_and_exits_1(fake, capsys):
    fake.script("gpt-5.5", probe=Reply.throttle("17"))
    code = run_cli("cloud/gpt-5.5", "--base-url", fake.base_url("c", "openai"), "--api", "openai")
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED throttle HTTP 429 retry after 17 s" in out


def test_json_output_is_the_probe_result(fake, capsys):
    fake.script("m", probe=Reply.wrong_model("other"))
    code = run_cli("ollama/m", "--base-url", fake.base_url(), "--api", "ollama", "--json")
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert data["failure_class"] == "wrong_model" and data["served_model"] == "other"
    assert set(data) == {
        "model", "ok", "started_at", "latency_s", "probe_id", "failure_class", "status",
        "retry_after_s", "detail", "served_model",
    }


def test_openclaw_provider_key_is_sent_but_never_printed_or_logged(fake, tmp_path, capsys,
                                                                    caplog):
    caplog.set_level(logging.DEBUG)
    secret = "sk-proj-9c2b77aa01"
    fake.script("gpt-5.5", probe=Reply.unauthorized(f"Incorrect API key provided: {secret}"))
    config = tmp_path / "openclaw.json"
    config.write_text(
        "// gateway config (JSON5)\n{models: {providers: {openai: {"
        f'baseUrl: "{fake.base_url("openai", "openai")}", api: "openai-completions", '
        f'apiKey: "{secret}",}}}}}}}}\n'
    )
    code = run_cli("openai/gpt-5.5", "--openclaw", str(config), "--json")
    captured = capsys.readouterr()
    assert code == 1
    assert fake.requests[0].authorization == f"Bearer {secret}"
    assert json.loads(captured.out)["failure_class"] == "auth"
    assert secret not in captured.out + captured.err + caplog.text


def test_watcher_config_credential_reference_is_used(fake, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PROBE_TEST_KEY", "k-env-1")
    config = tmp_path / "watcher.toml"
    config.write_text(
        f'[providers.cloud]\nbase_url = "{fake.base_url("cloud", "openai")}"\n'
        'api = "openai-completions"\ncredential = "env:PROBE_TEST_KEY"\npaid = true\n'
    )
    assert run_cli("cloud/m", "--config", str(config)) == 0
    assert fake.requests[0].authorization == "Bearer k-env-1"


def test_unreachable_endpoint_exits_1_with_connection_class(capsys):
    code = run_cli("ollama/m", "--base-url", f"http://127.0.0.1:{closed_port()}")
    assert code == 1
    assert "FAILED connection" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no-slash"], "is not a provider/model ref"),
        (["cloud/m"], "no settings for provider 'cloud'"),
        (["cloud/m", "--base-url", "ftp://x", "--api", "openai"], "base_url must start"),
        (["ollama/m", "--openclaw", "/nonexistent/openclaw.json"], "cannot read"),
        (["ollama/m", "--timeout", "0"], "--timeout must be positive"),
    ],
)
def test_usage_and_config_errors_exit_2_with_a_clear_message(argv, message, capsys, monkeypatch,
                                                             tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.openclaw/openclaw.json picked up
    assert run_cli(*argv) == 2
    assert message in capsys.readouterr().err
