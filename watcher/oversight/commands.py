"""Operator commands as typed values: ``parse_command(text, chains)`` or a clear error.

Pure. Validation happens here, against the chains the watcher currently knows, so a
bad argument is answered before anything is decided: an unknown agent, a model not in
its chain, a bad or too long duration, an event key that names no card type. The
``CommandError`` message is the reply the operator reads; it always says what to type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from watcher.core.transitions import NEVER_SUPPRESSED, TransitionType
from watcher.support.durations import MAX_HOLD_S, bounded_duration

USAGE = {
    "status": "/status",
    "hold": "/hold <agent> <model> [duration|-] [note]",
    "release": "/release <agent>",
    "failback": "/failback <agent>",
    "mute": "/mute <event-key> <duration>",
    "help": "/help",
}
HELP = "\n".join(
    [
        "Commands:",
        f"{USAGE['status']}: agents, serving model, fallbacks, cooldowns, flaps, mutes",
        f"{USAGE['hold']}: keep an agent on a chain member (- or no duration: until released)",
        f"{USAGE['release']}: drop the agent's hold",
        f"{USAGE['failback']}: probe the primary now and fail back if it answers",
        f"{USAGE['mute']}: mute one card key (still counted as suppressed)",
        "Durations: 90s, 15m, 2h, 1d.",
    ]
)


class CommandError(ValueError):
    """The command cannot be run as typed; ``str(err)`` is the reply."""


@dataclass(frozen=True)
class StatusCommand:
    pass


@dataclass(frozen=True)
class HelpCommand:
    pass


@dataclass(frozen=True)
class HoldCommand:
    agent: str
    model: str
    duration_s: float | None = None  # None: until released
    note: str | None = None


@dataclass(frozen=True)
class ReleaseCommand:
    agent: str


@dataclass(frozen=True)
class FailbackCommand:
    agent: str


@dataclass(frozen=True)
class MuteCommand:
    key: str
    duration_s: float


Command = StatusCommand | HelpCommand | HoldCommand | ReleaseCommand | FailbackCommand | MuteCommand
NOTE_MAX = 200


def command_name(text: str, bot_username: str | None = None) -> str | None:
    """``/hold@my_bot a b`` -> ``hold``; None if ``text`` is not a command (or is one
    addressed to another bot in a group)."""
    if not text.startswith("/"):
        return None
    head = text.split(maxsplit=1)[0][1:]
    name, _, target = head.partition("@")
    if target and bot_username and target.lower() != bot_username.lower():
        return None
    return name.lower() or None


def parse_duration_arg(text: str, *, what: str, maximum: float) -> float:
    try:
        return bounded_duration(text, what=what, maximum=maximum)
    except ValueError as exc:
        raise CommandError(f"{exc} here" if "at most" in str(exc) else str(exc)) from None


def _agent(name: str, chains: Mapping[str, Sequence[str]]) -> str:
    if name not in chains:
        known = ", ".join(sorted(chains)) or "none"
        raise CommandError(f"unknown agent {name!r} (known: {known})")
    return name


def _need(args: list[str], count: int, name: str) -> None:
    if len(args) < count:
        raise CommandError(f"missing argument: {USAGE[name]}")


def validate_key(key: str) -> str:
    """A dedup key is ``TYPE|agents|from|to|class`` (``status`` lists recent ones)."""
    parts = key.split("|")
    if len(parts) != 5:
        raise CommandError(
            f"bad event key {key!r}: a key looks like "
            "FALLBACK_FIRED|agent|from-model|to-model|class (/status lists recent keys)"
        )
    try:
        kind = TransitionType(parts[0])
    except ValueError:
        raise CommandError(f"bad event key {key!r}: {parts[0]!r} is no card type") from None
    if kind in NEVER_SUPPRESSED:
        raise CommandError(f"{kind.value} cards are never suppressed; a mute would do nothing")
    return key


def parse_command(
    text: str,
    chains: Mapping[str, Sequence[str]],
    *,
    bot_username: str | None = None,
    max_hold_s: float = MAX_HOLD_S,
    max_mute_s: float = 86400.0,
) -> Command:
    """One message text -> one command. Raises ``CommandError`` with the reply."""
    name = command_name(text.strip(), bot_username)
    if name is None:
        raise CommandError("not a command; send /help for the list")
    args = text.split()[1:]
    if name in ("help", "start"):
        return HelpCommand()
    if name == "status":
        return StatusCommand()
    if name == "hold":
        _need(args, 2, name)
        agent = _agent(args[0], chains)
        model = args[1]
        if model not in chains[agent]:
            raise CommandError(f"{model!r} is not in {agent}'s chain: {', '.join(chains[agent])}")
        duration: float | None = None
        note_words = args[3:]
        if len(args) >= 3 and args[2] != "-":
            duration = parse_duration_arg(args[2], what="hold", maximum=max_hold_s)
        note = " ".join(note_words)[:NOTE_MAX] or None
        return HoldCommand(agent, model, duration, note)
    if name == "release":
        _need(args, 1, name)
        return ReleaseCommand(_agent(args[0], chains))
    if name == "failback":
        _need(args, 1, name)
        return FailbackCommand(_agent(args[0], chains))
    if name == "mute":
        _need(args, 2, name)
        key = validate_key(args[0])
        return MuteCommand(key, parse_duration_arg(args[1], what="mute", maximum=max_mute_s))
    raise CommandError(f"unknown command /{name}; send /help for the list")
