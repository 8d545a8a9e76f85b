"""Parsing and validating operator commands: pure, every error says what to type."""

from __future__ import annotations

import pytest

from watcher.oversight.commands import (
    CommandError,
    FailbackCommand,
    HelpCommand,
    HoldCommand,
    MuteCommand,
    ReleaseCommand,
    StatusCommand,
    command_name,
    parse_command,
)

P, F1, F2 = "ollama/glm-5.1:cloud", "deepseek/deepseek-v4-flash", "ollama/glm-5:cloud"
CHAINS = {"nexus": [P, F1, F2], "hermes": [F2, P]}
KEY = f"FALLBACK_FIRED|nexus|{P}|{F1}|throttle"


def test_each_command_parses_into_its_typed_value() -> None:
    assert parse_command("/status", CHAINS) == StatusCommand()
    assert parse_command("/help", CHAINS) == HelpCommand()
    assert parse_command(f"/hold nexus {F1}", CHAINS) == HoldCommand("nexus", F1)
    assert parse_command(f"/hold nexus {F1} 90m why not", CHAINS) == HoldCommand(
        "nexus", F1, 5400.0, "why not"
    )
    assert parse_command(f"/hold nexus {F1} - until fixed", CHAINS) == HoldCommand(
        "nexus", F1, None, "until fixed"
    )
    assert parse_command("/release hermes", CHAINS) == ReleaseCommand("hermes")
    assert parse_command("/failback nexus", CHAINS) == FailbackCommand("nexus")
    assert parse_command(f"/mute {KEY} 30m", CHAINS) == MuteCommand(KEY, 1800.0)


def test_a_command_addressed_to_this_bot_in_a_group_is_taken_and_others_are_not() -> None:
    assert command_name("/status@watcher_bot", "watcher_bot") == "status"
    assert command_name("/status@other_bot", "watcher_bot") is None
    assert command_name("hello /status", "watcher_bot") is None
    assert parse_command("/release@watcher_bot nexus", CHAINS, bot_username="watcher_bot") == (
        ReleaseCommand("nexus")
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("/hold zeus x", "unknown agent 'zeus' (known: hermes, nexus)"),
        ("/failback zeus", "unknown agent 'zeus'"),
        ("/hold hermes " + F1, f"'{F1}' is not in hermes's chain: {F2}, {P}"),
        (f"/hold nexus {F1} tomorrow", "bad hold duration 'tomorrow': use e.g. 90s, 15m, 2h, 1d"),
        (f"/hold nexus {F1} 0s", "it must be longer than zero"),
        (f"/hold nexus {F1} 8d", "at most 7d is allowed here"),
        (f"/mute {KEY}", "missing argument: /mute <event-key> <duration>"),
        (f"/mute {KEY} 2d", "bad mute duration '2d': at most 1d is allowed here"),
        ("/mute FALLBACK_FIRED 1h", "bad event key 'FALLBACK_FIRED'"),
        ("/mute NOPE|a|b|c|d 1h", "'NOPE' is no card type"),
        ("/mute FLAPPING_START|nexus|-|-|- 1h", "FLAPPING_START cards are never suppressed"),
        ("/restart", "unknown command /restart; send /help for the list"),
    ],
)
def test_a_bad_argument_gets_a_clear_error(text: str, error: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse_command(text, CHAINS)
    assert error in str(caught.value)


def test_a_long_note_is_clipped() -> None:
    cmd = parse_command(f"/hold nexus {F1} 1h " + "x" * 500, CHAINS)
    assert isinstance(cmd, HoldCommand) and cmd.note is not None and len(cmd.note) == 200
