"""``failover-watcher classify`` runs the production parser and taxonomy like fail2ban-regex."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.parse.vectors import VECTOR_DIR
from watcher.classify.taxonomy import FailureClass
from watcher.cli import main
from watcher.parse.records import Decision

SAMPLE = Path(__file__).resolve().parents[2] / "watcher" / "samples" / "gateway-sample.log"


def _json_run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["classify", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _contract_lines() -> list[str]:
    text = (VECTOR_DIR / "contract.log").read_text(encoding="utf-8")
    return [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def test_every_contract_sample_line_is_read_and_classified(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "contract.log"
    log.write_text("\n".join(_contract_lines()) + "\n", encoding="utf-8")
    out = _json_run(capsys, str(log))
    assert out["lines"] == {"total": 12, "records": 12, "chatter": 0, "unparsed": 0}
    assert out["decisions"]["candidate_failed"]["lines"] == 7
    assert out["decisions"]["candidate_succeeded"]["lines"] == 2
    assert out["decisions"]["skip_candidate"]["lines"] == 1
    assert out["decisions"]["probe_cooldown_candidate"]["lines"] == 1
    classes = {k: v["lines"] for k, v in out["classes"].items() if v["lines"]}
    assert classes == {
        "auth_permanent": 1,
        "timeout": 1,
        "model_not_found": 1,
        "throttle": 2,
        "server_error": 1,
        "overloaded": 1,
        "gateway_local": 1,
        "none": 3,
    }
    assert out["lane_hints"] == {"lines": 1, "agents": {"ops": 1}}


def test_bundled_sample_shows_classes_suppressed_events_lanes_and_the_unparsed_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _json_run(capsys, str(SAMPLE))
    assert out["lines"]["unparsed"] == 1 and out["unparsed_omitted"] == 0
    assert out["unparsed"][0]["why"].startswith("missing")
    assert out["classes"]["auth"] == {"lines": 1, "events": 13}
    assert out["classes"]["throttle"]["lines"] >= 3
    assert out["classes"]["gateway_local"]["lines"] >= 2
    assert out["chain_stopped"] == 1
    assert set(out["lane_hints"]["agents"]) == {"ops", "coder", "research"}
    assert out["lines"]["chatter"] > out["lines"]["records"] // 2


def test_human_report_names_classes_decisions_and_unparsed_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["classify", str(SAMPLE)]) == 0
    text = capsys.readouterr().out
    for needle in (
        "Failure classes:",
        "throttle",
        "gateway_local",
        "candidate_failed",
        "(21 events)",
        "Unparsed: 1 line",
        "line 42:",
        "chatter ignored",
        "Lane hints: 3",
    ):
        assert needle in text, needle


def test_json_shape_is_stable(capsys: pytest.CaptureFixture[str]) -> None:
    out = _json_run(capsys, "no fallback here, just chatter")
    assert set(out) == {
        "taxonomy_version",
        "source",
        "lines",
        "decisions",
        "classes",
        "signatures",
        "chain_stopped",
        "lane_hints",
        "plugin",
        "unparsed",
        "unparsed_omitted",
    }
    assert set(out["decisions"]) == {d.value for d in Decision}
    assert set(out["classes"]) == {c.value for c in FailureClass} | {"none"}
    assert out["source"] == "text"
    assert out["lines"] == {"total": 1, "records": 0, "chatter": 1, "unparsed": 0}


def test_literal_line_is_classified(capsys: pytest.CaptureFixture[str]) -> None:
    line = (
        "[model-fallback/decision] model fallback decision: decision=candidate_failed "
        "requested=a/b candidate=a/b reason=unknown next=none detail=429 slow down"
    )
    out = _json_run(capsys, line)
    assert out["classes"]["throttle"]["lines"] == 1
    assert out["signatures"] == {"status.429": 1}


def test_unparsed_list_is_bounded_but_counted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "bad.log"
    log.write_bytes(b"[model-fallback/decision] model fallback deci\n" * 50)
    out = _json_run(capsys, str(log), "--max-unparsed", "3")
    assert out["lines"]["unparsed"] == 50
    assert len(out["unparsed"]) == 3 and out["unparsed_omitted"] == 47


def test_stdin_is_read_through_the_console_script() -> None:
    data = SAMPLE.read_bytes() + b"\xff\xfe binary junk\n"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from watcher.cli import main; sys.exit(main())",
            "classify",
            "-",
            "--json",
        ],
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["source"] == "-"
    assert out["lines"]["total"] == 49


def test_missing_file_exits_2_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "/nonexistent/gateway.log"]) == 2
    err = capsys.readouterr().err
    assert "no such file: /nonexistent/gateway.log" in err


def test_directory_exits_2_and_points_to_replay(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["classify", str(tmp_path)]) == 2
    assert "replay" in capsys.readouterr().err
