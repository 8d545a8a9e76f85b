"""Production hardening (issue 15): each test reproduces what an operator hit."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.config import load_settings
from watcher.daemon import Watcher
from watcher.testing.file_world import write_file_world

CHAINS = {
    "nexus": ["ollama/glm-5.1:cloud", "deepseek/deepseek-v4-flash", "ollama/glm-5:cloud"],
    "hermes": ["ollama/kimi-k2.5:cloud", "ollama/glm-5.1:cloud", "ollama/glm-5:cloud"],
}
SERVICE_USER = "nobody"  # stands in for failover-watcher: any non-root user will do
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root (CI is)")


@pytest.fixture
def world() -> Iterator[Path]:
    """A watcher's files in a directory other users can reach (pytest's tmp_path sits
    under a 0700 directory of root's)."""
    root = Path(tempfile.mkdtemp(prefix="fw-hardening-"))
    root.chmod(0o755)
    try:
        write_file_world(root, CHAINS)
        Watcher(load_settings(root / "watcher.toml")).intake.outbox.close()  # first pin file
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


@needs_root
def test_pin_run_as_root_keeps_the_service_users_owner_group_and_mode(world: Path) -> None:
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


@needs_root
def test_pin_refuses_to_take_over_a_file_another_user_owns(world: Path) -> None:
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
