"""``failover-watcher drill --live AGENT``: exercise the swap machinery itself.

For each member of the agent's chain in turn (the primary first, as the baseline):

1. hold the agent on it with a short, audited hold (``by`` the operator, note
   ``drill``), written to the pin file under its lock as ``pin hold`` does: the
   plugin obeys the file on the next run, and the daemon adopts the hold as an
   operator override;
2. send one synthetic turn through the gateway with its own CLI (``[drill]
   openclaw``; ``[drill] gateway_token`` is a credential reference handed to it as
   ``OPENCLAW_GATEWAY_TOKEN``, never printed);
3. find that turn's ``[fallback-pin] run outcome`` line in the gateway's log (the
   watcher's ``[journal] source``) and check that the held member really served it.

It reports each member's latency and its delta against the primary, and releases
the hold at the end, on failure and on Ctrl-C or SIGTERM too. It needs the gateway
plugin (without it the pin steers nothing, and nothing can be confirmed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from watcher.config import WatcherSettings
from watcher.gateway.chains import GatewayConfigError, load_gateway_config
from watcher.parse.records import RunOutcome
from watcher.pins.schema import Hold, PinFile, iso
from watcher.pins.store import PIN_FILENAME, PinRead, PinStore
from watcher.probe.providers import CredentialError, CredentialRef
from watcher.source import SourceError, open_source

HOLD_TTL_S = 600.0  # a drill's hold ends by itself even if the drill is killed -9
OUTCOME_WAIT_S = 20.0  # the outcome line can trail the CLI's exit
DRILL_NOTE = "drill"
PROMPT = "failover-watcher live drill: reply with the single word OK."


@dataclass(frozen=True, slots=True)
class LiveMember:
    model: str
    served: bool
    latency_ms: int | None
    served_by: str | None  # what the outcome line says served the turn
    why: str | None = None  # when not served

    def to_json(self, primary_ms: int | None) -> dict[str, Any]:
        delta = (None if self.latency_ms is None or primary_ms is None
                 else self.latency_ms - primary_ms)
        return {"model": self.model, "served": self.served, "latency_ms": self.latency_ms,
                "delta_ms": delta, "served_by": self.served_by, "why": self.why}


class _Stop(Exception):
    """SIGTERM during a drill: leave through the same ``finally`` as Ctrl-C."""


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _set_hold(store: PinStore, agent: str, model: str | None, by: str) -> None:
    """Hold ``agent`` on ``model`` (None: release the hold)."""

    def change(read: PinRead) -> PinFile:
        pins = read.pins
        pin = pins.agents[agent]
        if model is None:
            new = pin.model_copy(update={"hold": None})
        else:
            until = iso(time.time() + HOLD_TTL_S)
            new = pin.held(Hold(model=model, by=by, until=until, note=DRILL_NOTE))
        return pins.model_copy(update={"agents": {**pins.agents, agent: new}})

    store.update(change)


def _outcome(settings: WatcherSettings, session_key: str, since: float) -> RunOutcome | None:
    """The run outcome line of ``session_key`` in the gateway's log, if it is there."""
    j = settings.journal
    ago = max(5, int(time.time() - since) + 5)
    source = open_source(j.source, units=j.units, identifiers=j.identifiers,
                         start_at=f"since:{ago}s", follow=False)


    async def scan() -> RunOutcome | None:
        async for batch in source.batches():  # follow=False: ends at the journal's end
            for entry in batch.entries:
                record = source.parse(entry)
                if isinstance(record, RunOutcome) and record.session == session_key:
                    return record
        return None

    try:
        source.open()
        return asyncio.run(scan())
    finally:
        source.close()


def _turn(argv: list[str], env: dict[str, str], agent: str, timeout: float
          ) -> tuple[str, int, float, str]:
    session = f"drill-{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    proc = subprocess.run(
        [*argv, "agent", "--agent", agent, "--session-key", session, "--message", PROMPT],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False,
    )
    elapsed = time.monotonic() - started
    err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    return session, proc.returncode, elapsed, (err[-1] if err else "")


def run_live(args: argparse.Namespace, settings: WatcherSettings) -> int:
    path = (args.openclaw or settings.gateway_config).expanduser()
    try:
        chain = load_gateway_config(path).chains.get(args.live)
    except GatewayConfigError as exc:
        print(f"drill: {path} cannot be read as chains: {'; '.join(exc.problems)}",
              file=sys.stderr)
        return 2
    if chain is None:
        print(f"drill --live: no agent {args.live!r} in {path}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    if settings.drill.gateway_token is not None:
        try:
            token = CredentialRef.parse(settings.drill.gateway_token).resolve()
        except CredentialError as exc:
            print(f"drill --live: [drill] gateway_token: {exc}", file=sys.stderr)
            return 2
        env["OPENCLAW_GATEWAY_TOKEN"] = token.get_secret_value()
    argv = shlex.split(settings.drill.openclaw)
    timeout = args.timeout if args.timeout is not None else 180.0
    store = PinStore(settings.state_dir / PIN_FILENAME, role="operator")
    by = os.environ.get("SUDO_USER") or os.environ.get("USER") or "operator"
    members: list[LiveMember] = []
    try:
        with _terminate_as_interrupt():
            for model in chain:
                _set_hold(store, args.live, model, by)
                since = time.time()
                try:
                    session, rc, elapsed, err = _turn(argv, env, args.live, timeout)
                except (OSError, subprocess.TimeoutExpired) as exc:
                    members.append(LiveMember(model, False, None, None, f"the turn: {exc}"))
                    continue
                key = f"agent:{args.live}:{session}"
                deadline = time.monotonic() + OUTCOME_WAIT_S
                outcome = _outcome(settings, key, since)
                while outcome is None and time.monotonic() < deadline:
                    time.sleep(0.5)
                    outcome = _outcome(settings, key, since)
                members.append(_judge(model, rc, elapsed, err, outcome))
    except (KeyboardInterrupt, _Stop):
        print("drill --live: interrupted; releasing the hold", file=sys.stderr)
        return _release(store, args.live, by, code=130)
    except (SourceError, OSError) as exc:
        print(f"drill --live: {exc}; releasing the hold", file=sys.stderr)
        return _release(store, args.live, by, code=1)
    except BaseException:
        _release(store, args.live, by, code=1)
        raise
    code = _release(store, args.live, by, code=0 if all(m.served for m in members) else 1)
    primary_ms = members[0].latency_ms if members and members[0].served else None
    if args.json:
        print(json.dumps({"schema": 1, "agent": args.live,
                          "members": [m.to_json(primary_ms) for m in members]}, indent=2))
    else:
        print(_render(args.live, members, primary_ms))
    return code


def _judge(model: str, rc: int, elapsed: float, err: str, outcome: RunOutcome | None
           ) -> LiveMember:
    ms = round(elapsed * 1000)
    if outcome is None:
        why = f"no run outcome line for the turn (exit {rc}{': ' + err if err else ''})"
        return LiveMember(model, False, ms, None, why)
    served_by = str(outcome.model) if outcome.model is not None else None
    if not outcome.ok:
        return LiveMember(model, False, ms, served_by, f"the turn failed: {outcome.error}")
    if served_by != model:
        return LiveMember(model, False, ms, served_by, f"{served_by} served it, not {model}")
    return LiveMember(model, True, ms, served_by)


def _release(store: PinStore, agent: str, by: str, *, code: int) -> int:
    try:
        _set_hold(store, agent, None, by)
    except (OSError, ValueError) as exc:
        print(f"drill --live: could not release the hold: {exc}; release it with "
              f"failover-watcher pin release {agent}", file=sys.stderr)
        return 1
    return code


def _render(agent: str, members: list[LiveMember], primary_ms: int | None) -> str:
    lines = [f"live drill of {agent} through the gateway:"]
    for i, m in enumerate(members):
        role = "primary  " if i == 0 else f"fallback{i}"
        if m.served:
            delta = ("" if primary_ms is None or m.latency_ms is None or i == 0
                     else f" ({m.latency_ms - primary_ms:+d} ms)")
            lines.append(f"  {role}  {m.model:<40} served in {m.latency_ms} ms{delta}")
        else:
            lines.append(f"  {role}  {m.model:<40} NOT SERVED: {m.why}")
    ok = sum(m.served for m in members)
    lines.append(f"drill --live: {ok}/{len(members)} member(s) served a real turn; hold released")
    return "\n".join(lines)
