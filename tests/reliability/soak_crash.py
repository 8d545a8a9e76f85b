"""SIGKILL the real daemon at random points on a live journal; check nothing is lost or
repeated (DESIGN's "restart mid-stream" bar).

Run the long variant from the repo root::

    .venv/bin/python -m tests.reliability.soak_crash --kills 1000 --seed 1 [--keep DIR]

It prints progress lines (JSON, ``"progress"``) and a final JSON summary line, and exits
1 when any check failed. ``tests/reliability/test_reliability_crash.py`` runs the same
harness with a few kills in CI.

How it works. A seeded script of journal lines over the demo's agents and models
(outages, recoveries, a paid fallback serving and failing, a throttle, chains running
out, chain-stopped lines, lane hints and chatter, plus two-hour-old history that must
stay silent) is cut into chunks. Two ``DaemonRig`` worlds get the same script:

- the reference: one daemon, never interrupted, fed chunk after chunk;
- the crash run: the daemon is started, chunks are fed while it runs (or just before
  it starts), and it is SIGKILLed after a random delay: sometimes while Python still
  imports, sometimes in start-up recovery, mostly within a few hundred milliseconds
  of a batch landing (mid-batch, mid-send). Then it is started again.

After every kill: the pin file parses and validates (``watcher.pins.schema`` and the real
``jq -e .``), and the audit chain verifies. At the end the last daemon drains and
gets SIGTERM, and the crash run must match the reference: the projection of the
final core state that does not depend on wall time, the ordered card identities
(type, agents, from, to, class), the audit record types; every card delivered
exactly once to the fake Bot API (a resend marked "possibly a repeat" counts as a
duplicate), no card for the old history.

Why the policy in ``config_text`` is what it is: the two runs take very different
wall time, so every rule that ages with the clock must land on the same side in
both. Cooldowns are longer than any run (a throttled model stays down), the lane-hint
window is a day, probes are
off (a probe's answer would race the script), the dedup window is a day (a repeated
key is always suppressed) and the dominance card is off. Flap detection is off unless
``--flap-detection``: then its window is a day and bounce detection off, so the score
only depends on the number of changes. It is off by default so the long run keeps the
card stream of the first thousand-kill run comparable. The daemon used to take "who is
flapping" from the state after the whole batch, so a RECOVERY followed in the same batch
by FLAPPING_START was suppressed or not depending on batching (``--kills 6 --seed 3
--flap-detection`` showed it); ``apply`` now records that set with each pending alert,
and CI runs a flap-detection variant too.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tests.rigs.daemon_rig import DaemonRig, wait_until
from watcher.alerts.telegram import REPEAT_NOTE
from watcher.audit import log as audit
from watcher.core.state import from_json
from watcher.core.transitions import Alert
from watcher.demo import CHAINS, PAID, PRIMARY
from watcher.fakes.botapi import FakeBotApi
from watcher.fakes.journal import JournalEntry
from watcher.pins import schema as pinfile

GLM5 = "ollama/glm-5:cloud"
GEMMA = "ollama/gemma4:31b-cloud"
KIMI = "ollama/kimi-k2.5:cloud"
MODELS = (PRIMARY, PAID, GLM5, GEMMA, KIMI)
DECISION = "[model-fallback/decision] model fallback decision: "
HISTORY_AGE_S = 7200.0  # far beyond the catch-up age: replayed silently


def config_text(root: Path, journal_spec: str, bot: FakeBotApi, *, flap: bool = False) -> str:
    """The rig's watcher.toml: the demo's, made deterministic (see the module doc)."""
    return f"""\
state_dir = "{root / "state"}"
gateway_config = "{root / "openclaw.json"}"
tick_interval_s = 1
log_level = "INFO"

[journal]
source = "{journal_spec}"
start_at = "head"
catch_up_age_s = 600
max_batch = 40

[policy]
cooldown_base_s = 200000
cooldown_cap_s = 200000
jitter_fraction = 0
flap_detection = {"true" if flap else "false"}
flap_window_s = 86400
flap_bounce_s = 0
# A day, so it lands the same in both runs: it is the window in which a lane line
# names a failure's agent, and in which a timeout ending after a real success is
# not counted. At its 30 s default, the crash run's spread-out journal times counted
# a timeout the reference ignored (one PAID_PROVIDER_FAILURE card more, seen with
# --kills 300 --seed 20260520 at 82ba16f and later).
lane_hint_window_s = 86400

[providers.deepseek]
paid = true
credential = "env:DEMO_DEEPSEEK_KEY"

[probes]
enabled = false

[alerts]
bot_token = "env:DEMO_BOT_TOKEN"
chat_id = 4242
base_url = "{bot.base_url}"
private_per_second = 200
dedup_window_s = 86400
dominance_min_suppressed = 1000000
backoff_base_s = 0.2
backoff_max_s = 1

[metrics]
port = 0

[plugin]
required = false  # no gateway here: nothing for the pin to steer
"""


# -- the input script ------------------------------------------------------------------


def failed(requested: str, candidate: str, reason: str, detail: str, nxt: str | None) -> str:
    return (
        f"{DECISION}decision=candidate_failed requested={requested} candidate={candidate} "
        f"reason={reason} next={nxt or 'none'} detail={detail}"
    )


def succeeded(requested: str, candidate: str) -> str:
    return (
        f"{DECISION}decision=candidate_succeeded requested={requested} candidate={candidate} "
        "reason=unknown next=none"
    )


def lane(agent: str, error: str) -> str:
    return (
        f"[diagnostic] lane task error: lane=session:agent:{agent}:main durationMs=1200 "
        f'error="{error}" errorName=FailoverError'
    )


def chain_stopped(candidate: str, reason: str) -> str:
    return (
        "[model-fallback/decision] model fallback chain stopped: "
        f"reason={reason} candidate={candidate}"
    )


def _agents_with(model: str) -> list[str]:
    return sorted(a for a, chain in CHAINS.items() if model in chain)


def _next_in(agent: str, model: str) -> str | None:
    chain = CHAINS[agent]
    i = chain.index(model)
    return chain[i + 1] if i + 1 < len(chain) else None


def _noise(rng: random.Random, n: int) -> str:
    agent = rng.choice(sorted(CHAINS))
    return rng.choice(
        [
            f"[gateway] agent {agent} turn {n} finished in {rng.randint(200, 9000)}ms",
            f"[ws] client connected id={n}",
            f"{DECISION}decision=skip_candidate requested={PRIMARY} candidate={GEMMA} "
            f"reason=rate_limit next={GLM5} detail=Provider ollama is in cooldown",
            f"{DECISION}decision=probe_cooldown_candidate requested={PRIMARY} "
            f"candidate={PRIMARY} reason=rate_limit next={PAID}",
            f"{DECISION}decision=sideways requested=a/b candidate=c/d",  # near miss
            f"\x1b[90m[agent/{agent}]\x1b[39m tool call {n} ok",
        ]
    )


def _episode(rng: random.Random) -> list[str]:
    kind = rng.choices(
        ["outage", "heal", "paid", "exhaust", "throttle", "stopped"],
        weights=[34, 30, 14, 8, 4, 10],
    )[0]
    if kind == "outage":
        model = rng.choice([PRIMARY, PRIMARY, KIMI, GEMMA, PAID, GLM5])
        agent = rng.choice(_agents_with(model))
        nxt = _next_in(agent, model)
        lines = [
            lane(agent, "500 Internal Server Error"),
            failed(CHAINS[agent][0], model, "server_error", "500 Internal Server Error", nxt),
        ]
        if nxt == PAID and rng.random() < 0.7:
            lines.append(succeeded(CHAINS[agent][0], PAID))
        return lines
    if kind == "heal":
        model = rng.choice(MODELS)
        agent = rng.choice(_agents_with(model))
        return [succeeded(CHAINS[agent][0], model)]
    if kind == "paid":
        if rng.random() < 0.5:
            return [succeeded(PRIMARY, PAID)]
        return [
            lane("nexus", "504 Gateway Timeout"),
            failed(PRIMARY, PAID, "timeout", "504 Gateway Timeout", GLM5),
        ]
    if kind == "exhaust":
        agent = rng.choice(sorted(CHAINS))
        return [
            lane(agent, "503 The server is overloaded"),
            failed(CHAINS[agent][0], GLM5, "server_error", "503 upstream connect error", None),
            chain_stopped(GLM5, "server_error"),
        ]
    if kind == "throttle":  # a cooldown longer than any run: GEMMA stays down from here on
        return [
            lane("george", "429 Too Many Requests"),
            failed(PRIMARY, GEMMA, "rate_limit", "429 rate_limit_exceeded retry-after 30", GLM5),
        ]
    return [chain_stopped(rng.choice(MODELS), rng.choice(["timeout", "overloaded"]))]


@dataclass(frozen=True)
class Script:
    """What both runs are fed: old history (written first), then live chunks."""

    seed: int
    history: tuple[JournalEntry, ...]
    chunks: tuple[tuple[str, ...], ...]

    @property
    def lines(self) -> int:
        return len(self.history) + sum(len(c) for c in self.chunks)


def build_script(seed: int, chunks: int) -> Script:
    rng = random.Random(seed)
    old = time.time() - HISTORY_AGE_S
    history_lines = [
        lane("hermes", "500 Internal Server Error"),
        failed(KIMI, KIMI, "server_error", "500 Internal Server Error", PRIMARY),
        lane("nexus", "500 Internal Server Error"),
        failed(PRIMARY, PRIMARY, "server_error", "500 Internal Server Error", PAID),
        succeeded(PRIMARY, PAID),
        succeeded(PRIMARY, PRIMARY),
        succeeded(KIMI, KIMI),
    ]
    history = tuple(JournalEntry(line, realtime=old + i) for i, line in enumerate(history_lines))
    out: list[tuple[str, ...]] = []
    n = 0
    for _ in range(chunks):
        episodes = [_episode(rng) for _ in range(rng.randint(1, 3))]
        noise = rng.randint(3, 50)
        lines = [line for ep in episodes for line in ep]
        for _ in range(noise):  # chatter in between; inserting keeps the episodes' order
            n += 1
            lines.insert(rng.randint(0, len(lines)), _noise(rng, n))
        out.append(tuple(lines))
    return Script(seed, history, tuple(out))


# -- observing one world -----------------------------------------------------------------


def card_identity(alert: Alert) -> str:
    return "|".join(
        (
            alert.type.value,
            ",".join(alert.agents),
            alert.from_model or "-",
            alert.to_model or "-",
            alert.failure_class or "-",
        )
    )


def projection(state_dir: Path) -> dict[str, Any]:
    """The final core state, minus everything that depends on wall time."""
    data = json.loads((state_dir / "core-state.json").read_text())
    state = from_json(data["state"])
    agents = {
        a: {
            "serving": s.serving,
            "in_fallback": s.in_fallback,
            "hold": None if s.hold is None else s.hold.model,
            "flapping": s.flapping,
            "exhausted": s.exhausted,
            "failure_class": s.failure_class,
            "changes": len(s.transitions),
        }
        for a, s in sorted(state.agents.items())
    }
    models = {
        m: {
            "failing": h.failing,
            "class": None if h.failure_class is None else str(h.failure_class),
            "reason": h.reason,
            "cooling": h.cooldown_until is not None,
            "cooldown_level": h.cooldown_level,
            "fail_count": h.fail_count,
            "last_traffic_ok": h.last_traffic_ok,
            "probe_streak": h.probe_streak,
        }
        for m, h in sorted(state.models.items())
    }
    return {"agents": agents, "models": models}


@contextmanager
def _read_only(db: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        yield conn
    finally:
        conn.close()


@dataclass(frozen=True)
class Row:
    id: int
    state: str
    alert: Alert
    text: str
    ambiguous: bool


def outbox_rows(state_dir: Path) -> list[Row]:
    db = state_dir / "outbox.sqlite3"
    if not db.exists():
        return []
    with _read_only(db) as conn:
        rows = conn.execute("SELECT id, state, alert, text, ambiguous FROM cards ORDER BY id")
        return [
            Row(int(i), str(s), Alert.from_json(json.loads(a)), str(t), bool(amb))
            for i, s, a, t, amb in rows.fetchall()
        ]


def unsent(state_dir: Path) -> int:
    return sum(1 for r in outbox_rows(state_dir) if r.state in ("pending", "sending"))


def drained(rig: DaemonRig, last_realtime_us: int) -> bool:
    """The daemon applied every appended entry, carried out every effect, sent every card."""
    try:
        snap = json.loads((rig.state / "core-state.json").read_text())
    except (OSError, ValueError):
        return False
    position = snap.get("position") or {}
    realtime = position.get("realtime")
    if realtime is None or round(float(realtime) * 1_000_000) < last_realtime_us:
        return False
    # The snapshot keeps its last pending effects after carrying them out; what shows
    # they landed is the audit log reaching their target and an empty outbox queue.
    target = int((snap.get("pending") or {}).get("audit_target", 0))
    if len(audit_types(rig.state)) < target:
        return False
    return unsent(rig.state) == 0


def audit_types(state_dir: Path) -> list[str]:
    path = state_dir / "audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["type"] for line in path.read_text().splitlines() if line]


def strip_notes(text: str) -> tuple[str, bool]:
    """A delivered text without the sender's notes; and whether it said "possibly a repeat"."""
    repeat = False
    note = "\n" + REPEAT_NOTE
    if note in text:
        text = text.replace(note, "")
        repeat = True
    cut = text.find("\n<i>⚠️ ")
    if cut >= 0 and "dropped unsent" in text[cut:]:
        text = text[:cut]
    return text, repeat


@dataclass
class Delivery:
    """What the fake Bot API received, matched against the outbox rows."""

    identities: list[str]  # in arrival order, each card once
    sent_rows: int
    messages: int
    duplicates: int  # extra deliveries, or resends labelled "possibly a repeat"
    labelled_repeats: int
    silent_duplicates: int  # extra deliveries nobody was told about: always a bug
    missing: int  # outbox rows never delivered
    unmatched: int  # messages matching no outbox row
    not_sent_rows: list[str]  # rows left pending/dead/dropped
    history_cards: list[str]  # cards about the old history (catch-up): must be none
    unexplained_repeats: int = 0  # labelled resends of rows not marked ambiguous


def deliveries(rig: DaemonRig, live_since: float) -> Delivery:
    rows = outbox_rows(rig.state)
    by_text: dict[str, list[Row]] = {}
    for row in rows:
        by_text.setdefault(row.text, []).append(row)
    seen: Counter[str] = Counter()
    repeats: Counter[str] = Counter()
    identities: list[str] = []
    unmatched = 0
    messages = rig.bot.messages
    for message in messages:
        text, repeat = strip_notes(message.text)
        if text not in by_text:
            unmatched += 1
            continue
        if seen[text] < len(by_text[text]):
            identities.append(card_identity(by_text[text][seen[text]].alert))
        seen[text] += 1
        repeats[text] += int(repeat)
    duplicates = labelled = silent = missing = unexplained = 0
    for text, group in by_text.items():
        if repeats[text] and not any(r.ambiguous for r in group):
            unexplained += repeats[text]
        extra = max(0, seen[text] - len(group))
        missing += max(0, len(group) - seen[text])
        labelled += repeats[text]
        duplicates += max(extra, repeats[text])
        silent += max(0, extra - repeats[text])
    history = [
        card_identity(r.alert)
        for r in rows
        if r.alert.catch_up or (r.alert.ts is not None and r.alert.ts < live_since)
    ]
    return Delivery(
        identities=identities,
        sent_rows=sum(1 for r in rows if r.state == "sent"),
        messages=len(messages),
        duplicates=duplicates,
        labelled_repeats=labelled,
        silent_duplicates=silent,
        missing=missing,
        unmatched=unmatched,
        not_sent_rows=[
            f"#{r.id} {r.state} {card_identity(r.alert)}" for r in rows if r.state != "sent"
        ],
        history_cards=history,
        unexplained_repeats=unexplained,
    )


# -- the two runs ---------------------------------------------------------------------------


@dataclass
class Checks:
    """Pass/fail counts per check, and the first few failures in words."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def record(self, name: str, ok: bool, problem: str = "") -> bool:
        c = self.counts.setdefault(name, {"passed": 0, "failed": 0})
        c["passed" if ok else "failed"] += 1
        if not ok and len(self.problems) < 20:
            self.problems.append(f"{name}: {problem}")
        return ok

    @property
    def failed(self) -> int:
        return sum(c["failed"] for c in self.counts.values())


def check_files(rig: DaemonRig, checks: Checks, when: str) -> None:
    pin = rig.state / "fallback-state.json"
    if pin.exists():
        text = pin.read_text()
        try:
            pinfile.loads(text)
            ok, why = True, ""
        except Exception as exc:  # any failure to load is the finding
            ok, why = False, f"{when}: {exc}"
        checks.record("pin_file_valid", ok, why)
        jq = subprocess.run(["jq", "-e", ".", str(pin)], capture_output=True, text=True)
        checks.record("pin_file_jq", jq.returncode == 0, f"{when}: jq said {jq.stderr.strip()}")
    log = rig.state / "audit.jsonl"
    if log.exists():
        result = audit.verify(log)
        checks.record("audit_verifies", result.ok, f"{when}: {result.sentence()}")


def _feed(rig: DaemonRig, chunk: tuple[str, ...]) -> int:
    last = 0
    for line in chunk:
        last = rig.journal.append(line)
    rig.journal.flush()
    return last


def _finish(rig: DaemonRig, last_us: int, timeout: float) -> int:
    wait_until(lambda: drained(rig, last_us), timeout=timeout, what="the daemon to drain")
    time.sleep(0.5)  # a tick or two: nothing more may happen
    return rig.stop()


def run_reference(root: Path, script: Script, *, flap: bool = False) -> DaemonRig:
    """One daemon, never interrupted, over the whole script. Returns the stopped rig."""
    root.mkdir(parents=True, exist_ok=True)
    rig = DaemonRig(root, config_text=partial(config_text, flap=flap), history=script.history)
    try:
        rig.start()
        last = 0
        for chunk in script.chunks:
            last = _feed(rig, chunk)
            time.sleep(0.02)
        code = _finish(rig, last, timeout=120)
        if code != 0:
            raise RuntimeError(f"reference daemon exited {code}; see {rig.logs[-1]}")
    except BaseException:
        rig.close()
        raise
    return rig


@dataclass
class CrashRun:
    rig: DaemonRig
    kills: int = 0
    restarts: int = 0
    early_kills: int = 0
    exited_by_itself: int = 0


def _wait_ready(rig: DaemonRig, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (rig.state / "metrics.port").exists():
            return True
        if rig.proc is not None and rig.proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def run_with_kills(
    root: Path,
    script: Script,
    kills: int,
    seed: int,
    checks: Checks,
    progress: Callable[[CrashRun], None] | None = None,
    *,
    flap: bool = False,
) -> CrashRun:
    rng = random.Random(seed * 7919 + 1)
    root.mkdir(parents=True, exist_ok=True)
    rig = DaemonRig(root, config_text=partial(config_text, flap=flap), history=script.history)
    run = CrashRun(rig)
    feeds: dict[int, list[tuple[str, ...]]] = {}
    for j, chunk in enumerate(script.chunks):
        feeds.setdefault(j * kills // max(1, len(script.chunks)), []).append(chunk)
    last = 0
    try:
        for life in range(kills):
            todo = feeds.get(life, [])
            early = rng.random() < 0.25
            if early:
                for chunk in todo:  # the daemon meets them while starting up
                    last = _feed(rig, chunk)
                rig.start(wait=False)
                run.restarts += 1
                time.sleep(rng.uniform(0.0, 1.5))
            else:
                rig.start(wait=False)
                run.restarts += 1
                if not _wait_ready(rig):
                    pass  # it died: noticed below
                for chunk in todo:
                    last = _feed(rig, chunk)
                    time.sleep(rng.uniform(0.0, 0.05))
                time.sleep(
                    rng.choice(
                        [rng.uniform(0.0, 0.05), rng.uniform(0.0, 0.3), rng.uniform(0.0, 1.0)]
                    )
                )
            assert rig.proc is not None
            if rig.proc.poll() is not None:
                run.exited_by_itself += 1
                checks.record(
                    "daemon_survives",
                    False,
                    f"life {life}: exited {rig.proc.returncode} by itself; see {rig.logs[-1]}",
                )
            else:
                rig.kill()
                run.kills += 1
                run.early_kills += int(early)
            check_files(rig, checks, f"after kill {life + 1}")
            if progress is not None:
                progress(run)
        for chunk in (c for life, cs in sorted(feeds.items()) if life >= kills for c in cs):
            last = _feed(rig, chunk)
        rig.start()
        run.restarts += 1
        code = _finish(rig, last, timeout=180)
        checks.record("final_sigterm_exit_0", code == 0, f"exit {code}; see {rig.logs[-1]}")
        check_files(rig, checks, "at the end")
    except BaseException:
        rig.close()
        raise
    return run


# -- the whole soak ---------------------------------------------------------------------------


def chunks_for(kills: int) -> int:
    return max(12, kills // 8)


def soak(
    root: Path,
    *,
    kills: int,
    seed: int,
    progress_every: int = 0,
    out: Callable[[str], None] = print,
    flap: bool = False,
) -> dict[str, Any]:
    """Run both worlds under ``root`` and compare them; returns the summary."""
    started = time.monotonic()
    script = build_script(seed, chunks_for(kills))
    checks = Checks()
    live_since = time.time() - 60  # history is two hours old; live lines are newer

    reference = run_reference(root / "reference", script, flap=flap)
    try:
        ref_cards = deliveries(reference, live_since)
        ref_state = projection(reference.state)
        ref_audit = audit_types(reference.state)
    finally:
        reference.close()
    ref_ok = ref_cards.duplicates == 0 and ref_cards.missing == 0 and not ref_cards.not_sent_rows
    checks.record("reference_clean", ref_ok, f"reference run itself: {ref_cards}")
    out(
        json.dumps(
            {
                "reference": {
                    "cards": len(ref_cards.identities),
                    "audit_records": len(ref_audit),
                    "wall_s": round(time.monotonic() - started, 1),
                }
            }
        )
    )

    def progress(run: CrashRun) -> None:
        done = run.kills + run.exited_by_itself
        if progress_every and done % progress_every == 0:
            out(
                json.dumps(
                    {
                        "progress": done,
                        "of": kills,
                        "kills": run.kills,
                        "elapsed_s": round(time.monotonic() - started, 1),
                        "failed_checks": checks.failed,
                    }
                )
            )

    crash = run_with_kills(root / "crash", script, kills, seed, checks, progress, flap=flap)
    try:
        cards = deliveries(crash.rig, live_since)
        state = projection(crash.rig.state)
        types = audit_types(crash.rig.state)
    finally:
        crash.rig.close()

    checks.record("final_state_equal", state == ref_state, _diff(ref_state, state))
    checks.record(
        "card_identities_equal",
        cards.identities == ref_cards.identities,
        f"reference {ref_cards.identities} vs crash run {cards.identities}",
    )
    checks.record(
        "audit_types_equal",
        types == ref_audit,
        f"reference {Counter(ref_audit)} vs crash run {Counter(types)}",
    )
    # A SIGKILL between "sending" and "sent" must resend with the "possibly a repeat" note
    # (Telegram has no idempotency key: the outbox's documented at-least-once window).
    # Those count in ``duplicates`` and are reported; an unlabelled second delivery is a
    # bug, and so is a labelled resend of a card that was never in that window.
    checks.record(
        "no_silent_duplicate",
        cards.silent_duplicates == 0,
        f"{cards.silent_duplicates} unlabelled repeat deliveries",
    )
    checks.record(
        "repeats_only_after_a_kill_mid_send",
        cards.unexplained_repeats == 0,
        f"{cards.unexplained_repeats} labelled resends of cards never left 'sending'",
    )
    checks.record(
        "no_missing_card",
        cards.missing == 0 and not cards.not_sent_rows,
        f"{cards.missing} undelivered; left in the outbox: {cards.not_sent_rows}",
    )
    checks.record("no_unknown_message", cards.unmatched == 0, f"{cards.unmatched} messages")
    checks.record(
        "history_not_announced",
        not cards.history_cards and not ref_cards.history_cards,
        f"{cards.history_cards or ref_cards.history_cards}",
    )
    return {
        "ok": checks.failed == 0,
        "seed": seed,
        "flap_detection": flap,
        "kills": crash.kills,
        "early_kills": crash.early_kills,
        "restarts": crash.restarts,
        "exited_by_itself": crash.exited_by_itself,
        "journal_lines": script.lines,
        "chunks": len(script.chunks),
        "wall_s": round(time.monotonic() - started, 1),
        "cards_sent": len(cards.identities),
        "cards_expected": len(ref_cards.identities),
        "messages": cards.messages,
        "duplicates": cards.duplicates,
        "labelled_repeats": cards.labelled_repeats,
        "silent_duplicates": cards.silent_duplicates,
        "missing": cards.missing + max(0, len(ref_cards.identities) - len(cards.identities)),
        "audit_records": len(types),
        "checks": checks.counts,
        "problems": checks.problems,
    }


def _diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    lines = []
    for section in ("agents", "models"):
        for key in sorted(set(a[section]) | set(b[section])):
            if a[section].get(key) != b[section].get(key):
                lines.append(f"{section}.{key}: {a[section].get(key)} != {b[section].get(key)}")
    return "; ".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep both worlds (logs, state) here")
    parser.add_argument("--progress-every", type=int, default=25)
    parser.add_argument(
        "--flap-detection",
        action="store_true",
        help="turn flap detection on (off by default: see the module doc)",
    )
    args = parser.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="soak-crash-"))
    root.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))  # close the rigs on the way out

    def out(line: str) -> None:
        print(line, flush=True)

    try:
        summary = soak(
            root,
            kills=args.kills,
            seed=args.seed,
            progress_every=args.progress_every,
            out=out,
            flap=args.flap_detection,
        )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    out(json.dumps({"summary": summary}))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
