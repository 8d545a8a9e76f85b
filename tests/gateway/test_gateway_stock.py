"""The plugin stands down unless the pin is fresh, valid and names a configured model.

Against a real OpenClaw gateway with the fallback-pin plugin loaded (no watcher): the
pin file always says agent alpha is in fallback on a model of its own chain, but when
it is missing, invalid, stale, or names a model outside that chain, alpha is served
exactly as by a stock gateway, from its configured primary. The plugin says why once
per change, never once per turn, and nothing fails. The positive control: a fresh,
valid pin moves the primary attempt onto the pinned model, and the run outcome line
(also in the journal, as the watcher reads it) names the model that really served.
"""

from __future__ import annotations

import json

from systemd import journal as sdjournal
from tests.gateway.conftest import (
    FALLBACK,
    MAX_AGE_S,
    PRIMARY,
    PinFile,
    in_fallback,
    pin_doc,
)
from tests.gateway.rig import UNIT, GatewayRig, Turn
from watcher.fakes.journal import LiveJournal

AGENT = "alpha"
OUTSIDE_THE_CHAIN = "backup/not-configured"


def served_as_stock(gateway: GatewayRig, turns: int = 2) -> list[Turn]:
    """Run ``turns`` turns; each succeeds, on the configured primary, not overridden."""
    done = []
    for _ in range(turns):
        turn = gateway.turn(AGENT)
        assert turn.ok, f"turn failed ({turn.rc}):\n{turn.stderr}\n{gateway.tail()}"
        assert turn.models == [PRIMARY], "the request did not go to the configured primary"
        outcome = gateway.outcome_for(turn)
        assert (outcome["outcome"], outcome["model"], outcome["pinned"]) == ("ok", PRIMARY, None)
        assert [(a["model"], a["overridden"]) for a in outcome["attempts"]] == [(PRIMARY, False)]
        done.append(turn)
    return done


def assert_state_said_once(gateway: GatewayRig, since: int, kind: str) -> None:
    """The plugin's current state is ``kind``, logged once when it changed: the turns
    since ``since`` added at most that one line (none if it was already the state)."""
    states = gateway.state_lines()
    assert states, "the plugin never logged its state"
    assert states[-1]["kind"] == kind, states[-1]
    assert states[-1]["steering"] is (kind == "fresh")
    assert [s["kind"] for s in gateway.state_lines(since)] in ([], [kind])


def assert_nothing_failed(gateway: GatewayRig, since: int = 0) -> None:
    assert gateway.plugin_errors(since) == []


def test_without_a_pin_file_the_agent_is_served_by_its_configured_primary(
    gateway: GatewayRig, pin: PinFile
) -> None:
    pin.remove()
    mark = len(gateway.lines())
    served_as_stock(gateway)
    assert_state_said_once(gateway, mark, "missing")
    assert_nothing_failed(gateway)


def test_with_an_invalid_pin_file_the_agent_is_served_by_its_configured_primary(
    gateway: GatewayRig, pin: PinFile
) -> None:
    mark = len(gateway.lines())
    torn = json.dumps(pin_doc(in_fallback(AGENT, FALLBACK)))[:-25]  # a torn write
    pin.write_text(torn)
    served_as_stock(gateway)
    assert_state_said_once(gateway, mark, "invalid")
    assert_nothing_failed(gateway, mark)


def test_with_a_stale_pin_file_the_agent_is_served_by_its_configured_primary(
    gateway: GatewayRig, pin: PinFile
) -> None:
    mark = len(gateway.lines())
    pin.write(pin_doc(in_fallback(AGENT, FALLBACK), age_s=MAX_AGE_S + 600))
    served_as_stock(gateway)
    assert_state_said_once(gateway, mark, "stale")
    assert_nothing_failed(gateway, mark)


def test_with_a_fresh_pin_naming_a_model_outside_the_chain_the_agent_is_served_by_its_primary(
    gateway: GatewayRig, pin: PinFile
) -> None:
    mark = len(gateway.lines())
    pin.write(pin_doc(in_fallback(AGENT, OUTSIDE_THE_CHAIN)))
    served_as_stock(gateway)
    assert_state_said_once(gateway, mark, "fresh")
    warnings = gateway.agent_warnings(mark)
    assert len(warnings) == 1, "the agent's warning should be logged once, not per turn"
    agent, problem = warnings[0]
    assert agent == AGENT
    assert json.dumps(OUTSIDE_THE_CHAIN) in problem and "not in its configured chain" in problem
    assert_nothing_failed(gateway, mark)


def test_with_a_fresh_valid_pin_the_primary_attempt_is_served_by_the_pinned_model(
    gateway: GatewayRig, pin: PinFile, journal: LiveJournal
) -> None:
    mark = len(gateway.lines())
    pin.write(pin_doc(in_fallback(AGENT, FALLBACK)))
    turn = gateway.turn(AGENT)
    assert turn.ok, f"turn failed ({turn.rc}):\n{turn.stderr}\n{gateway.tail()}"
    assert turn.models == [FALLBACK], "the pinned model should serve, and the primary not be asked"

    outcome = gateway.outcome_for(turn)
    assert (outcome["agent"], outcome["outcome"]) == (AGENT, "ok")
    assert (outcome["primary"], outcome["pinned"], outcome["model"]) == (
        PRIMARY, FALLBACK, FALLBACK)
    assert [(a["model"], a["primary"], a["overridden"], a["ok"]) for a in outcome["attempts"]] \
        == [(FALLBACK, True, True, True)]
    assert_state_said_once(gateway, mark, "fresh")
    assert gateway.agent_warnings(mark) == []
    assert_nothing_failed(gateway, mark)

    # The sensor half of the loop: the outcome line is a gateway entry in the journal.
    journal.flush()
    with sdjournal.Reader(path=str(journal.directory)) as reader:
        entries = [e for e in reader if "[fallback-pin] run outcome " in e["MESSAGE"]
                   and outcome["run"] in e["MESSAGE"]]
    assert [(e["_SYSTEMD_UNIT"], e["SYSLOG_IDENTIFIER"]) for e in entries] == [(UNIT, "openclaw")]
