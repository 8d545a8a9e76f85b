"""Production hardening: each test reproduces what an operator hit."""

from __future__ import annotations

import importlib
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.rigs.daemon_rig import DaemonRig, wait_until
from tests.rigs.file_world import write_file_world
from tests.rigs.wait import require_root
from watcher.cli import main
from watcher.config import load_settings
from watcher.demo import PRIMARY
from watcher.shell.watcher import Watcher

CHAINS = {
    "nexus": ["ollama/glm-5.1:cloud", "deepseek/deepseek-v4-flash", "ollama/glm-5:cloud"],
    "hermes": ["ollama/kimi-k2.5:cloud", "ollama/glm-5.1:cloud", "ollama/glm-5:cloud"],
}
SERVICE_USER = "nobody"  # stands in for failover-watcher: any non-root user will do


@pytest.fixture
def world() -> Iterator[Path]:
    """A watcher's files in a directory other users can reach (pytest's tmp_path sits
    under a 0700 directory of root's)."""
    root = Path(tempfile.mkdtemp(prefix="fw-hardening-"))
    root.chmod(0o755)
    try:
        write_file_world(root, CHAINS)
        Watcher.open(load_settings(root / "watcher.toml")).intake.outbox.close()  # first pin file
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _owned_by(path: Path, user: str) -> None:
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)


def as_user(user: str, fn: Callable[[], int]) -> tuple[int, str]:
    """Run ``fn`` in a forked child with ``user``'s uid, gid and no extra groups; return
    its exit code and what it wrote to stderr. (A fork, not an exec: this interpreter
    lives under /root, which other users cannot enter.)"""
    pw = pwd.getpwnam(user)
    # Import now what the child would import lazily: the interpreter's own files sit
    # under /root, which the child may no longer read.
    for module in ("encodings.ascii", "encodings.latin_1", "watcher.shell.watcher",
                   "watcher.cli.run", "watcher.cli.pin", "watcher.source",
                   "watcher.support.logsetup", "getpass"):
        importlib.import_module(module)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 70
        try:
            os.close(read_fd)
            os.dup2(write_fd, 2)
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 - the child exits below
            os.setgroups([])
            os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
            os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)
            code = fn()
        except BaseException as exc:
            print(f"child raised {exc!r}", file=sys.stderr)
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(write_fd)
    with open(read_fd, encoding="utf-8", errors="replace") as err:
        text = err.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), text


def _owner(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return pwd.getpwuid(st.st_uid).pw_name, st.st_gid, stat.S_IMODE(st.st_mode)


def test_pin_run_as_root_keeps_the_service_users_owner_group_and_mode(world: Path) -> None:
    require_root()
    state = world / "state"
    for path in [state, *state.iterdir()]:
        _owned_by(path, SERVICE_USER)
    pin = state / "fallback-state.json"
    pin.chmod(0o644)  # e.g. opened up for the gateway's user
    before = {p.name: _owner(p) for p in (pin, state / "fallback-state.json.last-good")}

    config = str(world / "watcher.toml")
    assert main(["pin", "hold", "nexus", "ollama/glm-5:cloud", "--config", config]) == 0
    after = {p.name: _owner(p) for p in (pin, state / "fallback-state.json.last-good")}
    assert after == before
    assert "ollama/glm-5:cloud" in pin.read_text()

    # and the service user can still read it
    def read() -> int:
        return 0 if json.loads(pin.read_text())["agents"]["nexus"]["hold"] else 1

    assert as_user(SERVICE_USER, read) == (0, "")


def test_pin_refuses_to_take_over_a_file_another_user_owns(world: Path) -> None:
    require_root()
    state = world / "state"
    world.chmod(0o755)
    state.chmod(0o777)  # the other user may write the directory, not own the file
    for path in state.iterdir():
        path.chmod(0o666)
    pin = state / "fallback-state.json"
    before = pin.read_bytes()
    config = str(world / "watcher.toml")
    code, err = as_user(
        SERVICE_USER,
        lambda: main(["pin", "hold", "nexus", "ollama/glm-5:cloud", "--config", config]),
    )
    assert code == 1, err
    assert "belongs to root" in err and "Nothing changed" in err
    assert "Traceback" not in err
    assert pin.read_bytes() == before and _owner(pin)[0] == "root"


FAIL = (
    "2026-05-20T14:00:00.000+00:00 [model-fallback/decision] model fallback decision: "
    "decision=candidate_failed requested=ollama/glm-5.1:cloud candidate=ollama/glm-5.1:cloud "
    "reason=server_error next=deepseek/deepseek-v4-flash detail=503 upstream down"
)


def test_replay_refuses_a_used_state_dir_and_writes_nothing_there(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = world / "recorded.log"
    log.write_text(FAIL + "\n")
    config = str(world / "watcher.toml")
    state = world / "state"
    before = {p.name: p.read_bytes() for p in state.iterdir() if p.is_file()}

    for used in (state, world):  # the live state dir, and any non-empty directory
        assert main(["replay", str(log), "--config", config, "--state-dir", str(used)]) == 2
        err = capsys.readouterr().err
        assert "refusing --state-dir" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in state.iterdir() if p.is_file()} == before

    fresh = world / "replay-state"
    assert main(["replay", str(log), "--config", config, "--state-dir", str(fresh)]) == 0
    assert json.loads((fresh / "fallback-state.json").read_text())["agents"]["nexus"][
        "current_serving"] == "deepseek/deepseek-v4-flash"


def _config(world: Path, extra: str) -> Path:
    path = world / "extra.toml"
    path.write_text((world / "watcher.toml").read_text() + extra)
    return path


def test_validate_config_lists_every_problem_run_would_hit_at_once(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (world / "watcher.toml").read_text()
    bad = world / "bad.toml"
    bad.write_text(text.replace('start_at = "head"', 'start_at = "since:banana"')
                   + '\n[policy]\nrise = 0\nflap_low_pct = 60\nflap_high_pct = 50\n'
                   "cooldown_base_s = 9000\n")
    assert main(["validate-config", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    for expected in ("journal.start_at: since:<duration> has a bad duration",
                     "policy.rise", "flap_low_pct (60.0) must be below flap_high_pct",
                     "cooldown_base_s (9000.0) exceeds cooldown_cap_s"):
        assert expected in err, err
    assert "Traceback" not in err

    bogus = world / "bogus.toml"
    bogus.write_text(re.sub(r'source = "[^"]*"', 'source = "bogus:thing"', text))
    assert main(["validate-config", "--config", str(bogus)]) == 1
    assert "unknown source kind 'bogus'" in capsys.readouterr().err

    assert main(["validate-config", "--config", str(world)]) == 1
    assert "is a directory, not a config file" in capsys.readouterr().err


def test_validate_config_checks_cred_files_with_credentials_dir_and_never_prints_them(
    world: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = _config(world, '\n[alerts]\nbot_token = "cred:telegram-bot-token"\nchat_id = 42\n')
    creds = world / "etc"
    creds.mkdir()
    # outside systemd: not checked, and it says how to check
    assert main(["validate-config", "--config", str(config)]) == 0
    assert "--credentials-dir" in capsys.readouterr().err
    # the file is missing
    argv = ["validate-config", "--config", str(config), "--credentials-dir", str(creds)]
    assert main(argv) == 1
    assert "telegram-bot-token" in capsys.readouterr().err
    (creds / "telegram-bot-token").write_text("123456:SECRET-token-value\n")
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "config ok" in out.out and "SECRET" not in out.out + out.err


def test_run_with_a_missing_credential_says_so_in_one_line(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = _config(world, '\n[alerts]\nbot_token = "cred:telegram-bot-token"\nchat_id = 42\n')
    run = subprocess.run([sys.executable, "-m", "watcher.cli", "run", "--config", str(config)],
                         capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items()
                              if k != "CREDENTIALS_DIRECTORY"})
    assert run.returncode == 1
    assert "alerts.bot_token" in run.stderr and "CREDENTIALS_DIRECTORY" in run.stderr
    assert "Traceback" not in run.stderr


def test_run_with_a_state_dir_it_cannot_write_says_so_in_one_line(world: Path) -> None:
    require_root()
    state = world / "state"
    state.chmod(0o755)  # root's; the service user can read but not write it
    for path in state.iterdir():
        path.chmod(0o644)
    code, err = as_user(
        SERVICE_USER, lambda: main(["run", "--config", str(world / "watcher.toml")]))
    assert code == 1, err
    assert "must be writable by user nobody" in err and "Traceback" not in err
    assert main(["validate-config", "--config", str(world / "watcher.toml")]) == 0  # as root
    code, err = as_user(
        SERVICE_USER,
        lambda: main(["validate-config", "--config", str(world / "watcher.toml")]))
    assert code == 1 and "is not writable by user nobody" in err, err


def test_status_works_on_a_quiet_journal_as_soon_as_the_daemon_has_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_file_world(tmp_path, CHAINS)  # its text log is empty: nothing ever arrives
    watcher = Watcher.open(load_settings(tmp_path / "watcher.toml"))
    watcher.apply([])  # what run() does first
    watcher.intake.outbox.close()
    assert main(["status", "--json", "--config", str(tmp_path / "watcher.toml")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["agents"]) == set(CHAINS)


def test_status_lag_is_the_daemons_lag_not_the_age_of_the_last_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_file_world(tmp_path, CHAINS)
    watcher = Watcher.open(load_settings(tmp_path / "watcher.toml"))
    now = time.time()
    # caught up when the last entry arrived, 1,192 s ago; quiet since
    watcher.lag_s = 0.007
    watcher.apply([], position={"source": "test", "realtime": now - 1192}, now=now)
    watcher.intake.outbox.close()
    assert main(["status", "--json", "--config", str(tmp_path / "watcher.toml")]) == 0
    journal = json.loads(capsys.readouterr().out)["journal"]
    assert journal["lag_s"] == 0.007
    assert 1190 <= journal["last_entry_age_s"] <= 1200
    assert main(["status", "--config", str(tmp_path / "watcher.toml")]) == 0
    assert "lag at the last batch 0.007s" in capsys.readouterr().out


def test_a_corrupt_state_or_pin_file_is_one_line_never_a_traceback(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(world / "watcher.toml")
    pin = world / "state" / "fallback-state.json"
    pin.write_text('{"schema_version": 1, broken')
    for argv in (["pin", "show"], ["pin", "hold", "nexus", "ollama/glm-5:cloud"]):
        assert main([*argv, "--config", config]) == 1
        err = capsys.readouterr().err
        assert "is invalid on disk" in err and "would be invalid" not in err, err
    (world / "state" / "core-state.json").write_text("{not json")
    assert main(["status", "--config", config]) == 1
    assert "is not a watcher state file" in capsys.readouterr().err
    run = subprocess.run([sys.executable, "-m", "watcher.cli", "run", "--config", config],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "core-state.json is not valid JSON" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("duration", ["0s", "", "99999d", "8d", "soon"])
def test_pin_hold_refuses_zero_empty_and_over_seven_day_holds(
    world: Path, duration: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (world / "state" / "fallback-state.json").read_bytes()
    argv = ["pin", "hold", "nexus", "ollama/glm-5:cloud", "--for", duration,
            "--config", str(world / "watcher.toml")]
    assert main(argv) == 2
    assert "bad hold duration" in capsys.readouterr().err
    assert (world / "state" / "fallback-state.json").read_bytes() == before


def test_pin_arguments_are_usage_errors_and_config_works_before_the_action(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(world / "watcher.toml")
    assert main(["pin", "hold", "nobody", "ollama/glm-5:cloud", "--config", config]) == 2
    assert main(["pin", "set", "nexus", "openai/elsewhere", "--config", config]) == 2
    capsys.readouterr()
    # the global option before the action acts on F, not on /var/lib/failover-watcher
    assert main(["pin", "--config", config, "hold", "nexus", "ollama/glm-5:cloud",
                 "--for", "7d"]) == 0
    assert json.loads((world / "state" / "fallback-state.json").read_text())["agents"][
        "nexus"]["hold"]["model"] == "ollama/glm-5:cloud"
    assert main(["pin", "--config", config, "show"]) == 0
    assert "held by" in capsys.readouterr().out


def test_the_daemon_started_by_hand_under_umask_022_writes_nothing_world_readable(
    tmp_path: Path,
) -> None:

    old = os.umask(0o022)
    rig = DaemonRig(tmp_path)
    try:
        rig.start()
        rig.journal.append(
            "[model-fallback/decision] model fallback decision: decision=candidate_failed "
            f"requested={PRIMARY} candidate={PRIMARY} reason=rate_limit "
            "next=deepseek/deepseek-v4-flash detail=429 rate_limit_exceeded")
        rig.journal.flush()
        wait_until(lambda: rig.bot.messages, what="a card, so the outbox has been written")
        files = [p for p in rig.state.rglob("*") if p.is_file()]
        assert {"outbox.sqlite3-wal", "metrics.port"} <= {p.name for p in files}
        loose = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files
                 if p.stat().st_mode & 0o007}
        assert loose == {}
    finally:
        os.umask(old)
        rig.close()


def test_a_hold_ending_says_so_and_a_success_inside_a_cooldown_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from watcher.classify.evidence import to_event
    from watcher.core.events import Hold, Tick
    from watcher.parse.lines import parse_line

    write_file_world(tmp_path, CHAINS)
    watcher = Watcher.open(load_settings(tmp_path / "watcher.toml"))
    now = time.time()
    watcher.apply([Hold("nexus", "ollama/glm-5:cloud", now + 60, "test", "alice")], now=now)
    sentences = watcher.apply([Tick()], now=now + 61)
    assert sentences[-1].startswith("nexus's hold on ollama/glm-5:cloud (by alice) ended"), \
        sentences

    primary = CHAINS["nexus"][0]
    def line(decision: str, tail: str) -> str:
        return ("[model-fallback/decision] model fallback decision: decision="
                f"{decision} requested={primary} candidate={primary} {tail}")

    fail = parse_line(line("candidate_failed", "reason=rate_limit next=x/y detail=429 slow"))
    ok = parse_line(line("candidate_succeeded", "reason=unknown next=none"))
    watcher.apply([to_event(fail)], now=now + 62)
    caplog.clear()
    with caplog.at_level("INFO", logger="watcher.shell.watcher"):
        watcher.apply([to_event(ok)], now=now + 63)
    said = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert any("served real traffic" in m and "inside its cooldown" in m for m in said), said
    watcher.intake.outbox.close()


def test_every_counter_rules_use_is_exported_at_zero_before_its_first_increment(
    tmp_path: Path,
) -> None:
    write_file_world(tmp_path, CHAINS)
    watcher = Watcher.open(load_settings(tmp_path / "watcher.toml"))
    text = watcher.metrics.exposition().decode()
    watcher.intake.outbox.close()
    for series in (
        'failover_watcher_alerts_failed_total{event="FALLBACK_FIRED"} 0.0',
        'failover_watcher_alerts_dead_lettered_total{event="HARD_FAILURE"} 0.0',
        'failover_watcher_alerts_dropped_total{event="RECOVERY"} 0.0',
        'failover_watcher_alerts_suppressed_total{event="FALLBACK_FIRED",reason="dedup"} 0.0',
        'failover_watcher_clock_jumps_total{direction="forward"} 0.0',
        'failover_watcher_clock_jumps_total{direction="backward"} 0.0',
    ):
        assert series in text, series


def test_the_audit_names_who_ran_pin_hold_and_pin_set_and_keeps_the_note(
    world: Path,
) -> None:
    import getpass

    config = str(world / "watcher.toml")
    watcher = Watcher.open(load_settings(world / "watcher.toml"))
    assert main(["pin", "hold", "nexus", "ollama/glm-5:cloud", "--note", "maint",
                 "--config", config]) == 0
    watcher.apply([])
    assert main(["pin", "set", "hermes", "ollama/glm-5:cloud", "--config", config]) == 0
    watcher.apply([])
    watcher.intake.outbox.close()
    records = [json.loads(line) for line in
               (world / "state" / "audit.jsonl").read_text().splitlines()]
    overrides = [r for r in records if r.get("type") == "OPERATOR_OVERRIDE"]
    assert len(overrides) == 2, records
    first, second = (r["data"] for r in overrides)
    assert (first["actor"], first.get("note")) == (getpass.getuser(), "maint")
    assert second["actor"] == getpass.getuser()
    assert watcher.state.agents["hermes"].hold is not None
    assert watcher.state.agents["hermes"].hold.by == getpass.getuser()


def _audited_world(world: Path) -> tuple[Path, Watcher]:
    """A world whose audit log has a few records, written by a real daemon step."""
    config = str(world / "watcher.toml")
    watcher = Watcher.open(load_settings(world / "watcher.toml"))
    for model in ("ollama/glm-5:cloud", "deepseek/deepseek-v4-flash", "ollama/glm-5:cloud"):
        assert main(["pin", "set", "nexus", model, "--config", config]) == 0
        watcher.apply([])
    watcher.apply([])  # the snapshot now anchors the last record
    return world / "state" / "audit.jsonl", watcher


def test_deleting_the_last_audit_records_and_the_head_is_caught_with_the_state_dir(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, watcher = _audited_world(world)
    watcher.intake.outbox.close()
    state = str(world / "state")
    assert main(["audit", "verify", "--state-dir", state]) == 0
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:-2]))
    (world / "state" / "audit.jsonl.head").unlink()
    capsys.readouterr()
    assert main(["audit", "verify", "--state-dir", state]) == 1
    assert "records at the end were deleted" in capsys.readouterr().out
    # --file alone cannot prove the end, and says so instead of a bare OK
    assert main(["audit", "verify", "--file", str(log)]) == 0
    assert "cannot be detected" in capsys.readouterr().out

    log.write_text("")  # an emptied log
    assert main(["audit", "verify", "--state-dir", state]) == 1


def test_a_tampered_audit_log_gets_its_own_card_and_a_warning(
    world: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log, watcher = _audited_world(world)
    watcher.intake.outbox.close()
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:-1]))
    (world / "state" / "audit.jsonl.head").unlink()
    with caplog.at_level("WARNING", logger="watcher.shell.watcher"):
        again = Watcher.open(load_settings(world / "watcher.toml"))
    assert any("did not verify and was set aside" in r.getMessage() for r in caplog.records)
    cards = again.intake.outbox.cards()
    assert [c.alert.type.value for c in cards][-1:] == ["AUDIT_TAMPERED"], cards
    # at start-up the anchor is the last record durable before the last snapshot, so the
    # missing head is what gives this deletion away
    assert "head file is missing" in (cards[-1].alert.detail or "")
    assert cards[-1].alert.extra["set_aside_as"].startswith("audit.jsonl.broken-")
    again.intake.outbox.close()


def test_chains_changed_while_stopped_are_adopted_at_start_up(tmp_path: Path) -> None:
    """The start-up apply runs inside the Watcher's constructor, before the loop has
    wired the probe scheduler: it must not trip over what is not wired yet."""
    write_file_world(tmp_path, CHAINS)
    first = Watcher.open(load_settings(tmp_path / "watcher.toml"))
    first.apply([])
    first.intake.outbox.close()
    fewer = {"nexus": CHAINS["nexus"][:2]}
    write_file_world(tmp_path, fewer)  # openclaw.json edited while the daemon was down
    again = Watcher.open(load_settings(tmp_path / "watcher.toml"))
    assert dict(again.state.chains) == {"nexus": tuple(fewer["nexus"])}
    assert set(json.loads((tmp_path / "state" / "fallback-state.json").read_text())["agents"]) \
        == {"nexus"}
    again.intake.outbox.close()


def test_the_readme_says_what_the_parser_and_the_bootstrap_really_do() -> None:
    """Small notes: the README's line cut and the packages."""
    from watcher.parse.lines import MAX_LINE_CHARS

    root = Path(__file__).resolve().parents[2]
    readme = " ".join((root / "README.md").read_text().split())
    assert MAX_LINE_CHARS == 64 * 1024 and "over 64 Ki characters are cut" in readme
    assert "256 KiB of a message's bytes" in readme  # what the byte-level guard reads
    packages = re.search(r"^SYSTEM_PACKAGES=\((.*)\)$",
                         (root / "scripts" / "bootstrap").read_text(), flags=re.M)
    assert packages is not None and "util-linux" in packages.group(1).split()
