"""``failover-watcher pin show|hold|release|set``: operator overrides of the pin file.

Each command edits the pin file under the same lock the daemon and ``flock(1)`` use,
validated against the same model. The daemon adopts the edit as an operator decision
(OPERATOR_OVERRIDE: audited and announced) on its next read; a stopped daemon adopts
it when it starts.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from watcher.cli.common import add_config_arg, report_config_error, settings_from
from watcher.config import ConfigError
from watcher.pins.check import PinFileInvalid
from watcher.pins.schema import AgentPin, Hold, PinFile, iso
from watcher.pins.store import PIN_FILENAME, PinRead, PinStore
from watcher.support.atomic import OwnershipError
from watcher.support.durations import MAX_HOLD_S, bounded_duration


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("pin", help="show or override agent pins")
    add_config_arg(p)
    psub = p.add_subparsers(dest="pin_command", metavar="ACTION")
    psub.required = True
    show = psub.add_parser("show", help="print every agent's pin")
    show.set_defaults(func=cmd_show)
    hold = psub.add_parser("hold", help="keep AGENT on MODEL (a member of its chain)")
    hold.add_argument("agent")
    hold.add_argument("model")
    hold.add_argument("--for", dest="duration",
                      help="e.g. 30m, 2h, at most 7d (default: until released)")
    hold.add_argument("--note", help="why, for the audit and the card")
    hold.set_defaults(func=cmd_hold)
    release = psub.add_parser("release", help="drop AGENT's hold; policy decides again")
    release.add_argument("agent")
    release.set_defaults(func=cmd_release)
    setp = psub.add_parser(
        "set", help="put AGENT on MODEL now (its primary: failback; a fallback: a hold)"
    )
    setp.add_argument("agent")
    setp.add_argument("model")
    setp.set_defaults(func=cmd_set)
    for sp in (show, hold, release, setp):
        add_config_arg(sp, nested=True)


def _actor() -> str:
    return os.environ.get("SUDO_USER") or getpass.getuser()


def _store(args: argparse.Namespace) -> PinStore:
    settings = settings_from(args)
    return PinStore(settings.state_dir / PIN_FILENAME, role="operator")


class _Refused(Exception):
    pass


class _Invalid(Exception):
    """The edit itself would make an invalid agent entry."""


def _broken(path: Path, exc: PinFileInvalid) -> str:
    return (
        f"{path} is invalid on disk ({exc}); nothing changed. The running daemon sets a "
        "hand-broken file aside as fallback-state.json.rejected-<time> and restores the last "
        "good one on its next read; or repair it by hand (README: Recovery runbook)"
    )


def _edit(args: argparse.Namespace, change: Callable[[AgentPin], AgentPin]) -> int:
    try:
        store = _store(args)
    except ConfigError as exc:
        return report_config_error(exc, prog="pin")
    try:

        def fn(read: PinRead) -> PinFile:
            pins = read.pins
            agent = pins.agents.get(args.agent)
            if agent is None:
                known = ", ".join(sorted(pins.agents)) or "none"
                raise _Refused(f"unknown agent {args.agent!r} (known: {known})")
            new_agent = change(agent)
            try:
                AgentPin.model_validate(new_agent.model_dump())
            except ValueError as exc:
                raise _Invalid(str(exc)) from None
            return pins.model_copy(update={"agents": {**pins.agents, args.agent: new_agent}})

        store.update(fn)
    except PinFileInvalid as exc:
        print(f"pin: {_broken(store.path, exc)}", file=sys.stderr)
        return 1
    except _Refused as exc:  # a bad argument: the documented usage error
        print(f"pin: {exc}; nothing changed", file=sys.stderr)
        return 2
    except OwnershipError as exc:
        print(f"pin: {exc} Nothing changed.", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"pin: cannot edit {store.path}: {exc.strerror or exc}; nothing changed",
              file=sys.stderr)
        return 1
    except _Invalid as exc:
        print(f"pin: refused, the result would be invalid: {exc}", file=sys.stderr)
        return 1
    print(f"pin: {args.agent} updated; the watcher adopts it as an operator override")
    return 0


def _check_member(agent: AgentPin, model: str) -> None:
    if model not in agent.chain:
        raise _Refused(f"{model!r} is not in the agent's chain {agent.chain}")


def cmd_hold(args: argparse.Namespace) -> int:
    try:
        seconds = (None if args.duration is None
                   else bounded_duration(args.duration, what="hold", maximum=MAX_HOLD_S))
    except ValueError as exc:
        print(f"pin hold: {exc}; nothing changed", file=sys.stderr)
        return 2
    until = None if seconds is None else iso(time.time() + seconds)

    def change(agent: AgentPin) -> AgentPin:
        _check_member(agent, args.model)
        return agent.held(Hold(model=args.model, by=_actor(), until=until, note=args.note))

    return _edit(args, change)


def cmd_release(args: argparse.Namespace) -> int:
    return _edit(args, lambda agent: agent.model_copy(update={"hold": None}))


def cmd_set(args: argparse.Namespace) -> int:
    def change(agent: AgentPin) -> AgentPin:
        _check_member(agent, args.model)
        # A fallback is kept with a hold (as the daemon would place it), which names who
        # asked; the primary is a failback, which drops any hold.
        hold = None if args.model == agent.primary else Hold(model=args.model, by=_actor())
        return agent.model_copy(
            update={"current_serving": args.model, "in_fallback": args.model != agent.primary,
                    "hold": hold}
        )

    return _edit(args, change)


def cmd_show(args: argparse.Namespace) -> int:
    try:
        store = _store(args)
    except ConfigError as exc:
        return report_config_error(exc, prog="pin")
    if not store.path.exists():
        print(f"pin: no pin file at {store.path} yet", file=sys.stderr)
        return 1
    try:
        pins = store.read().pins
    except PinFileInvalid as exc:
        print(f"pin: {_broken(store.path, exc)}", file=sys.stderr)
        return 1
    for agent_id, a in sorted(pins.agents.items()):
        state = "fallback" if a.in_fallback else "primary"
        extra = f" held by {a.hold.by} until {a.hold.until or 'released'}" if a.hold else ""
        print(f"{agent_id:<12} {a.current_serving:<36} {state}{extra}")
    return 0
