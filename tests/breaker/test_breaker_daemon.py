"""``failover-breaker run`` as a real process over a real journal: it trips and writes,
and it writes nowhere but the gateway config directory and its own state directory."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.breaker.conftest import GATEWAY_JSON, write_toml
from watcher.fakes.journal import JournalEntry, write_journal
from watcher.gateway.chains import parse_gateway_config

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable

# Runs the real CLI with an audit hook that records every open for writing, rename,
# unlink and sqlite connect, and dumps them when the process exits.
AUDITED = r"""
import atexit, json, os, sys
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
seen = []
recording = [True]
def hook(event, args):
    if not recording[0]:
        return
    if event == "open":
        path, mode, flags = args
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & WRITE_FLAGS)
        if writes and isinstance(path, (str, bytes, os.PathLike)):
            seen.append(["open-write", os.fsdecode(path)])
    elif event in ("os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.chmod"):
        if isinstance(args[0], (str, bytes, os.PathLike)):
            seen.append([event, os.fsdecode(args[0])])
        if event == "os.rename":
            seen.append([event + "-to", os.fsdecode(args[1])])
    elif event == "sqlite3.connect":
        seen.append([event, os.fsdecode(args[0])])
def dump():
    recording[0] = False
    with open(os.environ["AUDIT_OUT"], "w") as f:
        json.dump(seen, f)
atexit.register(dump)
sys.addaudithook(hook)
from watcher.breaker.cli import main
sys.exit(main(sys.argv[1:]))
"""


def served(candidate: str) -> str:
    return ("2026-05-20T09:00:00.000+00:00 [model-fallback/decision] model fallback decision: "
            "decision=candidate_succeeded requested=ollama/kimi-k2.5:cloud "
            f"candidate={candidate} reason=unknown next=none")


def wait_for(predicate: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def run_daemon(tmp_path: Path, gateway: Path, *extra: str, audited: bool = False,
               until: Any = None) -> tuple[int, str, str]:
    """Run the breaker on a journal with four paid calls; SIGTERM it once ``until()``
    holds (``until=None``: it must exit by itself, as ``--dry-run`` does)."""
    journal = tmp_path / "journal"
    now = time.time()
    entries = [JournalEntry("gateway started", realtime=now - 5)]
    entries += [JournalEntry(served("openai/gpt-5.5"), realtime=now - 4 + i * 0.01)
                for i in range(4)]  # 4 x 0.25 = the 1.00 cap
    entries += [JournalEntry(served("ollama/qwen3:8b"), realtime=now - 3)]
    write_journal(journal, entries)
    config = write_toml(tmp_path, gateway, journal=f"journal:{journal}", tz="UTC")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
           "AUDIT_OUT": str(tmp_path / "audit.json")}
    argv = [PY, "-c", AUDITED] if audited else [PY, "-m", "watcher.breaker.cli"]
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with open(out, "wb") as so, open(err, "wb") as se:
        proc = subprocess.Popen([*argv, "run", "--config", str(config), *extra], cwd=ROOT,
                                env=env, stdout=so, stderr=se)
        if until is None:
            try:
                code = proc.wait(timeout=30)
                reached = True
            except subprocess.TimeoutExpired:
                proc.kill()
                code, reached = proc.wait(), False
        else:
            try:
                reached = wait_for(until)
            finally:
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(timeout=20)
    assert reached, f"timed out; stderr:\n{err.read_text()}"
    return code, out.read_text(), err.read_text()


def cut_written(gateway: Path) -> bool:
    return gateway.read_text() != GATEWAY_JSON


def test_the_breaker_daemon_trips_on_a_real_journal_and_rewrites_the_config(
    tmp_path: Path, gateway: Path
) -> None:
    code, _, err = run_daemon(tmp_path, gateway, until=lambda: cut_written(gateway))
    assert code == 0, err
    chains = parse_gateway_config(gateway.read_text()).chains
    assert not any(ref.startswith("openai/") for chain in chains.values() for ref in chain)
    assert "cut openai off" in err
    state = tmp_path / "state"
    assert sorted(p.name for p in gateway.parent.glob("openclaw.json.breaker-*.bak")) != []
    status = subprocess.run(
        [PY, "-m", "watcher.breaker.cli", "status", "--json", "--config",
         str(tmp_path / "config.toml")], cwd=ROOT, capture_output=True, text=True, check=True)
    data = json.loads(status.stdout)
    assert data["providers"]["openai"]["tripped"] is True
    assert data["providers"]["openai"]["calls_ok"] == 4
    assert data["trips"][0]["affected"] == ["bare", "legacy", "local", "main", "ops"]
    assert data["next_reset"].endswith("T00:00:00+00:00")
    assert (state / "ledger.json").exists() and (state / "outbox.sqlite3").exists()


def test_the_breaker_only_writes_the_gateway_config_dir_and_its_own_state(
    tmp_path: Path, gateway: Path
) -> None:
    pins = tmp_path / "watcher-state"
    pins.mkdir()
    (pins / "fallback-state.json").write_text("{}")
    code, _, err = run_daemon(tmp_path, gateway, audited=True,
                              until=lambda: cut_written(gateway))
    assert code == 0, err
    assert wait_for((tmp_path / "audit.json").exists, 5)
    events = json.loads((tmp_path / "audit.json").read_text())
    assert any(e == ["os.rename-to", str(gateway)] for e in events), events
    allowed = (str(gateway.parent) + os.sep, str(tmp_path / "state") + os.sep)
    outside = [e for e in events
               if not e[1].startswith(allowed) and e[1] != str(tmp_path / "state")]
    assert outside == []
    assert not [e for e in events if e[1].endswith("fallback-state.json")]


def test_dry_run_prints_the_diff_and_writes_nothing(tmp_path: Path, gateway: Path) -> None:
    before = gateway.stat().st_mtime_ns
    code, out, err = run_daemon(tmp_path, gateway, "--dry-run")  # one-shot: exits by itself
    assert code == 0, err
    assert "+++" in out
    assert '-          "openai/gpt-5.2",' in out
    assert "sk-test" not in out + err
    assert gateway.read_text() == GATEWAY_JSON and gateway.stat().st_mtime_ns == before
    assert list(gateway.parent.iterdir()) == [gateway]
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(("argv", "code"), [
    (["status", "--config", "/nonexistent/breaker.toml"], 1),
    (["run", "--config", "/nonexistent/breaker.toml"], 1),
    (["frobnicate"], 2),
    ([], 2),
])
def test_exit_codes(argv: list[str], code: int) -> None:
    proc = subprocess.run([PY, "-m", "watcher.breaker.cli", *argv], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == code, proc.stderr


def test_an_invalid_breaker_config_lists_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[breaker]\ngateway_config = "/x"\ntimezone = "Mars/Olympus"\n'
                   '[breaker.providers.openai]\ncall_price = -1\n')
    proc = subprocess.run([PY, "-m", "watcher.breaker.cli", "status", "--config", str(bad)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "breaker.timezone" in proc.stderr and "breaker.providers.openai" in proc.stderr


def test_the_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = (ROOT / "systemd" / "failover-breaker.service").read_text()
    # verify checks that ExecStart exists: point it at this checkout's entry point.
    unit = unit.replace("/opt/failover-watcher/.venv/bin/failover-breaker",
                        str(Path(sys.executable).parent / "failover-breaker"))
    (tmp_path / "failover-breaker.service").write_text(unit)
    proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "failover-breaker.service")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    directives = [line for line in unit.splitlines() if line and not line.startswith("#")]
    assert {d for d in directives if d.startswith("ReadWritePaths=")} == {
        "ReadWritePaths=/var/lib/failover-breaker", "ReadWritePaths=/home/openclaw/.openclaw"}
    for needed in ("ProtectSystem=strict", "ProtectHome=read-only", "NoNewPrivileges=yes",
                   "PrivateTmp=yes", "CapabilityBoundingSet=", "StateDirectory=failover-breaker",
                   "SystemCallFilter=@system-service",
                   "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"):
        assert needed in directives


def test_the_breaker_sends_its_own_tripped_card_to_telegram(
    tmp_path: Path, gateway: Path, monkeypatch: Any
) -> None:
    """BREAKER_TRIPPED reaches Telegram through the breaker's own outbox and sender."""
    from watcher.fakes.botapi import FakeBotApi

    token = "123456:BREAKER-TEST"
    with FakeBotApi(token) as bot:
        monkeypatch.setenv("BREAKER_BOT_TOKEN", token)
        original = write_toml

        def with_alerts(*args: Any, **kwargs: Any) -> Path:
            path = original(*args, **kwargs)
            path.write_text(
                path.read_text()
                + f'\n[breaker.alerts]\nbot_token = "env:BREAKER_BOT_TOKEN"\nchat_id = 7\n'
                f'base_url = "{bot.base_url}"\n'
            )
            return path

        monkeypatch.setitem(globals(), "write_toml", with_alerts)
        code, _, err = run_daemon(tmp_path, gateway, until=lambda: bool(bot.messages))
        assert code == 0, err
        assert "Breaker tripped" in bot.messages[0].text or "openai" in bot.messages[0].text
        assert token not in err


def test_run_with_a_missing_cred_token_says_so_in_one_line(tmp_path: Path, gateway: Path) -> None:
    config = write_toml(tmp_path, gateway, journal=f"journal:{tmp_path / 'journal'}")
    with config.open("a") as fh:
        fh.write('\n[breaker.alerts]\nbot_token = "cred:telegram-bot-token"\nchat_id = 42\n')
    env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    proc = subprocess.run([PY, "-m", "watcher.breaker.cli", "run", "--config", str(config)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert "alerts.bot_token" in proc.stderr and "CREDENTIALS_DIRECTORY" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_status_into_a_closed_pipe_prints_no_traceback(tmp_path: Path, gateway: Path) -> None:
    config = write_toml(tmp_path, gateway)
    proc = subprocess.Popen([PY, "-m", "watcher.breaker.cli", "status", "--json", "--config",
                             str(config)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head` that has already gone: the write gets EPIPE
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(30) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_the_readme_breaker_toml_is_a_valid_config() -> None:
    from watcher.breaker.config import parse_config

    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```toml\n(\[breaker\]\n.*?)```", readme, flags=re.S)
    assert len(blocks) == 1, "expected one breaker.toml example in the README"
    config = parse_config(blocks[0], "README.md")
    assert config.alerts is not None and config.alerts.bot_token == "cred:telegram-bot-token"
    unit = (ROOT / "systemd" / "failover-breaker.service").read_text()
    assert "LoadCredential=telegram-bot-token:/etc/failover-watcher/telegram-bot-token" in unit
    assert "No network at all" not in unit
