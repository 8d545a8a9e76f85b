"""deploy/prometheus: the rules load in Debian's promtool, and their unit tests pass
and cover every alert, firing and not firing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.rigs.servers import binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = DEPLOY / "failover-watcher.rules.yml"
TESTS = DEPLOY / "failover-watcher.rules.test.yml"


def _promtool(*args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _alerts() -> list[str]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules() -> None:
    done = _promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in done.stdout


def test_promtool_unit_tests_pass() -> None:
    done = _promtool("test", "rules", TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_is_tested_both_firing_and_not_firing() -> None:
    cases: dict[str, set[bool]] = {}
    for test in yaml.safe_load(TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    alerts = _alerts()
    assert len(alerts) >= 10
    missing = {a: sorted(cases.get(a, set())) for a in alerts if cases.get(a) != {True, False}}
    assert not missing, f"alerts without both a firing and a quiet case: {missing}"
    assert not set(cases) - set(alerts), "a test names an alert the rules do not have"


def test_the_unit_tests_catch_a_changed_threshold(tmp_path: Path) -> None:
    """The tests bite: a rule made blind (the lag threshold raised past any input)
    fails them."""
    for path in (RULES, TESTS):
        shutil.copy(path, tmp_path / path.name)
    broken = tmp_path / RULES.name
    text = broken.read_text()
    assert "failover_watcher_journal_lag_seconds > 60" in text
    broken.write_text(text.replace("journal_lag_seconds > 60", "journal_lag_seconds > 6000"))
    done = _promtool("test", "rules", TESTS.name, cwd=tmp_path)
    assert done.returncode != 0
    assert "FailoverWatcherJournalLag" in done.stdout + done.stderr


def test_the_metrics_the_rules_read_pass_promtool_check_metrics() -> None:
    """Every name the rules use is one the watcher exports, in a form promtool accepts."""
    import re

    from watcher.alerts.dedup import SuppressionReason
    from watcher.core.transitions import TransitionType
    from watcher.support.metrics import Metrics

    metrics = Metrics()
    metrics.initialise((t.value for t in TransitionType), (r.value for r in SuppressionReason))
    text = metrics.exposition().decode()
    done = subprocess.run(
        [binary("promtool"), "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    exported = set(re.findall(r"^# TYPE (\S+)", text, flags=re.M))
    exported |= {f"{name}_total" for name in exported}
    used = set(re.findall(r"failover_watcher_[a-z_]+", RULES.read_text()))
    assert used and used <= exported, used - exported
