"""``failover-watcher drill`` against the loopback fake model server: every chain member
probed for real, the working depth and cross-provider fallback judged, paid models
left alone unless asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.fakes.models import FakeModelServer, Reply
from watcher.probe.drill import SKIP_PAID

CHAINS = {
    # the second fallback answers 404: still two deep, across providers
    "alpha": ["ollama/p1", "other/f1", "third/dead"],
    # the only cross-provider fallback is throttled: degraded
    "beta": ["ollama/p2", "ollama/f2", "other/busy"],
    # a paid fallback: not probed by default
    "gamma": ["ollama/p3", "paid/cost"],
}


@pytest.fixture
def fake(threaded_models: FakeModelServer) -> FakeModelServer:
    threaded_models.script("dead", probe=Reply.failing(404, "model 'dead' not found"))
    threaded_models.script("busy", probe=Reply.throttle("30"))
    return threaded_models


@pytest.fixture
def world(fake: FakeModelServer, tmp_path: Path) -> Path:
    providers = {
        pid: {"api": "ollama", "baseUrl": fake.base_url(pid), "apiKey": f"fake-{pid}",
              "models": [{"id": ref.partition("/")[2], "name": ref.partition("/")[2]}
                         for chain in CHAINS.values() for ref in chain
                         if ref.startswith(pid + "/")]}
        for pid in ("ollama", "other", "third", "paid")
    }
    agents = {a: {"model": {"primary": c[0], "fallbacks": c[1:]}} for a, c in CHAINS.items()}
    (tmp_path / "openclaw.json").write_text(json.dumps(
        {"models": {"providers": providers}, "agents": {"entries": agents}}))
    (tmp_path / "watcher.toml").write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'gateway_config = "{tmp_path / "openclaw.json"}"\n'
        "[providers.paid]\npaid = true\n"
    )
    return tmp_path / "watcher.toml"


def test_a_degraded_chain_exits_1_and_the_json_says_why(
    world: Path, fake: FakeModelServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["drill", "--config", str(world), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == 1 and set(data["agents"]) == set(CHAINS)
    alpha, beta, gamma = (data["agents"][a] for a in ("alpha", "beta", "gamma"))
    assert [m["ok"] for m in alpha["members"]] == [True, True, False]
    assert alpha["members"][2]["failure_class"] == "model_not_found"
    assert (alpha["working_depth"], alpha["cross_provider_ok"]) == (2, True)
    assert beta["members"][2]["failure_class"] == "throttle"
    assert (beta["working_depth"], beta["cross_provider_ok"]) == (2, False)
    assert gamma["members"][1] == {"model": "paid/cost", "ok": False, "failure_class": None,
                                   "latency_ms": None, "skipped": SKIP_PAID}
    assert all(isinstance(m["latency_ms"], int) for m in alpha["members"])
    # The paid model was never called; every other member was, once.
    assert fake.requests_for("cost") == []
    assert len(fake.requests_for("dead")) == 1 and len(fake.requests_for("p1")) == 1


def test_the_text_report_names_each_member_and_the_verdict(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["drill", "--config", str(world), "--agent", "beta"]) == 1
    out = capsys.readouterr().out
    assert "beta: working depth 2/3, cross-provider fallback no: DEGRADED" in out
    assert "FAILED throttle" in out and "alpha" not in out
    assert out.rstrip().endswith("drill: 1 agent(s), 1 degraded (beta)")


def test_a_sound_agent_exits_0_and_include_paid_probes_the_paid_model(
    world: Path, fake: FakeModelServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["drill", "--config", str(world), "--agent", "alpha"]) == 0
    assert "none degraded" in capsys.readouterr().out
    assert main(["drill", "--config", str(world), "--agent", "gamma", "--include-paid",
                 "--json"]) == 0
    gamma = json.loads(capsys.readouterr().out)["agents"]["gamma"]
    assert gamma["working_depth"] == 2 and gamma["cross_provider_ok"]
    assert len(fake.requests_for("cost")) == 1


def test_a_drill_never_prints_a_key_and_writes_nothing(
    world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["drill", "--config", str(world)])
    captured = capsys.readouterr()
    assert "fake-ollama" not in captured.out + captured.err
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--agent", "nobody"], "no agent nobody"),
    (["--timeout", "0"], "--timeout must be positive"),
    (["--openclaw", "/nonexistent/openclaw.json"], "cannot be read as chains"),
])
def test_usage_errors_exit_2(
    world: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["drill", "--config", str(world), *argv]) == 2
    assert message in capsys.readouterr().err
