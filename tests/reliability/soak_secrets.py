"""Secrets audit: run the real daemon and every everyday command with a
recognisable fake bot token and API key, then count them in everything it leaves.

By hand, from the repo root (prints the count per place; exit 1 if any is not 0)::

    .venv/bin/python -m tests.reliability.soak_secrets [--keep DIR] [--rounds N]

``tests/reliability/test_reliability_secrets.py`` runs the same ``audit_secrets`` with
one round. The incident drives every path a secret could leak through: auth failures
whose journal details name keys and paths, probes of the paid OpenAI-compatible fake
(the key goes out as a bearer header; the run checks the fake received it, so the count
cannot be 0 merely because the key was never used), Telegram answering 500, 429, 401
and being down, DEBUG logging, then ``validate-config``, ``status [--json]``,
``pin show``, ``audit verify``, ``probe MODEL``, ``replay`` and the breaker's
``validate-config``/``status``. The places searched: every daemon log, every command's
stdout and stderr, every Bot API call the fake received (cards included), every file
in the state directory (``audit.jsonl``, ``core-state.json``, the pin file, quarantine
files), the outbox database dumped with sqlite3, and the metrics text.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.rigs.daemon_rig import DaemonRig, wait_until
from watcher.demo import PAID, PRIMARY
from watcher.demo import watcher_config as _config
from watcher.fakes.botapi import FakeBotApi, Scripted
from watcher.fakes.botapi_wire import error_body
from watcher.fakes.models import Reply

TOKEN = "987654:SECRET-canary-bot-token-XYZ"
TOKEN_SECRET = TOKEN.partition(":")[2]
API_KEY = "sk-canary-api-key-XYZ"
NEEDLES = {"token": TOKEN, "token-secret": TOKEN_SECRET, "api-key": API_KEY}

PAID_MODEL = PAID.partition("/")[2]


def _line(candidate: str, reason: str, detail: str, nxt: str = "ollama/glm-5:cloud") -> str:
    return (
        "[model-fallback/decision] model fallback decision: decision=candidate_failed "
        f"requested={PRIMARY} candidate={candidate} reason={reason} next={nxt} detail={detail}"
    )


# Real gateways echo what the provider said; some providers echo the key (OpenAI masks
# it, others do not), and errors name the files the key came from.
AUTH_LINES = [
    _line(PRIMARY, "rate_limit", "429 rate_limit_exceeded", nxt=PAID),
    _line(
        PAID, "auth", f"401 Incorrect API key provided: {API_KEY}. See ~/.openclaw/openclaw.json"
    ),
    _line(PAID, "auth", f"401 invalid x-api-key {API_KEY} (apiKey from $DEMO_DEEPSEEK_KEY)"),
    _line(PAID, "auth", f"403 Authorization: Bearer {API_KEY} rejected for /v1/chat/completions"),
]


def _debug_config(root: Path, journal_spec: str, bot: FakeBotApi) -> str:
    return _config(root, journal_spec, bot).replace('log_level = "INFO"', 'log_level = "DEBUG"')


BREAKER_TOML = """
[breaker]
gateway_config = "{gateway}"
state_dir = "{state}"
journal = "{journal}"
units = []
check_interval = 0.2

[breaker.providers.deepseek]
call_price = 0.10
daily_cap = 1.00

[alerts]
bot_token = "env:DEMO_BOT_TOKEN"
chat_id = 4242
base_url = "{base_url}"
"""


@dataclass
class SecretsReport:
    """Occurrences of each needle per place, plus proof the secrets were really used."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    key_sent_to_fake: int = 0
    cards: int = 0
    telegram_errors_seen: int = 0
    exit_codes: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, place: str, text: str) -> None:
        found = self.counts.setdefault(place, Counter())
        for name, needle in NEEDLES.items():
            found[name] += text.count(needle)

    def total(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())

    def leaks(self) -> dict[str, dict[str, int]]:
        return {
            p: {k: v for k, v in c.items() if v} for p, c in self.counts.items() if any(c.values())
        }

    def table(self) -> str:
        width = max(len(p) for p in self.counts)
        rows = [f"{'place':<{width}}  " + "  ".join(f"{n:>12}" for n in NEEDLES)]
        for place in sorted(self.counts):
            c = self.counts[place]
            rows.append(f"{place:<{width}}  " + "  ".join(f"{c[n]:>12}" for n in NEEDLES))
        rows.append(
            f"total {self.total()}; key sent to the paid fake {self.key_sent_to_fake} time(s); "
            f"{self.cards} card(s) delivered; {self.telegram_errors_seen} Telegram error(s) served"
        )
        rows.append("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items()))
        rows.append("exit codes: " + ", ".join(f"{k} {v}" for k, v in self.exit_codes.items()))
        return "\n".join(rows)


def _dump_sqlite(path: Path) -> str:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return "\n".join(con.iterdump())
    finally:
        con.close()


def _run(rig: DaemonRig, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], env=rig.env, capture_output=True, text=True, timeout=60
    )


def _commands(rig: DaemonRig, report: SecretsReport) -> None:
    """Every everyday command, three at a time (they only read); outputs searched."""
    cfg = ("--config", str(rig.config))
    openclaw = ("--openclaw", str(rig.root / "openclaw.json"))
    w, b = "watcher.cli", "watcher.breaker.cli"
    # A config with the token pasted in where its reference belongs: refused, not echoed.
    pasted = rig.root / "pasted.toml"
    pasted.write_text(rig.config.read_text().replace('"env:DEMO_BOT_TOKEN"', json.dumps(TOKEN)))
    breaker = rig.root / "breaker.toml"
    breaker.write_text(
        BREAKER_TOML.format(
            gateway=rig.root / "openclaw.json",
            state=rig.root / "breaker-state",
            journal=rig.root / "journal",
            base_url=rig.bot.base_url,
        )
    )
    commands: dict[str, tuple[str, ...]] = {
        "validate-config": (w, "validate-config", *cfg),
        "status --json": (w, "status", "--json", *cfg),
        "status": (w, "status", *cfg),
        "pin show": (w, "pin", "show", *cfg),
        "audit verify": (w, "audit", "verify", "--state-dir", str(rig.state)),
        "audit tail": (w, "audit", "tail", "--state-dir", str(rig.state)),
        "probe MODEL": (w, "probe", PAID, *cfg, *openclaw, "--json"),
        # Not with --config: replay re-validates the settings and refuses the provider
        # credential it dumped (a separate bug, see the issue-10 report).
        "replay --json": (w, "replay", str(rig.root / "journal"), *openclaw, "--json"),
        "replay": (w, "replay", str(rig.root / "journal"), *openclaw),
        "validate-config (pasted token)": (w, "validate-config", "--config", str(pasted)),
        "breaker status --json": (b, "status", "--json", "--config", str(breaker)),
        "breaker status": (b, "status", "--config", str(breaker)),
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        outputs = pool.map(lambda a: _run(rig, *a), commands.values())
        done = dict(zip(commands, outputs, strict=True))
    for name, proc in done.items():
        report.add(f"cmd {name} stdout", proc.stdout)
        report.add(f"cmd {name} stderr", proc.stderr)
        report.exit_codes[name] = proc.returncode
    assert json.loads(done["status --json"].stdout)["agents"], done["status --json"].stderr
    assert done["audit verify"].returncode == 0, done["audit verify"].stdout
    assert '"model"' in done["probe MODEL"].stdout, done["probe MODEL"].stderr
    assert done["replay --json"].returncode == 0, done["replay --json"].stderr
    assert done["breaker status --json"].returncode == 0, done["breaker status --json"].stderr
    assert done["validate-config (pasted token)"].returncode != 0
    state = rig.root / "breaker-state"
    for f in sorted(state.rglob("*")) if state.exists() else []:
        if f.is_file():
            report.add(f"breaker-state/{f.name}", f.read_bytes().decode("utf-8", "replace"))


def _telegram_trouble(rig: DaemonRig, report: SecretsReport) -> None:
    rig.bot.script(
        Scripted.server_error(500),
        Scripted.retry_after(1),
        Scripted(401, error_body(401, "Unauthorized")),
    )
    report.telegram_errors_seen = 3


def audit_secrets(root: Path, *, rounds: int = 1) -> SecretsReport:
    """One daemon life (or ``rounds``) through the incident; every place searched."""
    report = SecretsReport()
    rig = DaemonRig(root, config_text=_debug_config, token=TOKEN, api_key=API_KEY)
    try:
        # Probes of the paid model are answered 401 so it stays down and keeps being probed.
        rig.fake.script(PAID_MODEL, probe=Reply.unauthorized(f"invalid api key {API_KEY}"))
        _telegram_trouble(rig, report)
        t0 = time.monotonic()
        rig.start()
        report.seconds["start"] = time.monotonic() - t0
        for _ in range(rounds):
            for line in AUTH_LINES:
                rig.journal.append(line)
            rig.journal.flush()
            wait_until(
                lambda: rig.fake.requests_for(PAID_MODEL, probe=True),
                timeout=30,
                what="a probe of the paid model",
            )
            rig.bot.go_down()
            rig.journal.append(_line(PAID, "auth", f"401 key {API_KEY} revoked"))
            rig.journal.flush()
            time.sleep(1.5)
            rig.bot.come_up()
            wait_until(
                lambda: len(rig.bot.messages) >= 2, timeout=30, what="cards after the outage"
            )
        report.seconds["incident"] = time.monotonic() - t0
        port = int((rig.state / "metrics.port").read_text())
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        report.add("metrics", metrics.decode())
        t1 = time.monotonic()
        _commands(rig, report)
        report.seconds["commands"] = time.monotonic() - t1
        assert rig.stop() == 0
        report.seconds["all"] = time.monotonic() - t0
    finally:
        rig.close()
    sent = rig.fake.requests_for(PAID_MODEL)
    report.key_sent_to_fake = sum(1 for r in sent if r.authorization == f"Bearer {API_KEY}")
    report.cards = len(rig.bot.messages)
    for log in rig.logs:
        report.add(f"log {log.name}", log.read_text(errors="replace"))
    for call in rig.bot.calls:
        report.add("Bot API calls (cards)", json.dumps(call.params, default=str))
    for msg in rig.bot.messages:
        report.add("Bot API calls (cards)", msg.text)
    for f in sorted(rig.state.rglob("*")):
        if not f.is_file():
            continue
        rel = f"state/{f.relative_to(rig.state)}"
        report.add(rel, f.read_bytes().decode("utf-8", "replace"))
        if f.suffix in (".sqlite", ".sqlite3", ".db"):
            report.add(f"{rel} (sqlite dump)", _dump_sqlite(f))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="run in this directory and keep it")
    parser.add_argument("--rounds", type=int, default=3, help="incident rounds (default 3)")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        report = audit_secrets(args.keep, rounds=args.rounds)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            report = audit_secrets(Path(tmp), rounds=args.rounds)
    print(report.table())
    return 0 if report.total() == 0 and report.key_sent_to_fake > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
