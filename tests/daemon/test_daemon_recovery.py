"""Recovery of effects a crash left pending, at the edges the SIGKILL soak rarely hits."""

from __future__ import annotations

import json
from pathlib import Path

from tests.rigs.file_world import write_file_world
from watcher.audit import log as audit
from watcher.config import load_settings
from watcher.core.events import Hold, Release
from watcher.shell.watcher import Watcher

CHAINS = {"nexus": ["ollama/glm-5.1:cloud", "deepseek/deepseek-v4-flash", "ollama/glm-5:cloud"]}


def _setup(tmp_path: Path) -> Path:
    return write_file_world(tmp_path, CHAINS)


def test_audit_records_pending_behind_a_torn_tail_are_all_written_on_restart(
    tmp_path: Path,
) -> None:
    config = _setup(tmp_path)
    first = Watcher.open(load_settings(config))
    first._carry_out = lambda pending, **_: None  # type: ignore[method-assign]  # dies here
    first.apply(
        [Hold("nexus", "ollama/glm-5:cloud", actor="alice"), Release("nexus", actor="alice")]
    )
    pending = json.loads((tmp_path / "state" / "core-state.json").read_text())["pending"]
    records = pending["audit"]
    assert len(records) >= 2
    # The crash landed the first record whole and tore the second one mid-write.
    first.audit.append(records[0]["type"], records[0]["data"])
    with (tmp_path / "state" / "audit.jsonl").open("a") as log:
        log.write('{"seq": 99, "type": "OPERATOR_OVERR')
    first.intake.outbox.close()

    second = Watcher.open(load_settings(config))
    second.intake.outbox.close()
    result = audit.verify(tmp_path / "state" / "audit.jsonl")
    assert result.ok, result.sentence()
    types = [
        json.loads(line)["type"]
        for line in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()
    ]
    assert audit.TAIL_REPAIRED in types
    landed = [t for t in types if t != audit.TAIL_REPAIRED]
    assert landed[-len(records) :] == [r["type"] for r in records]  # none lost, none twice


def test_a_pin_lock_held_past_the_timeout_delays_the_batch_but_loses_nothing(
    tmp_path: Path,
) -> None:
    """flock(1) waiters can keep the watcher off the lock for longer than its timeout;
    the daemon used to let filelock.Timeout kill the tail task (and exit 1)."""
    import subprocess
    import time

    config = _setup(tmp_path)
    watcher = Watcher.open(load_settings(config))
    watcher.pins._flock.timeout = 0.2  # the store's 10 s, shortened for the test
    lock = tmp_path / "state" / "fallback-state.json.lock"
    holder = subprocess.Popen(["flock", str(lock), "sleep", "0.8"])
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # wait until flock(1) really holds it
            if subprocess.run(["flock", "-n", str(lock), "true"]).returncode != 0:
                break
            time.sleep(0.01)
        watcher.apply([Hold("nexus", "ollama/glm-5:cloud", actor="alice")])
    finally:
        holder.wait(5)
    assert watcher.metrics.watcher.pin_lock_timeouts._value.get() >= 1
    pins = json.loads((tmp_path / "state" / "fallback-state.json").read_text())
    assert pins["agents"]["nexus"]["current_serving"] == "ollama/glm-5:cloud"
    watcher.intake.outbox.close()


def test_a_card_raised_before_a_flap_starts_in_the_same_batch_is_not_suppressed_as_flapping(
    tmp_path: Path,
) -> None:
    """The dedup's flap rule must see who was flapping right after the event that raised
    the card, not after the whole batch: otherwise batching (and, across a crash, where
    the kill fell) decides whether an early RECOVERY is sent."""
    from watcher.classify.evidence import to_event
    from watcher.parse.lines import parse_line

    config = _setup(tmp_path)
    with config.open("a") as fh:
        fh.write(
            "[policy]\nflap_full_scale = 8\nflap_high_pct = 50\nflap_low_pct = 25\n"
            "flap_bounce_s = 0\n"
        )
    primary, fallback = CHAINS["nexus"][0], CHAINS["nexus"][1]
    head = "[model-fallback/decision] model fallback decision: decision="
    fail = (
        f"{head}candidate_failed requested={primary} candidate={primary} "
        f"reason=server_error next={fallback} detail=503 upstream unavailable"
    )
    ok = (
        f"{head}candidate_succeeded requested={primary} candidate={primary} "
        "reason=unknown next=none"
    )
    watcher = Watcher.open(load_settings(config))
    seen: list[list[tuple[int, dict[str, object]]]] = []
    carry_out = watcher._carry_out

    def record(pending, **kw):  # type: ignore[no-untyped-def]
        seen.append(list(pending.alerts))
        carry_out(pending, **kw)

    watcher._carry_out = record  # type: ignore[method-assign]
    events = [to_event(parse_line(line)) for line in [fail, ok] * 4]
    watcher.apply([e for e in events if e is not None])
    alerts = [data for batch in seen for _, data in batch]
    types = [a["type"] for a in alerts]
    assert "FLAPPING_START" in types, types
    start = types.index("FLAPPING_START")
    assert "RECOVERY" in types[:start], types
    sent = [c.event for c in watcher.intake.outbox.cards()]
    assert "RECOVERY" in sent, sent  # raised before the flap: announced, not hidden
    watcher.intake.outbox.close()
