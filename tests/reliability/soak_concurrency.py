"""Concurrency soak: the running daemon, the CLI and four ``flock ... jq`` editors.

Run from the repo root::

    .venv/bin/python -m tests.reliability.soak_concurrency --ops 10000 --seed 1

It prints a summary and exits 1 if any update was lost, any observed pin file was
invalid, or the daemon died. ``test_reliability_concurrency.py`` runs the same harness
with a few hundred operations.

The actors, all at once, on one pin file:

- the real daemon (``failover-watcher run`` as a subprocess, ``DaemonRig``, ticking every
  0.25 s so that it rereads the pin file often) tailing a live journal that a feeder
  thread fills with decision lines, so the daemon itself rewrites the pin file (for the
  demo agents ``nexus``, ``george``, ``hermes``);
- four editors, each a bash loop running the runbook's recipe for every operation:
  ``flock <pin>.lock``, ``jq`` into a same-directory temp file, ``sync``, ``mv``,
  ``sync`` the directory. Editor ``k`` owns agent ``ed<k>`` and sets a hold whose note
  names the operation (``ed<k>:<i>``), then pauses 20-200 ms. About one edit in a
  hundred is deliberately invalid (``current_serving`` outside the chain) and left on
  disk for 0.6 s: the daemon quarantines it unless its author's next edit repairs it;
- the real CLI, ``failover-watcher pin hold|release`` through ``watcher.cli.main`` in a
  worker process (in-process calls: starting Python for each of thousands of commands
  would dominate the run), on agent ``ops``;
- a sampler thread reading the pin file continuously and validating every distinct
  version it sees (the shipped JSON Schema, the ``watcher.pins.schema`` model with the live
  chains, and a long-running ``jq`` over the same bytes).

How a lost update shows: under the lock, before each edit, an editor records the note
it finds on its agent. That must be the note of its own previous edit, unless that edit
was quarantined (its text is then in a ``<pin>.rejected-*`` file). Anything else means
some writer replaced the edit without having read it: a lost update. The CLI worker
waits after each command until the daemon has taken it (its core snapshot holds the
note), quarantined it, or lost it (gone from the file and from both). At the end, the
daemon's state must hold every actor's last write, each editor agent's last audited
OPERATOR_OVERRIDE must agree with it, and the audit chain must verify.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tests.rigs.daemon_rig import DaemonRig, wait_until
from watcher.demo import PAID, PRIMARY
from watcher.demo import openclaw_config as _openclaw
from watcher.demo import watcher_config as _config
from watcher.fakes.botapi import FakeBotApi
from watcher.fakes.models import FakeModelServer
from watcher.pins.check import PinFileInvalid, chains_validator, check_text
from watcher.pins.store import PIN_FILENAME

EDITORS = 4
EDIT_CHAIN = ["ollama/kimi-k2.5:cloud", "ollama/glm-5:cloud", PAID]
CLI_AGENT = "ops"
BAD_MODEL = "openai/not-in-chain"  # marks a deliberately invalid hand edit
SAMPLE_PAUSE_S = 0.0005
TICK_S = 0.25
# Editors pause between edits, outside the lock: four editors back to back would keep
# the lock taken all the time, and flock(1) waiters (queued in the kernel) always beat
# the pin store's polling lock, so the daemon and the CLI would hardly ever get it.
EDIT_PAUSES_S = ("0.02", "0.05", "0.1", "0.2")
BAD_EDIT_PAUSE_S = "0.6"  # more than two daemon ticks
SCHEMA = Path(__file__).resolve().parents[2] / "state" / "fallback-state.schema.json"

GOOD_EDIT = (
    ".agents[$a] |= (.current_serving = $m | .in_fallback = ($m != .primary)"
    ' | .hold = {model: $m, by: "editor", until: null, note: $n})'
)
BAD_EDIT = (
    f'.agents[$a] |= (.current_serving = "{BAD_MODEL}" | .in_fallback = true'
    ' | .hold = {model: $m, by: "editor", until: null, note: $n})'
)

# One process per editor; one line of output per operation: "<i>\t<note before>\t<rc>".
EDITOR_LOOP = r"""
set -u
pin=$1 agent=$2 plan=$3 good=$4 bad=$5
dir=$(dirname "$pin"); base=$(basename "$pin"); err=$(mktemp)
trap 'rm -f "$err"' EXIT
exec 9>>"$pin.lock"
while read -r i model kind note pause; do
    if ! flock -w 60 9; then printf '%s\tTIMEOUT\t2\n' "$i"; continue; fi
    tmp=$(mktemp "$dir/.$base.pin-edit.XXXXXX")
    if [ "$kind" = bad ]; then filter=$bad; else filter=$good; fi
    # One jq run: the note it found goes to stderr (jq's stderr builtin), the edit to $tmp.
    probe='(.agents[$a].hold.note // "-" | stderr) as $_ | '
    if jq --arg a "$agent" --arg m "$model" --arg n "$note" "$probe$filter" "$pin" \
        >"$tmp" 2>"$err"
    then
        chmod 0640 "$tmp"; sync "$tmp"; mv -f "$tmp" "$pin"; sync "$dir"; rc=0
    else
        rm -f "$tmp"; rc=1
    fi
    before=""; IFS= read -r before <"$err" || true
    before=${before#\"}; before=${before%\"}
    flock -u 9
    printf '%s\t%s\t%s\n' "$i" "$before" "$rc"
    [ "$pause" = 0 ] || sleep "$pause"
done <"$plan"
"""

DECISION_LINES = [
    "[model-fallback/decision] model fallback decision: decision=candidate_failed "
    f"requested={PRIMARY} candidate={PRIMARY} reason=rate_limit next={PAID} "
    "detail=429 rate_limit_exceeded",
    "[model-fallback/decision] model fallback decision: decision=candidate_succeeded "
    f"requested={PRIMARY} candidate={PAID} reason=unknown next=ollama/glm-5:cloud",
    "[model-fallback/decision] model fallback decision: decision=candidate_failed "
    "requested=ollama/kimi-k2.5:cloud candidate=ollama/kimi-k2.5:cloud reason=timeout "
    f"next={PRIMARY} detail=504 gateway timeout",
    "[model-fallback/decision] model fallback decision: decision=candidate_failed "
    "requested=ollama/glm-5:cloud candidate=ollama/glm-5:cloud reason=server_error "
    "next=none detail=503 upstream down",
]


def soak_config(root: Path, journal_spec: str, bot: FakeBotApi) -> str:
    """The demo config with a faster tick: the daemon rereads the pin file on every
    batch and every tick, and the CLI worker waits for each read."""
    text = _config(root, journal_spec, bot)
    assert "\ntick_interval_s = 1\n" in text
    return text.replace("\ntick_interval_s = 1\n", f"\ntick_interval_s = {TICK_S}\n")


def soak_openclaw(fake: FakeModelServer) -> dict[str, Any]:
    """The demo gateway plus one agent per editor and one for the CLI."""
    config = _openclaw(fake)
    entries = config["agents"]["entries"]
    for agent in [*(f"ed{k}" for k in range(EDITORS)), CLI_AGENT]:
        entries[agent] = {"model": {"primary": EDIT_CHAIN[0], "fallbacks": EDIT_CHAIN[1:]}}
    return config


# -- the plan --------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    editor_ops: list[int]  # per editor
    cli_ops: int
    journal_lines: int
    invalid_rate: float
    seed: int

    @classmethod
    def split(cls, ops: int, seed: int, invalid_rate: float = 0.01) -> Plan:
        """70% editor edits (four editors), 10% CLI commands, 20% journal lines."""
        cli = max(2, ops // 10)
        journal = max(4, ops // 5)
        edits = max(EDITORS, ops - cli - journal)
        per = [edits // EDITORS + (1 if k < edits % EDITORS else 0) for k in range(EDITORS)]
        return cls(per, cli, journal, invalid_rate, seed)

    @property
    def total(self) -> int:
        return sum(self.editor_ops) + self.cli_ops + self.journal_lines


def note_of(agent: str, i: int, bad: bool = False) -> str:
    return f"{agent}:{i}" + (":invalid" if bad else "")


def write_editor_plan(path: Path, agent: str, n: int, rng: random.Random, invalid: float) -> None:
    lines = []
    for i in range(1, n + 1):
        bad = rng.random() < invalid and i < n  # the last edit is valid: it must stick
        model = rng.choice(EDIT_CHAIN)
        pause = rng.choice(EDIT_PAUSES_S)
        if bad:  # leave the mistake on disk past a daemon tick, as a human would
            pause = BAD_EDIT_PAUSE_S
        lines.append(f"{i} {model} {'bad' if bad else 'good'} {note_of(agent, i, bad)} {pause}")
    path.write_text("\n".join(lines) + "\n")


# -- the sampler -----------------------------------------------------------------------


@dataclass
class Sampler:
    """Reads the pin file as fast as it can; validates every distinct version."""

    pin: Path
    chains: dict[str, list[str]]
    reads: int = 0
    versions: int = 0
    invalid: list[str] = field(default_factory=list)
    deliberate_invalid: int = 0
    daemon_writes: int = 0
    jq_checked: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        import jsonschema

        self._schema = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
        self._validator = chains_validator(self.chains)
        self._jq = subprocess.Popen(
            ["jq", "-e", "-c", ".schema_version"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._jq_fed = 0
        self._jq_reader = threading.Thread(target=self._read_jq, daemon=True)
        self._jq_reader.start()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        assert self._jq.stdin is not None
        self._jq.stdin.close()
        code = self._jq.wait(30)
        self._jq_reader.join(10)
        assert self._jq.stdout is not None and self._jq.stderr is not None
        err = self._jq.stderr.read().decode(errors="replace")
        self._jq.stdout.close()
        self._jq.stderr.close()
        if code != 0:
            self.invalid.append(f"jq -e rejected a version (exit {code}): {err[:300]}")
        elif self.jq_checked != self._jq_fed:
            self.invalid.append(f"jq checked {self.jq_checked} of {self._jq_fed} versions")

    def _read_jq(self) -> None:
        assert self._jq.stdout is not None
        for line in self._jq.stdout:
            if line.strip() == b"1":
                self.jq_checked += 1

    def _run(self) -> None:
        last_digest = b""
        last_daemon_part: bytes | None = None
        while not self._stop.is_set():
            try:
                data = self.pin.read_bytes()
            except FileNotFoundError:
                self.invalid.append("the pin file was missing")
                continue
            self.reads += 1
            digest = hashlib.blake2b(data, digest_size=16).digest()
            if digest == last_digest:
                time.sleep(SAMPLE_PAUSE_S)  # leave the CPU to the actors between writes
                continue
            last_digest = digest
            self.versions += 1
            daemon_part = self._check(data)
            if daemon_part is not None and daemon_part != last_daemon_part:
                if last_daemon_part is not None:
                    self.daemon_writes += 1
                last_daemon_part = daemon_part

    def _check(self, data: bytes) -> bytes | None:
        """Validate one version; return the part only the daemon writes (or None)."""
        assert self._jq.stdin is not None
        self._jq.stdin.write(data)
        self._jq.stdin.flush()
        self._jq_fed += 1
        try:
            raw = json.loads(data)
        except ValueError as exc:
            self.invalid.append(f"not JSON: {exc}: {data[:200]!r}")
            return None
        if BAD_MODEL.encode() in data:
            self.deliberate_invalid += 1  # an editor's invalid edit, awaiting quarantine
            return None
        errors = [e.message for e in self._schema.iter_errors(raw)]
        if errors:
            self.invalid.append(f"schema: {errors[:3]}")
            return None
        try:
            check_text(data, self._validator)
        except PinFileInvalid as exc:
            self.invalid.append(f"model: {exc}")
            return None
        own = {a: raw["agents"].get(a) for a in ("nexus", "george", "hermes")}
        return json.dumps([own, raw["models"]], sort_keys=True).encode()


# -- the actors ------------------------------------------------------------------------


@dataclass
class EditorRun:
    agent: str
    plan: list[tuple[int, str, bool]]  # (i, note, bad)
    proc: subprocess.Popen[str]
    stderr: IO[str]
    results: dict[int, tuple[str, int]] = field(default_factory=dict)  # i -> (before, rc)
    thread: threading.Thread | None = None

    def read_output(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            i, before, rc = line.rstrip("\n").split("\t")
            self.results[int(i)] = (before, int(rc))

    def finish(self) -> None:
        self.proc.wait()
        if self.thread is not None:
            self.thread.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.stderr.close()


def start_editor(
    root: Path, pin: Path, k: int, n: int, rng: random.Random, invalid: float
) -> EditorRun:
    agent = f"ed{k}"
    plan_path = root / f"{agent}.plan"
    write_editor_plan(plan_path, agent, n, rng, invalid)
    plan = []
    for line in plan_path.read_text().splitlines():
        i, _model, kind, note, _pause = line.split()
        plan.append((int(i), note, kind == "bad"))
    stderr = open(root / f"{agent}.err", "w")  # noqa: SIM115 - closed by finish()
    proc = subprocess.Popen(
        ["bash", "-c", EDITOR_LOOP, "editor", str(pin), agent, str(plan_path), GOOD_EDIT, BAD_EDIT],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    return EditorRun(agent, plan, proc, stderr)


def cli_worker(config: str, state_dir: str, ops: int, seed: int) -> int:
    """Run in its own process: ``ops`` CLI commands, each waited on until the daemon has
    adopted, quarantined or lost it. One JSON line per command on stdout."""
    import contextlib
    import io

    from watcher.cli import main

    rng = random.Random(seed)
    state = Path(state_dir)
    pin = state / PIN_FILENAME
    snapshot = state / "core-state.json"
    held = False
    seen_rejected: set[Path] = set()

    def daemon_hold() -> tuple[bool, str | None]:
        try:
            agent = json.loads(snapshot.read_text())["state"]["agents"][CLI_AGENT]
        except (OSError, ValueError, KeyError):
            return False, None
        hold = agent.get("hold")
        return True, hold["note"] if hold else None

    def file_hold() -> tuple[bool, str | None]:
        try:
            hold = json.loads(pin.read_text())["agents"][CLI_AGENT]["hold"]
        except (OSError, ValueError, KeyError):
            return False, None
        return True, hold["note"] if hold else None

    def rejected_files() -> set[Path]:
        return set(state.glob(PIN_FILENAME + ".rejected-*"))

    def quarantined(expected: str | None) -> bool:
        for path in sorted(rejected_files() - seen_rejected):
            try:
                hold = json.loads(path.read_text())["agents"][CLI_AGENT]["hold"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if (hold["note"] if hold else None) == expected:
                return True
        return False

    for i in range(1, ops + 1):
        release = held and rng.random() < 0.2
        if release:
            argv, expected = ["pin", "release", CLI_AGENT], None
        else:
            model = rng.choice(EDIT_CHAIN)
            expected = note_of(CLI_AGENT, i)
            argv = ["pin", "hold", CLI_AGENT, model, "--note", expected]
        seen_rejected = rejected_files()  # only a file made after this command counts
        started = time.monotonic()
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([*argv, "--config", config])
        command_s = time.monotonic() - started
        verdict = "refused"
        if rc == 0:
            verdict = "timeout"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                ok, in_file = file_hold()
                if not ok:  # mid-way through an editor's invalid edit being read: look again
                    time.sleep(0.002)
                    continue
                ok, in_daemon = daemon_hold()
                if ok and in_daemon == expected:
                    verdict = "adopted"
                    break
                if in_file != expected:  # gone from the file: taken, quarantined or lost
                    if quarantined(expected):
                        verdict = "quarantined"
                    else:
                        ok, in_daemon = daemon_hold()
                        verdict = "adopted" if ok and in_daemon == expected else "lost"
                    break
                time.sleep(0.002)
        if verdict == "adopted":
            held = expected is not None
        elif verdict == "quarantined":
            held = daemon_hold()[1] is not None
        record = {
            "i": i,
            "op": argv[1],
            "rc": rc,
            "verdict": verdict,
            "expected": expected,
            "command_s": round(command_s, 4),
            "latency_s": round(time.monotonic() - started, 4),
            "err": err.getvalue().strip()[:200],
        }
        print(json.dumps(record), flush=True)
    return 0


# -- the run ---------------------------------------------------------------------------


@dataclass
class Summary:
    ops: dict[str, int]
    lost: list[str]
    invalid: list[str]
    problems: list[str]
    figures: dict[str, Any]
    wall_s: float
    quarantined: int = 0
    daemon_writes: int = 0
    versions: int = 0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.invalid or self.problems)

    def text(self) -> str:
        total = sum(self.ops.values())
        lines = [
            f"concurrency soak: {total} operations in {self.wall_s:.1f} s "
            f"({total / self.wall_s:.0f} ops/s)",
            "  ops by actor: " + ", ".join(f"{k} {v}" for k, v in self.ops.items()),
            f"  lost updates: {len(self.lost)}",
            f"  invalid pin-file versions observed: {len(self.invalid)}",
        ]
        lines += [f"  {k}: {v}" for k, v in self.figures.items()]
        lines += [f"  LOST: {x}" for x in self.lost[:20]]
        lines += [f"  INVALID: {x}" for x in self.invalid[:20]]
        lines += [f"  PROBLEM: {x}" for x in self.problems[:20]]
        lines.append("  result: " + ("OK" if self.ok else "FAILED"))
        return "\n".join(lines)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _rejected_notes(state: Path) -> dict[str, set[str]]:
    """agent -> notes found on it in quarantined files."""
    found: dict[str, set[str]] = {}
    for path in state.glob(PIN_FILENAME + ".rejected-*"):
        try:
            agents = json.loads(path.read_text())["agents"]
        except (OSError, ValueError, KeyError):
            continue
        for agent, pin in agents.items():
            hold = pin.get("hold") if isinstance(pin, dict) else None
            if hold and hold.get("note"):
                found.setdefault(agent, set()).add(hold["note"])
    return found


def check_editor(
    run: EditorRun, final_note: str | None, rejected: set[str], lost: list[str]
) -> Counter[str]:
    """Classify each edit: seen by the editor's next one, quarantined, or lost."""
    tally: Counter[str] = Counter()
    previous: str | None = None  # the note of the last edit that landed
    for i, note, bad in run.plan:
        before, rc = run.results.get(i, ("MISSING", 2))
        if rc == 2:
            lost.append(f"{run.agent} op {i}: no lock or no result ({before})")
            continue
        if previous is not None:
            if before == previous:
                tally["seen by its next edit"] += 1
            elif previous in rejected:
                tally["quarantined"] += 1
            else:
                lost.append(
                    f"{run.agent}: edit {previous} was replaced by {before!r} "
                    "before the editor's next edit, and was not quarantined"
                )
        if rc == 0:
            previous = note
            tally["invalid edits" if bad else "valid edits"] += 1
        else:
            tally["jq failed"] += 1
    if previous is not None:
        if final_note == previous:
            tally["last edit held by the daemon"] += 1
        elif previous in rejected:
            tally["quarantined"] += 1
        else:
            lost.append(f"{run.agent}: last edit {previous}, the daemon holds {final_note!r}")
    return tally


@dataclass
class CliRun:
    """The CLI worker process and the records it prints."""

    proc: subprocess.Popen[str]
    stderr: IO[str]
    records: list[dict[str, Any]] = field(default_factory=list)
    thread: threading.Thread | None = None

    @classmethod
    def start(cls, rig: DaemonRig, root: Path, ops: int, seed: int) -> CliRun:
        stderr = open(root / "cli.err", "w")  # noqa: SIM115 - closed by finish()
        worker = [str(rig.config), str(rig.state), str(ops), str(seed)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.soak_concurrency", "--cli-worker", *worker],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=rig.env,
            cwd=Path(__file__).resolve().parents[2],
        )
        run = cls(proc, stderr)
        run.thread = threading.Thread(target=run._read, daemon=True)
        run.thread.start()
        return run

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.records.append(json.loads(line))

    def finish(self) -> None:
        self.proc.wait()
        if self.thread is not None:
            self.thread.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.stderr.close()


def feed_journal(
    rig: DaemonRig,
    plan: Plan,
    editors: list[EditorRun],
    cli: CliRun,
    say: Callable[[str], None],
    problems: list[str],
) -> int:
    """Append decision lines in step with the editors' and the CLI's progress, so the
    daemon writes all along; return how many."""
    edit_total = sum(plan.editor_ops)
    actor_total = edit_total + plan.cli_ops
    rng = random.Random(plan.seed + 1)
    fed = 0
    last_report = time.monotonic()
    while fed < plan.journal_lines:
        if rig.proc is not None and rig.proc.poll() is not None:
            problems.append(f"the daemon exited with {rig.proc.returncode}")
            break
        done = sum(len(e.results) for e in editors)
        target = plan.journal_lines * min(1.0, (done + len(cli.records)) / actor_total + 0.02)
        actors = [e.proc for e in editors] + [cli.proc]
        if fed < target or all(p.poll() is not None for p in actors):
            for _ in range(min(3, plan.journal_lines - fed)):
                rig.journal.append(rng.choice(DECISION_LINES))
                fed += 1
            rig.journal.flush()
        else:
            time.sleep(0.005)
        if time.monotonic() - last_report > 10:
            last_report = time.monotonic()
            say(
                f"  ... {done}/{edit_total} edits, {len(cli.records)}/{plan.cli_ops} CLI, "
                f"{fed}/{plan.journal_lines} journal lines"
            )
    return fed


def wait_for_actors(rig: DaemonRig, actors: list[subprocess.Popen[str]]) -> bool:
    """Wait until every actor is done; stop them all at once if the daemon dies first
    (the CLI would otherwise wait for adoptions that never come). True if it lived."""
    while any(a.poll() is None for a in actors):
        if rig.proc is None or rig.proc.poll() is not None:
            for actor in actors:
                if actor.poll() is None:
                    actor.kill()
            return False
        time.sleep(0.1)
    return rig.proc is not None and rig.proc.poll() is None


def settled(rig: DaemonRig, agents: list[str]) -> bool:
    """No invalid edit waits, and the daemon holds what the file says for every agent."""
    try:
        snap = json.loads((rig.state / "core-state.json").read_text())["state"]
        disk = json.loads((rig.state / PIN_FILENAME).read_text())
    except (OSError, ValueError):
        return False
    if BAD_MODEL in json.dumps(disk):
        return False
    return all(
        (snap["agents"][a]["hold"] or {}).get("note")
        == (disk["agents"][a]["hold"] or {}).get("note")
        for a in agents
    )


def check_audit(
    state: Path, agents: list[str], held: dict[str, str], quarantined: int, problems: list[str]
) -> dict[str, Any]:
    """The chain verifies; every agent has OPERATOR_OVERRIDEs, and a held agent's last
    one took it where it is; one PIN_FILE_REJECTED per quarantined file."""
    from watcher.audit import log as audit

    verified = audit.verify(state / "audit.jsonl")
    if not verified.ok:
        problems.append(f"audit: {verified.sentence()}")
    records = [json.loads(x) for x in (state / "audit.jsonl").read_text().splitlines() if x]
    overrides: Counter[str] = Counter()
    last_after: dict[str, str] = {}
    rejections = 0
    for r in records:
        data = r.get("data", {})
        if r.get("type") == "OPERATOR_OVERRIDE" and len(data.get("agents", [])) == 1:
            overrides[data["agents"][0]] += 1
            last_after[data["agents"][0]] = data.get("after")
        rejections += r.get("type") == "PIN_FILE_REJECTED"
    for agent in agents:
        if overrides[agent] == 0:
            problems.append(f"no OPERATOR_OVERRIDE audited for {agent}")
        elif agent in held and last_after.get(agent) != held[agent]:
            problems.append(f"{agent}: last audited override to {last_after.get(agent)}")
    if rejections != quarantined:
        problems.append(f"{quarantined} quarantined files but {rejections} PIN_FILE_REJECTED")
    return {
        "quarantined files (PIN_FILE_REJECTED audited)": f"{quarantined} ({rejections})",
        "OPERATOR_OVERRIDE audited per agent": dict(sorted(overrides.items())),
        "audit records (chain verifies)": f"{len(records)} ({verified.ok})",
    }


def check_cli(records: list[dict[str, Any]], final: str | None, ops: int) -> list[str]:
    """Lost CLI commands, and a final state that is not the last adopted command."""
    lost = [
        f"CLI op {r['i']} ({r['op']} {r['expected']}): {r['verdict']}"
        for r in records
        if r["verdict"] in ("lost", "timeout")
    ]
    if len(records) != ops:
        lost.append(f"the CLI worker finished {len(records)} of {ops} commands")
    last = records[-1] if records else None
    if last is not None and last["verdict"] == "adopted" and final != last["expected"]:
        lost.append(f"CLI: last command {last['expected']}, the daemon holds {final!r}")
    return lost


def run_soak(
    root: Path, ops: int, seed: int, invalid_rate: float = 0.01, quiet: bool = False
) -> Summary:
    """Run every actor at once against the real daemon; check and summarise."""
    plan = Plan.split(ops, seed, invalid_rate)
    rng = random.Random(seed)
    say: Callable[[str], None] = (lambda _m: None) if quiet else (lambda m: print(m, flush=True))
    rig = DaemonRig(root, openclaw=soak_openclaw, config_text=soak_config)
    problems: list[str] = []
    lost: list[str] = []
    children: list[subprocess.Popen[str]] = []
    started = time.monotonic()
    try:
        rig.start()
        pin = rig.state / PIN_FILENAME
        agents = [f"ed{k}" for k in range(EDITORS)] + [CLI_AGENT]
        wait_until(lambda: all(a in rig.pins()["agents"] for a in agents), what="pin file")
        chains = {a: p["chain"] for a, p in json.loads(pin.read_text())["agents"].items()}
        sampler = Sampler(pin, chains).start()
        editors = [
            start_editor(root, pin, k, n, random.Random(rng.random()), plan.invalid_rate)
            for k, n in enumerate(plan.editor_ops)
        ]
        for e in editors:
            e.thread = threading.Thread(target=e.read_output, daemon=True)
            e.thread.start()
        cli = CliRun.start(rig, root, plan.cli_ops, seed)
        children += [e.proc for e in editors] + [cli.proc]
        fed = feed_journal(rig, plan, editors, cli, say, problems)
        if not wait_for_actors(rig, children):
            log = rig.logs[-1].read_text().splitlines() if rig.logs else []
            problems.append(f"the daemon died; its log ends: {' | '.join(log[-3:])}")
        for e in editors:
            e.finish()
        cli.finish()
        if problems:  # no daemon to check against: say why and stop here
            sampler.stop()
            ops_done = {"editors (flock+jq)": sum(len(e.results) for e in editors)}
            wall = time.monotonic() - started
            return Summary(ops_done, lost, sampler.invalid, problems, {}, wall)
        try:  # the daemon reads the file again at least once a second (its tick)
            wait_until(lambda: settled(rig, agents), timeout=30, what="the last edits taken")
        except AssertionError as exc:
            problems.append(str(exc))
        time.sleep(1.5)  # one more tick: a late overwrite would show
        sampler.stop()
        wall = time.monotonic() - started
        if rig.proc is None or rig.proc.poll() is not None:
            problems.append("the daemon is not running at the end")
        snap = json.loads((rig.state / "core-state.json").read_text())["state"]["agents"]
        final = {a: (snap[a]["hold"] or {}).get("note") for a in agents}
        rejected = _rejected_notes(rig.state)

        tallies: Counter[str] = Counter()
        for e in editors:
            tallies += check_editor(e, final[e.agent], rejected.get(e.agent, set()), lost)
        lost += check_cli(cli.records, final[CLI_AGENT], plan.cli_ops)
        for r in cli.records:
            if r["verdict"] == "refused" and BAD_MODEL not in r["err"]:
                problems.append(f"CLI op {r['i']} refused: {r['err']}")
        quarantined_files = list(rig.state.glob(PIN_FILENAME + ".rejected-*"))
        for path in quarantined_files:  # only ever an invalid edit, never a valid one alone
            if BAD_MODEL not in path.read_text():
                problems.append(f"{path.name} holds no invalid edit: a valid edit was rejected")
        held = {a: snap[a]["serving"] for a in agents if snap[a]["hold"]}  # nothing moves these
        audit_figures = check_audit(rig.state, agents, held, len(quarantined_files), problems)
        if any("Traceback" in log.read_text() for log in rig.logs):
            problems.append("the daemon log has a traceback")

        adopted = [r for r in cli.records if r["verdict"] == "adopted"]
        latencies = [r["latency_s"] for r in adopted]
        commands = [r["command_s"] for r in cli.records]
        summary_ops = {
            "editors (flock+jq)": sum(len(e.results) for e in editors),
            "CLI (pin hold/release)": len(cli.records),
            "journal decision lines (daemon)": fed,
        }
        figures: dict[str, Any] = {
            "editor edits": dict(sorted(tallies.items())),
            "deliberately invalid edits planned": sum(b for e in editors for _, _, b in e.plan),
            "CLI verdicts": dict(sorted(Counter(r["verdict"] for r in cli.records).items())),
            "CLI command time (lock wait + write) p50/p99/max (s)": (
                f"{_percentile(commands, 0.5):.3f} / {_percentile(commands, 0.99):.3f}"
                f" / {max(commands, default=0.0):.3f}"
            ),
            "CLI command to daemon adoption p50/p99 (s)": (
                f"{_percentile(latencies, 0.5):.3f} / {_percentile(latencies, 0.99):.3f}"
            ),
            **audit_figures,
            "pin-file reads by the sampler": sampler.reads,
            "distinct pin-file versions validated (schema+model+jq)": sampler.versions,
            "of which an editor's invalid edit (then quarantined)": sampler.deliberate_invalid,
            "daemon writes observed (its own agents or models changed)": sampler.daemon_writes,
        }
        return Summary(
            summary_ops,
            lost,
            sampler.invalid,
            problems,
            figures,
            wall,
            quarantined=len(quarantined_files),
            daemon_writes=sampler.daemon_writes,
            versions=sampler.versions,
        )
    finally:
        for child in children:  # only if something above failed half-way
            if child.poll() is None:
                child.kill()
                child.wait()
        rig.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--invalid-rate", type=float, default=0.01)
    parser.add_argument("--dir", type=Path, help="keep the run's files here (default: temp)")
    parser.add_argument(
        "--cli-worker", nargs=4, metavar=("CONFIG", "STATE", "OPS", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.cli_worker:
        config, state, ops, seed = args.cli_worker
        return cli_worker(config, state, int(ops), int(seed))
    import tempfile

    with tempfile.TemporaryDirectory(prefix="soak-concurrency-") as tmp:
        root = args.dir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        summary = run_soak(root, args.ops, args.seed, args.invalid_rate)
    print(summary.text())
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
