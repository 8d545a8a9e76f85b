"""Carry operator commands out through the core, as operator events.

Nothing here touches the pin file, the audit log or the dedup state directly: every
action is an event for ``Watcher.apply`` (``Hold``, ``Release``, ``FailbackNow``,
``MuteCards``, ``AccessRefused``), so it is decided by the same policy, written under
the same lock, chained into the same audit (with ``telegram:<user id>`` as the actor)
and announced by the same OPERATOR_OVERRIDE card as a CLI or hand edit. The reply is
built from the decision sentence, so it says exactly what was decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from watcher.core.events import AccessRefused, Event, FailbackNow, Hold, MuteCards, Release
from watcher.core.evidence import ProbeResult
from watcher.core.state import State
from watcher.oversight.buttons import Button
from watcher.oversight.commands import (
    FailbackCommand,
    HoldCommand,
    MuteCommand,
    ReleaseCommand,
)
from watcher.pins.schema import iso

StateCommand = HoldCommand | ReleaseCommand | FailbackCommand | MuteCommand


class Steerable(Protocol):
    """What the commands need from the daemon (``watcher.shell.loop.Daemon``)."""

    @property
    def state(self) -> State: ...

    @property
    def state_dir(self) -> Path: ...

    async def apply_async(
        self,
        events: list[Event],
        *,
        position: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> list[str]: ...

    async def probe_now(self, ref: str) -> ProbeResult: ...


def _reply(sentences: Sequence[str]) -> str:
    text = " ".join(sentences).strip() or "nothing decided."
    if text.startswith("refused"):
        return f"❌ {text} Nothing changed."
    if "has no hold to release" in text:
        return f"ℹ️ {text} Nothing changed."
    return f"✅ {text}"


class Acts:
    def __init__(self, watcher: Steerable) -> None:
        self.watcher = watcher

    async def _apply(self, event: Event, now: float) -> str:
        # ``apply`` decides hand edits of the pin file it finds first; the operator's
        # own event is decided last, so its sentence is the one to answer with.
        return _reply((await self.watcher.apply_async([event], now=now))[-1:])

    async def refuse(self, actor: str, action: str, why: str, chat: int | None, now: float) -> None:
        """Audit a refused attempt (stranger, stale button or command)."""
        chat_text = None if chat is None else str(chat)
        await self.watcher.apply_async(
            [AccessRefused(actor, action[:80], why, chat_text)], now=now
        )

    # -- commands ------------------------------------------------------------------------

    async def run(self, cmd: StateCommand, actor: str, now: float) -> str:
        if isinstance(cmd, HoldCommand):
            until = None if cmd.duration_s is None else now + cmd.duration_s
            return await self._apply(Hold(cmd.agent, cmd.model, until, cmd.note, actor), now)
        if isinstance(cmd, ReleaseCommand):
            return await self._apply(Release(cmd.agent, actor), now)
        if isinstance(cmd, FailbackCommand):
            return await self.failback(cmd.agent, actor, now)
        return await self._apply(MuteCards(cmd.key, now + cmd.duration_s, actor), now)

    async def failback(self, agent_id: str, actor: str, now: float) -> str:
        """Probe the primary once, now; fail back only on a good answer."""
        agent = self.watcher.state.agents.get(agent_id)
        if agent is None:
            return f"❌ unknown agent {agent_id!r}. Nothing changed."
        primary = agent.chain[0]
        probe = await self.watcher.probe_now(primary)
        # Applied either way: a failed probe is refused by the core, and audited.
        sentence = await self._apply(FailbackNow(agent_id, actor, probe), now)
        if probe.ok:
            return sentence
        fc = probe.failure_class.value if probe.failure_class else "unknown"
        detail = f": {probe.detail}" if probe.detail else ""
        serving = self.watcher.state.agents[agent_id].serving
        return (
            f"❌ probe of {primary} failed ({fc}{detail}); {agent_id} stays on {serving}. "
            "Nothing changed."
        )

    # -- buttons -------------------------------------------------------------------------

    async def press(self, button: Button, actor: str, now: float) -> str:
        """Carry out a confirmed card button."""
        p = button.payload
        if button.action == "mute":
            until = now + float(p["duration_s"])
            return await self._apply(MuteCards(str(p["key"]), until, actor), now)
        replies: list[str] = []
        for agent_id in p.get("agents", []):
            agent = self.watcher.state.agents.get(agent_id)
            if agent is None:
                replies.append(f"❌ {agent_id} is no longer an agent; skipped.")
                continue
            if button.action == "failback":
                replies.append(await self.failback(agent_id, actor, now))
                continue
            model = p.get("model")
            if model not in agent.chain:
                model = agent.serving  # grouped card with several targets: where it is now
            until = now + float(p["duration_s"])
            note = f"card button, until {iso(until)}"
            replies.append(await self._apply(Hold(agent_id, model, until, note, actor), now))
        return "\n".join(replies) or "nothing to do."
