"""The real daemon as a subprocess on real local parts, for tests and soak scripts.

``DaemonRig(root)`` builds, under ``root``: a live journal written by
``systemd-journal-remote`` (``LiveJournal``), the fake model server, the fake Bot API,
the demo's ``openclaw.json`` and a ``watcher.toml`` with short timers. ``start()``
runs ``python -m watcher.cli run`` and waits until its metrics port is published;
``stop()`` sends SIGTERM, ``kill()`` SIGKILL. The reliability tests and the
daemon tests share it, so each of them starts the daemon the same way an operator does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from tests.rigs.wait import wait_until
from watcher.demo import DEMO_TOKEN, PRIMARY, openclaw_config, watcher_config
from watcher.fakes.botapi import FakeBotApi
from watcher.fakes.journal import JournalEntry, LiveJournal
from watcher.fakes.models import FakeModelServer, Reply

T = TypeVar("T")

DEMO_KEY = "test-key-0000"


class DaemonRig:
    """One daemon's world: journal, fakes, config, state dir, and its process."""

    def __init__(
        self,
        root: Path,
        *,
        config_text: Callable[[Path, str, FakeBotApi], str] = watcher_config,
        token: str = DEMO_TOKEN,
        api_key: str = DEMO_KEY,
        history: Iterable[JournalEntry] = (),
        openclaw: Callable[[FakeModelServer], dict[str, Any]] = openclaw_config,
    ) -> None:
        """``history``: entries written before the first live one, with their own (old)
        realtimes; the journal's clock only goes forward, so they must come first."""
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.fake = FakeModelServer().start_in_thread()
        # Probes would fail the agents back quickly; keep the primary throttled for them.
        self.fake.script(PRIMARY.partition("/")[2], probe=Reply.throttle("600"))
        self.bot = FakeBotApi(token).start()
        # ``openclaw`` builds the gateway config from the fake server (default: the demo's).
        (root / "openclaw.json").write_text(json.dumps(openclaw(self.fake)))
        self.journal = LiveJournal(root / "journal")
        for entry in history:
            self.journal.append(entry)
        self.journal.append("[gateway] listening")
        self.journal.flush()
        self.config = root / "watcher.toml"
        self.config.write_text(config_text(root, f"journal:{root / 'journal'}", self.bot))
        self.state = root / "state"
        self.env = {**os.environ, "DEMO_BOT_TOKEN": token, "DEMO_DEEPSEEK_KEY": api_key}
        self.proc: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []

    def start(self, *, wait: bool = True) -> None:
        (self.state / "metrics.port").unlink(missing_ok=True)
        log = self.root / f"daemon-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "watcher.cli", "run", "--config", str(self.config)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if wait:
            wait_until(lambda: (self.state / "metrics.port").exists(), what="daemon start")

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def pins(self) -> dict[str, Any]:
        path = self.state / "fallback-state.json"
        return json.loads(path.read_text()) if path.exists() else {"agents": {}}

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``failover-watcher ARGS --config <ours>`` as the operator would."""
        return subprocess.run(
            [sys.executable, "-m", "watcher.cli", *args, "--config", str(self.config)],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
        )

    def status(self) -> dict[str, Any]:
        return json.loads(self.cli("status", "--json").stdout)  # type: ignore[no-any-return]

    def metrics(self) -> dict[str, float]:
        from prometheus_client.parser import text_string_to_metric_families

        port = int((self.state / "metrics.port").read_text())
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(text.decode()):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                values[f"{sample.name}{{{labels}}}"] = sample.value
        return values

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.journal.close()
        self.bot.stop()
        self.fake.stop_in_thread()
