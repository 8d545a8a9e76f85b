"""Dedup that counts: nothing is suppressed without being counted, shown and audited."""

from __future__ import annotations

import json

from watcher.alerts.dedup import Deduplicator, DedupPolicy, SuppressionReason
from watcher.core.transitions import NEVER_SUPPRESSED, TransitionType

from .conftest import T0, alert

T = TransitionType


def test_a_repeat_inside_the_window_is_suppressed_and_counted_for_the_next_footer() -> None:
    dedup = Deduplicator()
    first = dedup.decide(alert(), T0)[0]
    assert first.send and first.suppressed_since_last == 0
    for i in range(1, 4):
        v = dedup.decide(alert(), T0 + 10 * i)[0]
        assert not v.send and v.reason is SuppressionReason.DEDUP
    assert dedup.pending(alert().dedup_key) == 3
    after = dedup.decide(alert(), T0 + 60)[0]
    assert after.send and after.suppressed_since_last == 3
    assert dedup.pending(alert().dedup_key) == 0


def test_the_window_runs_from_the_last_sent_card_so_a_steady_stream_still_surfaces() -> None:
    dedup = Deduplicator(DedupPolicy(window_s=60))
    sent = [t for t in range(0, 600, 10) if dedup.decide(alert(), T0 + t)[0].send]
    assert sent == [0, 60, 120, 180, 240, 300, 360, 420, 480, 540]


def test_different_keys_do_not_suppress_each_other() -> None:
    dedup = Deduplicator()
    assert dedup.decide(alert(agent="a"), T0)[0].send
    assert dedup.decide(alert(agent="b"), T0)[0].send
    assert dedup.decide(alert(failure_class="timeout", agent="a"), T0)[0].send
    assert dedup.decide(alert(T.RECOVERY, agent="a"), T0)[0].send


def test_never_suppressed_types_always_go_out() -> None:
    dedup = Deduplicator()
    for kind in NEVER_SUPPRESSED:
        for i in range(3):
            assert dedup.decide(alert(kind), T0 + i)[0].send, kind


def test_catch_up_alerts_are_counted_not_announced_whatever_their_type() -> None:
    dedup = Deduplicator()
    v = dedup.decide(alert(T.HARD_FAILURE, catch_up=True), T0)[0]
    assert not v.send and v.reason is SuppressionReason.CATCH_UP
    key = alert(T.HARD_FAILURE).dedup_key
    assert dedup.suppressed_last_hour(T0) == {key: {"catch_up": 1}}


def test_flips_of_a_flapping_agent_are_suppressed_as_flapping() -> None:
    dedup = Deduplicator()
    flapping = {"orchestrator"}
    start = dedup.decide(alert(T.FLAPPING_START), T0, flapping)[0]
    assert start.send
    for i in range(6):
        kind = T.FALLBACK_FIRED if i % 2 == 0 else T.RECOVERY
        v = dedup.decide(alert(kind), T0 + 120 * (i + 1), flapping)[0]
        assert not v.send and v.reason is SuppressionReason.FLAPPING
    # Another agent is not hidden by orchestrator's flap.
    assert dedup.decide(alert(agent="research"), T0 + 1000, flapping)[0].send
    # A grouped transition is hidden only if every agent on it is flapping.
    group = alert(agent="")
    group = type(group)(
        **{**group.to_json(), "type": T.FALLBACK_FIRED, "agents": ("orchestrator", "vision")}
    )
    assert dedup.decide(group, T0 + 1000, flapping)[0].send


def test_a_muted_key_is_suppressed_until_the_mute_expires() -> None:
    dedup = Deduplicator()
    dedup.mute(alert().dedup_key, until=T0 + 300)
    v = dedup.decide(alert(), T0)[0]
    assert not v.send and v.reason is SuppressionReason.MUTED
    assert dedup.decide(alert(), T0 + 301)[0].send
    assert dedup.mutes(T0 + 301) == {}


def test_suppression_doing_more_work_than_alerting_raises_one_dominance_card() -> None:
    dedup = Deduplicator(DedupPolicy(dominance_min_suppressed=10, dominance_ratio=2.0))
    dominant = []
    for i in range(40):
        for v in dedup.decide(alert(agent=f"agent-{i % 2}"), T0 + i):
            if v.alert.type is T.SUPPRESSION_DOMINANT:
                dominant.append((i, v))
    # 2 sent; the 10th suppression (i=11) makes suppressed >= 10 and > 2 × sent.
    assert [i for i, _ in dominant] == [11]
    card = dominant[0][1]
    assert card.send
    assert card.alert.extra["suppressed_last_hour"] == "10"
    assert card.alert.extra["sent_last_hour"] == "2"
    assert card.alert.detail is not None
    assert "5 × FALLBACK_FIRED|agent-0|" in card.alert.detail
    assert "(dedup 5)" in card.alert.detail


def test_the_dominance_card_has_its_own_longer_window() -> None:
    dedup = Deduplicator(DedupPolicy(dominance_window_s=3600))
    times = []
    for i in range(0, 7200, 5):
        for v in dedup.decide(alert(), T0 + i):
            if v.alert.type is T.SUPPRESSION_DOMINANT:
                times.append(i)
    assert len(times) == 2 and times[1] - times[0] >= 3600


def test_catch_up_replays_do_not_count_towards_dominance() -> None:
    dedup = Deduplicator()
    kinds = [v.alert.type for i in range(50) for v in dedup.decide(alert(catch_up=True), T0 + i)]
    assert T.SUPPRESSION_DOMINANT not in kinds


def test_the_hour_record_forgets_what_is_older_than_an_hour() -> None:
    dedup = Deduplicator()
    dedup.decide(alert(), T0)
    dedup.decide(alert(), T0 + 1)
    assert dedup.suppressed_last_hour(T0 + 10) == {alert().dedup_key: {"dedup": 1}}
    dedup.decide(alert(agent="other"), T0 + 4000)
    assert dedup.suppressed_last_hour(T0 + 4000) == {}


def test_memory_stays_bounded_under_a_flood_of_distinct_keys() -> None:
    dedup = Deduplicator(DedupPolicy(max_keys=100, max_keys_per_bucket=20))
    for i in range(5000):
        dedup.decide(alert(agent=f"a{i}", catch_up=True), T0 + i * 0.01)
    state = dedup.to_json()
    assert len(state["keys"]) <= 100
    per_bucket = [len(b["suppressed"]) for b in state["buckets"].values()]
    assert max(per_bucket) <= 21  # 20 keys + "(other keys)"
    total = sum(sum(r.values()) for r in dedup.suppressed_last_hour(T0 + 50).values())
    assert total == 5000  # nothing uncounted


def test_state_survives_a_restart_through_json() -> None:
    dedup = Deduplicator()
    dedup.decide(alert(), T0)
    dedup.decide(alert(), T0 + 5)
    dedup.decide(alert(), T0 + 6)
    dedup.mute("k", T0 + 999)
    restored = Deduplicator.from_json(json.loads(json.dumps(dedup.to_json())))
    assert restored.to_json() == dedup.to_json()
    # Still inside the window after the restart, and the footer count carries over.
    assert not restored.decide(alert(), T0 + 30)[0].send
    v = restored.decide(alert(), T0 + 61)[0]
    assert v.send and v.suppressed_since_last == 3
