"""``failover-watcher demo``: the incidents side by side, then the real daemon, live.

Part 1 runs every bundled scenario under three policies, the watcher's history: the
original (before 14 May: no failback at all), naive (14 to 20 May: failback after two
good probes, nothing else) and the default, and prints the comparison. Part 2 starts
the real daemon as a subprocess against real local parts, for about 20 seconds:

- a live journal written by ``systemd-journal-remote`` (a text file when the binary
  is missing, with a note);
- the fake model server (Ollama and OpenAI-compatible, on 127.0.0.1), whose cloud
  primary throttles real traffic for a while but keeps answering probes: the shape
  of the 20 May flap;
- a small demo gateway that sends each agent's traffic to the model its pin names,
  walks the chain on failure and logs ``[model-fallback/decision]`` lines exactly as
  the log contract says;
- the fake Telegram Bot API, which receives the cards through python-telegram-bot.

It ends by printing where to look: the pin file, the cards received, ``status``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watcher.fakes.botapi import FakeBotApi
from watcher.fakes.journal import LiveJournal, journal_remote_binary
from watcher.fakes.models import FakeModelServer, Reply

PRIMARY = "ollama/glm-5.1:cloud"
PAID = "deepseek/deepseek-v4-flash"
CHAINS = {
    "nexus": [PRIMARY, PAID, "ollama/glm-5:cloud"],
    "george": [PRIMARY, "ollama/gemma4:31b-cloud", "ollama/glm-5:cloud"],
    "hermes": ["ollama/kimi-k2.5:cloud", PRIMARY, "ollama/glm-5:cloud"],
}
DEMO_TOKEN = "123456:DEMO-not-a-real-token"  # noqa: S105 - the fake Bot API's
CHAT_ID = 4242
OPERATOR_ID = 777001  # the allowlisted Telegram user of the demo
STRANGER_ID = 666013


def _say(text: str = "") -> None:
    print(text, flush=True)


def comparison() -> str:
    from watcher.simulate import compare
    from watcher.simulate.report import format_comparison

    return format_comparison(compare(policies=("original", "naive", "default")))


PLUGIN_DIR = Path(__file__).resolve().parents[1] / "gateway-plugin"  # in a checkout


def openclaw_config(fake: FakeModelServer, pin_file: Path | None = None) -> dict[str, Any]:
    """The demo gateway's ``openclaw.json``. With ``pin_file`` (and a checkout that has
    ``gateway-plugin/``) it also loads the fallback-pin plugin the way the README's
    install commands do, so ``status`` shows a configuration that lets the pin steer."""
    config = _openclaw_core(fake)
    if pin_file is not None and (PLUGIN_DIR / "openclaw.plugin.json").is_file():
        config["plugins"] = {
            "load": {"paths": [str(PLUGIN_DIR)]},
            "entries": {"fallback-pin": {
                "enabled": True,
                "hooks": {"allowConversationAccess": True},
                "config": {"pinFile": str(pin_file)},
            }},
        }
    return config


def _openclaw_core(fake: FakeModelServer) -> dict[str, Any]:
    return {
        "agents": {
            "defaults": {"model": {"primary": PRIMARY, "fallbacks": CHAINS["nexus"][1:]}},
            "entries": {
                a: {"model": {"primary": c[0], "fallbacks": c[1:]}} for a, c in CHAINS.items()
            },
        },
        "models": {
            "providers": {
                "ollama": {"baseUrl": fake.base_url("ollama"), "api": "ollama"},
                "deepseek": {
                    "baseUrl": fake.base_url("deepseek", "openai"),
                    "api": "openai-completions",
                    "apiKey": "${DEMO_DEEPSEEK_KEY}",
                },
            }
        },
    }


def watcher_config(root: Path, journal_spec: str, bot: FakeBotApi) -> str:
    return f"""\
# failover-watcher demo config: short timers so a whole incident fits in 20 seconds.
state_dir = "{root / "state"}"
gateway_config = "{root / "openclaw.json"}"
tick_interval_s = 1
log_level = "INFO"

[journal]
source = "{journal_spec}"
start_at = "head"

[policy]
cooldown_base_s = 6
cooldown_cap_s = 60
probe_interval_s = 2

[providers.deepseek]
paid = true
credential = "env:DEMO_DEEPSEEK_KEY"

[probes]
interval_s = 2
jitter_s = 0.2
first_run_after_s = 1

[alerts]
bot_token = "env:DEMO_BOT_TOKEN"
chat_id = {CHAT_ID}
base_url = "{bot.base_url}"
private_per_second = 20

[metrics]
port = 0

[plugin]
# The demo's stand-in gateway reads the pin file itself; a real one needs the plugin.
required = false
"""


class DemoGateway:
    """Just enough of the OpenClaw gateway: pin-driven chain walks, contract log lines."""

    def __init__(self, fake: FakeModelServer, pin_path: Path, write: Any) -> None:
        self.fake = fake
        self.pin_path = pin_path
        self.write = write
        self.turns = 0

    def pinned(self, agent: str) -> str:
        try:
            pins = json.loads(self.pin_path.read_text())
            return str(pins["agents"][agent]["current_serving"])
        except (OSError, ValueError, KeyError):
            return CHAINS[agent][0]

    async def turn(self, agent: str) -> None:
        self.turns += 1
        chain = CHAINS[agent]
        start = self.pinned(agent)
        requested = start
        for i in range(chain.index(start), len(chain)):
            model = chain[i]
            provider, _, name = model.partition("/")
            api = "openai" if provider == "deepseek" else "ollama"
            status, body, _retry_after = await self.fake.send_traffic(name, provider, api)
            ts = datetime.now(UTC).isoformat(timespec="milliseconds")
            if status == 200:
                if model != requested:
                    self.write(
                        f"{ts} [model-fallback/decision] model fallback decision: "
                        f"decision=candidate_succeeded requested={requested} candidate={model} "
                        "reason=unknown next=none"
                    )
                return
            nxt = chain[i + 1] if i + 1 < len(chain) else "none"
            reason = "rate_limit" if status == 429 else "server_error"
            self.write(
                f"{ts} [diagnostic] lane task error: lane=session:agent:{agent}:main "
                f'error="{status} {body[:60]}" errorName=FailoverError'
            )
            self.write(
                f"{ts} [model-fallback/decision] model fallback decision: "
                f"decision=candidate_failed requested={requested} candidate={model} "
                f"reason={reason} next={nxt} detail={status} {body[:120]}"
            )


def _wait_for(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.1)
    return False


def run_demo(seconds: float = 20.0, keep: Path | None = None) -> int:
    _say("failover-watcher demo")
    _say("=" * 21)
    _say()
    _say("Part 1: the incidents that shaped it, under the watcher's three policies: the")
    _say("original (before 14 May: it never failed back), naive (14-20 May: back after two")
    _say("good probes) and the default. Simulated on a virtual clock through the real parser,")
    _say("core, pin store, dedup, cards and the gateway plugin (failover-watcher simulate")
    _say("NAME shows any one in detail; simulate --seeds 1-20 sweeps twenty afternoons).")
    _say()
    _say(comparison())
    _say()
    _say("Read it: the original leaves the 14 May stale pin on the paid fallback for three")
    _say("hours; naive fails back fast but flips into the 20 May throttle again and again;")
    _say("the default fails back as fast, on a real turn's success instead of a probe's word,")
    _say("and never into the throttle.")
    _say()
    root = keep or Path(tempfile.mkdtemp(prefix="failover-watcher-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_live(root, seconds))


async def _live(root: Path, seconds: float) -> int:
    _say(f"Part 2: the real daemon for {seconds:.0f} s on loopback fakes, in {root}")
    fake = await FakeModelServer().start()
    bot = FakeBotApi(DEMO_TOKEN).start()
    pins = root / "state" / "fallback-state.json"
    (root / "openclaw.json").write_text(json.dumps(openclaw_config(fake, pins), indent=2))
    journal: LiveJournal | None = None
    if journal_remote_binary() is not None:
        journal = LiveJournal(root / "journal")
        journal_spec = f"journal:{root / 'journal'}"

        def write(line: str) -> None:
            assert journal is not None
            journal.append(line)
            journal.flush()
    else:
        _say("  note: systemd-journal-remote is not installed; using a text log file instead")
        log_path = root / "gateway.log"
        log_path.touch()
        journal_spec = f"file:{log_path}"

        def write(line: str) -> None:
            with log_path.open("a") as fh:
                fh.write(line + "\n")

    # The gateway has been up a while: its journal exists before the watcher starts.
    write(
        f"{datetime.now(UTC).isoformat(timespec='milliseconds')} [gateway] listening on 127.0.0.1"
    )
    config = root / "watcher.toml"
    config.write_text(
        watcher_config(root, journal_spec, bot)
        + f"\n[control]\nenabled = true\nallowed_user_ids = [{OPERATOR_ID}]\n"
    )
    env = {**os.environ, "DEMO_BOT_TOKEN": DEMO_TOKEN, "DEMO_DEEPSEEK_KEY": "demo-key-123456"}
    daemon_log = (root / "daemon.log").open("w")
    cmd = [sys.executable, "-m", "watcher.cli", "run", "--config", str(config)]
    proc = subprocess.Popen(cmd, env=env, stdout=daemon_log, stderr=subprocess.STDOUT)
    state = root / "state"
    try:
        if not await asyncio.to_thread(_wait_for, state / "metrics.port", 15):
            _say("  the daemon did not start; its log:")
            _say((root / "daemon.log").read_text())
            return 1
        gateway = DemoGateway(fake, state / "fallback-state.json", write)
        start = time.monotonic()
        phase = "calm"
        commands = [  # (at t, who, text): the operator and a stranger in the alerts chat
            (5.0, OPERATOR_ID, "/status"),
            (6.0, STRANGER_ID, "/release nexus"),
            (seconds - 4.0, OPERATOR_ID, "/hold hermes ollama/glm-5:cloud 1h demo hold"),
        ]
        while (t := time.monotonic() - start) < seconds:
            if t >= 3 and phase == "calm":
                phase = "throttle"
                _say(
                    f"  t={t:4.1f}s  {PRIMARY} starts answering real traffic 429; "
                    "probes still get 200"
                )
                fake.script(
                    PRIMARY.partition("/")[2], traffic=Reply.throttle("5"), probe=Reply.ok()
                )
            if t >= 8 and phase == "throttle":
                phase = "recovered"
                _say(f"  t={t:4.1f}s  the throttle ends; the primary serves traffic again")
                fake.script(PRIMARY.partition("/")[2], traffic=Reply.ok(), probe=Reply.ok())
            while commands and t >= commands[0][0]:
                _, user, text = commands.pop(0)
                who = "the operator" if user == OPERATOR_ID else "a stranger"
                _say(f"  t={t:4.1f}s  {who} sends {text!r} in the Telegram chat")
                bot.push_message(text, user_id=user, chat_id=CHAT_ID)
            for agent in CHAINS:
                await gateway.turn(agent)
            await asyncio.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 20)
        daemon_log.close()
        if journal is not None:
            journal.close()
        await fake.stop()
    messages = bot.messages
    bot.stop()
    _say(f"  the daemon drained and exited with code {code} after SIGTERM")
    _say()
    cards = [m for m in messages if m.reply_to is None]
    replies = [m for m in messages if m.reply_to is not None]
    _say(f"Cards Telegram received ({len(cards)}):")
    for m in cards:
        title = m.text.splitlines()[0] if m.text else ""
        buttons = _button_labels(m.reply_markup)
        _say(f"  - {_strip_tags(title)}" + (f"  [buttons: {buttons}]" if buttons else ""))
    _say()
    _say(f"Replies to Telegram commands ({len(replies)}):")
    for m in replies:
        lines = _strip_tags(m.text).splitlines()
        more = f"  (+{len(lines) - 3} more lines)" if len(lines) > 3 else ""
        _say("  - " + " / ".join(line.strip() for line in lines[:3] if line.strip()) + more)
    _say()
    status = subprocess.run(
        [sys.executable, "-m", "watcher.cli", "status", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    _say("failover-watcher status:")
    _say("\n".join("  " + line for line in status.stdout.splitlines()))
    _say()
    _say("Where to look:")
    _say(f"  pin file the gateway reads:  {state / 'fallback-state.json'}")
    _say(
        f"  audit log (hash-chained):    {state / 'audit.jsonl'}  "
        f"(failover-watcher audit verify --state-dir {state})"
    )
    _say(f"  daemon log:                  {root / 'daemon.log'}")
    _say(f"  status again:                failover-watcher status --config {config}")
    return 0 if code == 0 and cards and replies else 1


def _button_labels(markup: Any) -> str:
    if not isinstance(markup, dict):
        return ""
    rows = markup.get("inline_keyboard") or []
    return ", ".join(str(b.get("text", "")) for row in rows for b in row)


def _strip_tags(text: str) -> str:
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", text))
