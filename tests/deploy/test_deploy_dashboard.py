"""deploy/grafana: every panel's query, proved on a real Prometheus scraping a live
watcher through an incident. None may be invalid, none always empty."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.rigs.daemon_rig import DaemonRig
from tests.rigs.servers import Prometheus
from tests.rigs.wait import wait_until
from watcher.demo import PRIMARY

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "failover-watcher.json"
THROTTLE = (
    "[model-fallback/decision] model fallback decision: decision=candidate_failed "
    f"requested={PRIMARY} candidate={PRIMARY} reason=rate_limit "
    "next=deepseek/deepseek-v4-flash detail=429 rate_limit_exceeded"
)
# What Grafana puts in for its variables, on this test's 1 s scrape.
GRAFANA_VARIABLES = {"$instance": ".*", "$__rate_interval": "15s", "$__range": "5m"}


def _dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expression) for every target of every panel, variables put in."""
    out = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            out.append((panel["title"], expr))
    return out


def problem(prometheus: Prometheus, expr: str) -> str | None:
    """Why ``expr`` fails as a panel query now (None: it answers with data)."""
    answer = prometheus.query(expr)
    if answer.get("status") != "success":
        return f"invalid: {answer.get('error')}"
    if not answer["data"]["result"]:
        return "empty"
    return None


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[DaemonRig, Prometheus]]:
    rig = DaemonRig(tmp_path / "watcher")
    prometheus: Prometheus | None = None
    try:
        rig.start()
        port = int((rig.state / "metrics.port").read_text())
        prometheus = Prometheus(tmp_path, scrape=[f"127.0.0.1:{port}"])
        prometheus.start()
        yield rig, prometheus
    finally:
        if prometheus is not None:
            prometheus.stop()
        rig.close()


def test_the_dashboard_is_a_grafana_model_on_a_datasource_variable() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "failover-watcher" and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "instance"} <= variables
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert 'instance=~"$instance"' in target["expr"], panel["title"]
    titles = " | ".join(p["title"] for p in dashboard["panels"]).lower()
    for wanted in ("in fallback", "cooldown", "suppressed", "probe", "journal lag", "outbox"):
        assert wanted in titles


def test_every_panel_query_answers_on_a_real_prometheus_scraping_a_live_watcher(
    world: tuple[DaemonRig, Prometheus],
) -> None:
    rig, prometheus = world
    wait_until(
        lambda: problem(prometheus, 'up{job="failover-watcher"} == 1') is None,
        timeout=30,
        what="the first scrape",
    )
    rig.journal.append(THROTTLE)  # an incident: a fallback, a cooldown, cards, probes
    rig.journal.flush()
    wait_until(lambda: rig.pins()["agents"].get("nexus", {}).get("in_fallback"), what="pin")

    pending = dict.fromkeys(queries(_dashboard()), "not asked yet")

    def all_answer() -> bool:
        for key in list(pending):
            why = problem(prometheus, key[1])
            if why is None:
                del pending[key]
            else:
                pending[key] = why
        return not pending

    try:
        wait_until(all_answer, timeout=60, what="every panel query to answer")
    except AssertionError:
        raise AssertionError(f"panel queries without an answer: {pending}") from None

    # The checker itself tells the failures apart (so the loop above could fail).
    assert problem(prometheus, "failover_watcher_in_fallback{") is not None
    assert problem(prometheus, "failover_watcher_in_fallbak") == "empty"
    assert rig.stop() == 0
