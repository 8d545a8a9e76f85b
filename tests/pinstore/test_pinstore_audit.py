"""The hash-chained audit log: appends, reopening, and verify catching every tampering."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.pinstore.conftest import PYTHON, ROOT
from watcher.audit.log import (
    CHAIN_RESTARTED,
    GENESIS,
    TAIL_REPAIRED,
    AuditLog,
    AuditLogBroken,
    verify,
)
from watcher.cli import audit as audit_cli

NOW = 1_779_287_880.0


def filled(tmp_path: Path, n: int = 6) -> Path:
    log = AuditLog(tmp_path / "audit.jsonl", clock=lambda: NOW)
    with log.batch():
        for i in range(n):
            log.append(
                "FALLBACK_FIRED",
                {
                    "agents": ["orchestrator"],
                    "before": "ollama/kimi-k2.5:cloud",
                    "after": "deepseek/deepseek-v4-flash",
                    "cause": "throttle",
                    "evidence": {"journal_cursor": f"s=abc;i={i}"},
                    "policy_version": "1",
                    "actor": "watcher",
                },
                ts=NOW + i,
            )
    return log.path


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def rewrite(path: Path, new_lines: list[str]) -> None:
    path.write_text("".join(new_lines))


def cli(*argv: str) -> tuple[int, str]:
    """Run ``failover-watcher audit ...`` through the subcommand's own parser."""
    parser = argparse.ArgumentParser(prog="failover-watcher")
    audit_cli.register(parser.add_subparsers())
    args = parser.parse_args(["audit", *argv])
    return args.func(args), ""


def test_records_chain_from_genesis_and_verify_passes(tmp_path: Path) -> None:
    path = filled(tmp_path)
    records = [json.loads(line) for line in lines(path)]
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[0]["prev"] == GENESIS
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(records))
    assert records[0]["ts"] == "2026-05-20T14:38:00Z"
    result = verify(path)
    assert result.ok and result.records == 6 and result.head_seq == 6
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    path = filled(tmp_path, 3)
    log = AuditLog(path)
    assert log.seq == 3
    log.append("RECOVERY", {"agents": ["orchestrator"]})
    assert verify(path).ok and verify(path).records == 4


def test_verify_catches_an_edited_record(tmp_path: Path) -> None:
    path = filled(tmp_path)
    text = lines(path)
    text[2] = text[2].replace("deepseek/deepseek-v4-flash", "ollama/qwen3:8b")
    rewrite(path, text)
    result = verify(path)
    assert not result.ok and result.bad_line == 3
    assert "edited" in (result.problem or "")


def test_verify_catches_an_edit_that_recomputes_the_records_own_hash(tmp_path: Path) -> None:
    from watcher.audit.log import canonical, record_hash

    path = filled(tmp_path)
    text = lines(path)
    rec = json.loads(text[2])
    rec["data"]["after"] = "ollama/qwen3:8b"
    rec["hash"] = record_hash(rec)
    text[2] = canonical(rec) + "\n"
    rewrite(path, text)
    result = verify(path)
    assert not result.ok and result.bad_line == 4, "the next record no longer follows it"


def test_verify_catches_a_deleted_record(tmp_path: Path) -> None:
    path = filled(tmp_path)
    text = lines(path)
    del text[1]
    rewrite(path, text)
    result = verify(path)
    assert not result.ok and result.bad_line == 2
    assert "deleted, inserted or moved" in (result.problem or "")


def test_verify_catches_reordered_records(tmp_path: Path) -> None:
    path = filled(tmp_path)
    text = lines(path)
    text[3], text[4] = text[4], text[3]
    rewrite(path, text)
    result = verify(path)
    assert not result.ok and result.bad_line == 4


def test_verify_catches_an_inserted_record(tmp_path: Path) -> None:
    path = filled(tmp_path)
    text = lines(path)
    text.insert(2, text[1])
    rewrite(path, text)
    assert verify(path).bad_line == 3


def test_verify_catches_records_deleted_at_the_end(tmp_path: Path) -> None:
    path = filled(tmp_path)
    rewrite(path, lines(path)[:-2])
    result = verify(path)
    assert not result.ok and result.bad_line is None
    assert "deleted" in (result.problem or "")
    with pytest.raises(AuditLogBroken):
        AuditLog(path)


def test_verify_catches_a_reformatted_record(tmp_path: Path) -> None:
    path = filled(tmp_path)
    text = lines(path)
    text[0] = json.dumps(json.loads(text[0]), indent=1).replace("\n", " ") + "\n"
    rewrite(path, text)
    assert verify(path).bad_line == 1


def test_torn_last_line_from_a_crash_is_dropped_and_the_drop_recorded(tmp_path: Path) -> None:
    path = filled(tmp_path, 3)
    with path.open("a") as fh:
        fh.write('{"data":{"half')
    assert verify(path).bad_line == 4
    log = AuditLog(path)
    assert log.seq == 4
    last = json.loads(lines(path)[-1])
    assert last["type"] == TAIL_REPAIRED
    assert last["data"]["dropped_text"] == '{"data":{"half'
    assert verify(path).ok


def test_damaged_log_is_set_aside_and_a_new_chain_started(tmp_path: Path) -> None:
    path = filled(tmp_path)
    text = lines(path)
    del text[2]
    rewrite(path, text)
    log, problem = AuditLog.open_or_restart(path, clock=lambda: NOW)
    assert problem is not None and "line 3" in problem
    aside = tmp_path / "audit.jsonl.broken-20260520T143800Z"
    assert aside.read_text() == "".join(text), "the damaged evidence is kept as it was"
    first = json.loads(lines(path)[0])
    assert first["type"] == CHAIN_RESTARTED and first["seq"] == 1
    assert first["data"]["broken_file"] == aside.name
    assert verify(path).ok and log.seq == 1


def test_audit_verify_command_exits_0_ok_1_broken_2_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = filled(tmp_path)
    assert cli("verify", "--state-dir", str(tmp_path))[0] == 0
    assert "audit log OK: 6 records" in capsys.readouterr().out
    text = lines(path)
    text[3], text[4] = text[4], text[3]
    rewrite(path, text)
    assert cli("verify", "--file", str(path))[0] == 1
    assert "BROKEN at line 4" in capsys.readouterr().out
    assert cli("verify", "--file", str(tmp_path / "nope.jsonl"))[0] == 2
    assert cli("verify", "--json", "--file", str(path))[0] == 1
    assert json.loads(capsys.readouterr().out)["bad_line"] == 4


def test_audit_verify_finds_the_log_through_the_watcher_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "state").mkdir()
    filled(tmp_path / "state")
    config = tmp_path / "watcher.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n')
    assert cli("verify", "--config", str(config))[0] == 0
    assert "audit log OK: 6 records" in capsys.readouterr().out
    config.write_text('state_dir = "relative/path"\n[policy]\nrise = 0\n')
    assert cli("verify", "--config", str(config))[0] == 1
    assert "configuration is invalid" in capsys.readouterr().err


def test_audit_verify_runs_as_a_command_with_the_state_dir_from_the_environment(
    tmp_path: Path,
) -> None:
    filled(tmp_path)
    code = "import sys; from watcher.cli import main; sys.exit(main())"  # failover-watcher
    env = {**os.environ, "FAILOVER_WATCHER_STATE_DIR": str(tmp_path)}
    ok = subprocess.run(
        [PYTHON, "-c", code, "audit", "verify"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "audit.jsonl").write_text("not json\n")
    broken = subprocess.run(
        [PYTHON, "-c", code, "audit", "verify"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert broken.returncode == 1
    assert "line 1" in broken.stdout


def test_audit_tail_prints_the_last_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    filled(tmp_path)
    assert cli("tail", "-n", "2", "--state-dir", str(tmp_path))[0] == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[0].split()[:3] == ["5", "2026-05-20T14:38:04Z", "FALLBACK_FIRED"]
    assert "after=deepseek/deepseek-v4-flash" in out[1]
