"""Two asyncio chores every sender task shares: a wake-up from any thread, and a stop
that lets the work in flight finish for a grace period before cancelling it."""

from __future__ import annotations

import asyncio
import contextlib


def wake_threadsafe(loop: asyncio.AbstractEventLoop | None, event: asyncio.Event | None) -> None:
    """Set ``event`` on ``loop`` from any thread; nothing if either is not there yet or
    the loop is closing."""
    if loop is not None and event is not None and not loop.is_closed():
        with contextlib.suppress(RuntimeError):  # loop closing
            loop.call_soon_threadsafe(event.set)


async def finish(task: asyncio.Task[None] | None, grace_s: float) -> None:
    """Wait up to ``grace_s`` for ``task`` to end by itself, then cancel it."""
    if task is None or task.done():
        return
    try:
        await asyncio.wait_for(asyncio.shield(task), grace_s)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
