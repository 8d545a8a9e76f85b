"""The everyday commands against real files: validate-config, lint-config, pin, replay,
status, and the watcher's systemd unit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.rigs.file_world import write_file_world
from watcher.cli import main
from watcher.config import load_settings
from watcher.shell.watcher import Watcher

CHAINS = {
    "nexus": ["ollama/glm-5.1:cloud", "deepseek/deepseek-v4-flash", "ollama/glm-5:cloud"],
    "hermes": ["ollama/kimi-k2.5:cloud", "ollama/glm-5.1:cloud", "ollama/glm-5:cloud"],
}
FAIL = (
    "{ts} [model-fallback/decision] model fallback decision: decision=candidate_failed "
    "requested=ollama/glm-5.1:cloud candidate=ollama/glm-5.1:cloud reason=server_error "
    "next=deepseek/deepseek-v4-flash detail=503 upstream down"
)


@pytest.fixture
def setup(tmp_path: Path) -> Path:
    write_file_world(tmp_path, CHAINS)
    return tmp_path


def test_validate_config_lists_every_error_at_once_and_exits_1(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[journal]\nstart_at = "yesterday"\n[policy]\nrise = 0\n'
        '[alerts]\nbot_token = "123456:ABCDEF-pasted-token"\nchat_id = 1\n'
    )
    assert main(["validate-config", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "journal.start_at" in err and "policy.rise" in err and "alerts.bot_token" in err
    assert "pasted-token" not in err  # a pasted secret is never echoed


def test_validate_config_accepts_a_good_config(setup: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["validate-config", "--config", str(setup / "watcher.toml")]) == 0
    assert "2 agent(s)" in capsys.readouterr().out


def test_lint_config_flags_shallow_and_single_provider_chains(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "openclaw.json"
    cfg.write_text(
        '{agents: {entries: {a: {model: {primary: "ollama/x", fallbacks: ["ollama/y"]}},'
        ' b: {model: {primary: "ollama/x", fallbacks: ["ollama/y", "openai/z"]}}}}}'
    )
    assert main(["lint-config", str(cfg), "--no-plugin"]) == 1
    out = capsys.readouterr().out
    assert "a: chain" in out and "one fallback deep" in out and "another provider" in out
    assert "b:" not in out and "plugin:" not in out


def test_lint_config_says_why_the_pin_cannot_steer_the_gateway(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    repo = Path(__file__).resolve().parents[2]
    state = tmp_path / "state"
    watcher_toml = tmp_path / "watcher.toml"
    watcher_toml.write_text(f'state_dir = "{state}"\n')
    chains = (
        '"agents": {"entries": {"a": {"model": {"primary": "ollama/x", '
        '"fallbacks": ["ollama/y", "openai/z"]}}}}'
    )
    cfg = tmp_path / "openclaw.json"
    cfg.write_text("{" + chains + "}")
    assert main(["lint-config", str(cfg), "--config", str(watcher_toml)]) == 1
    out = capsys.readouterr().out
    assert "plugin: no folder in plugins.load.paths holds the fallback-pin plugin" in out
    assert "allowConversationAccess is not true" in out
    assert "the plugin reads /var/lib/failover-watcher/fallback-state.json" in out

    entry = (
        '"fallback-pin": {"enabled": true, "hooks": {"allowConversationAccess": true}, '
        f'"config": {{"pinFile": "{state}/fallback-state.json"}}}}'
    )
    cfg.write_text(
        "{" + chains + f', "plugins": {{"load": {{"paths": ["{repo}/gateway-plugin"]}}, '
        f'"entries": {{{entry}}}}}}}'
    )
    assert main(["lint-config", str(cfg), "--config", str(watcher_toml)]) == 0
    assert "the fallback-pin plugin steers by this pin file" in capsys.readouterr().out


def test_pin_hold_and_release_are_adopted_by_the_watcher_as_operator_overrides(
    setup: Path,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    config = str(setup / "watcher.toml")
    watcher = Watcher.open(load_settings(setup / "watcher.toml"))
    assert (setup / "state" / "fallback-state.json").exists()  # written at first start
    assert (
        main(
            [
                "pin",
                "hold",
                "nexus",
                "ollama/glm-5:cloud",
                "--for",
                "1h",
                "--note",
                "test",
                "--config",
                config,
            ]
        )
        == 0
    )
    sentences = watcher.apply([])
    assert any("OPERATOR_OVERRIDE" in s for s in sentences), sentences
    assert watcher.state.agents["nexus"].serving == "ollama/glm-5:cloud"
    assert watcher.state.agents["nexus"].hold is not None

    assert main(["pin", "hold", "nexus", "openai/not-in-chain", "--config", config]) == 2
    assert "not in the agent's chain" in capsys.readouterr().err
    assert main(["pin", "hold", "nobody", "ollama/glm-5:cloud", "--config", config]) == 2

    assert main(["pin", "release", "nexus", "--config", config]) == 0
    watcher.apply([])
    assert watcher.state.agents["nexus"].hold is None
    assert watcher.state.agents["nexus"].serving == "ollama/glm-5.1:cloud"
    lines = (setup / "state" / "audit.jsonl").read_text().splitlines()
    assert any("OPERATOR" in line for line in lines)
    watcher.intake.outbox.close()


def test_replay_runs_the_core_on_the_recorded_clock_without_touching_live_state(
    setup: Path,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    log = setup / "recorded.log"
    log.write_text(
        "\n".join(
            [
                FAIL.format(ts="2026-05-20T14:00:00.000+00:00"),
                "chatter",
                FAIL.format(ts="2026-05-20T14:00:20.000+00:00"),
            ]
        )
        + "\n"
    )
    with (setup / "watcher.toml").open("a") as config:  # a credential reference must not
        config.write('[providers.deepseek]\npaid = true\ncredential = "env:NO_SUCH_KEY"\n')
    code = main(["replay", str(log), "--config", str(setup / "watcher.toml"), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["records"] == 2
    types = [t["type"] for t in out["transitions"]]
    assert types.count("FALLBACK_FIRED") == 1
    assert out["final_pins"]["nexus"] == "deepseek/deepseek-v4-flash"
    assert out["final_pins"]["hermes"] == "ollama/kimi-k2.5:cloud"
    assert not (setup / "state").exists()  # the live state directory was never created


def test_status_shows_the_agent_in_fallback_with_its_class(setup: Path) -> None:
    watcher = Watcher.open(load_settings(setup / "watcher.toml"))
    from watcher.classify.evidence import to_event
    from watcher.parse.lines import parse_line

    now = time.time()
    event = to_event(parse_line(FAIL.format(ts="x"), ts=now), position="p1")
    assert event is not None
    watcher.apply([event], position={"source": "file", "position": "p1", "realtime": now})
    watcher.intake.outbox.close()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "watcher.cli",
            "status",
            "--json",
            "--config",
            str(setup / "watcher.toml"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout)
    assert data["schema"] == 1
    assert data["agents"]["nexus"]["in_fallback"] is True
    assert data["agents"]["nexus"]["failure_class"] == "server_error"
    assert data["models"]["ollama/glm-5.1:cloud"]["failing"] is True
    text = subprocess.run(
        [sys.executable, "-m", "watcher.cli", "status", "--config", str(setup / "watcher.toml")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "IN FALLBACK" in text and "nexus" in text


def test_the_watcher_unit_verifies_and_keeps_its_hardening(tmp_path: Path) -> None:
    unit = Path("systemd/failover-watcher.service").read_text()
    local = unit.replace(
        "/opt/failover-watcher/.venv/bin/failover-watcher",
        str(Path(sys.executable).parent / "failover-watcher"),
    )
    (tmp_path / "failover-watcher.service").write_text(local)
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "failover-watcher.service")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    directives = {line for line in unit.splitlines() if line and not line.startswith("#")}
    for needed in (
        "Type=notify",
        "Restart=on-failure",
        "StateDirectory=failover-watcher",
        "ReadWritePaths=/var/lib/failover-watcher",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=",
        "SupplementaryGroups=systemd-journal",
    ):
        assert needed in directives, needed
    assert any(d.startswith("WatchdogSec=") for d in directives)
    assert any(d.startswith("LoadCredential=") for d in directives)
    assert not any("openclaw" in d for d in directives if d.startswith("ReadWritePaths="))


def test_replay_of_a_far_future_timestamp_finishes(setup: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A 2099 line after a 2026 one used to tick every 15 s across 73 years: a hang."""
    log = setup / "recorded.log"
    log.write_text(
        FAIL.format(ts="2026-05-20T14:00:00.000+00:00")
        + "\n"
        + FAIL.format(ts="2099-05-20T14:00:00.000+00:00")
        + "\n"
    )
    code = main(["replay", str(log), "--config", str(setup / "watcher.toml"), "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["records"] == 2
