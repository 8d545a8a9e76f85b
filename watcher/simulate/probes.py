"""Probes in the simulator: the real probe client, answered by the scenario's timeline.

A probe result is not made up here. The production ``ProbeClient`` sends its one-token
request through ``httpx.MockTransport`` (its documented test seam); the transport
answers with the HTTP response the timeline's ``probe`` side names, and the client
judges it exactly as in production: status through the shared taxonomy, a 200 body
read by ``watcher.probe.answer`` (so ``wrong_model``, a 200 from another model on the
same socket, is caught the way the daemon catches it).

Virtual time: the client's wall clock is the simulator's clock; the *simulated*
latency (how long the answer took in scenario time) is returned beside the result.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from watcher.core.evidence import ProbeResult
from watcher.probe.client import ProbeClient, ProbeTimeouts
from watcher.probe.providers import Provider
from watcher.simulate.model import Answer

PROBE_LATENCY_S = 0.3  # a probe's round trip, in scenario time
WRONG_MODEL_NAME = "gemma4:31b"  # what answers on the shared socket in a wrong_model window

_BODIES: dict[str, tuple[int, Any]] = {
    "429": (429, {"error": "rate_limit_exceeded"}),
    "slot_full": (429, {"error": "concurrency limit reached: all 3 model slots are busy"}),
    "5xx": (500, {"error": "Internal Server Error"}),
    "503": (503, {"error": "The server is overloaded or not ready yet."}),
    "401": (401, {"error": "unauthorized: token expired or invalid"}),
}


class SimulatedProbes:
    """Runs ``ProbeClient.probe`` synchronously on a private event loop."""

    def __init__(self, timeouts: ProbeTimeouts | None = None) -> None:
        self.timeouts = timeouts or ProbeTimeouts()
        self._now = 0.0
        self._answer: Answer = Answer("ok")
        self._loop = asyncio.new_event_loop()
        self._client = ProbeClient(
            timeouts=self.timeouts,
            wall_clock=lambda: self._now,
            transport=httpx.MockTransport(self._respond),
        )
        self._providers: dict[str, Provider] = {}

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._client.aclose())
        finally:
            self._loop.close()

    def __enter__(self) -> SimulatedProbes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def probe(self, model: str, answer: Answer, now: float) -> tuple[ProbeResult, float]:
        """Probe ``model`` at ``now``, the endpoint answering ``answer``. Returns the
        result and its simulated latency (seconds of scenario time)."""
        self._now = now
        self._answer = answer
        result = self._loop.run_until_complete(self._client.probe(model, self._provider(model)))
        latency = self.timeouts.total if answer.kind == "timeout" else PROBE_LATENCY_S
        return result, latency

    def _provider(self, model: str) -> Provider:
        pid = model.partition("/")[0]
        provider = self._providers.get(pid)
        if provider is None:
            provider = Provider(
                id=pid,
                api="ollama" if pid == "ollama" else "openai-completions",
                base_url=f"http://{pid}.simulated.invalid",
            )
            self._providers[pid] = provider
        return provider

    def _respond(self, request: httpx.Request) -> httpx.Response:
        answer = self._answer
        if answer.kind == "timeout":
            raise httpx.ReadTimeout("simulated: no answer in time", request=request)
        asked = json.loads(request.content)["model"]
        headers = {}
        if answer.retry_after_s is not None:
            headers["Retry-After"] = f"{answer.retry_after_s:g}"
        if answer.kind in _BODIES:
            status, body = _BODIES[answer.kind]
            return httpx.Response(status, json=body, headers=headers)
        served = WRONG_MODEL_NAME if answer.kind == "wrong_model" else asked
        if request.url.path.endswith("/api/chat"):
            body = {
                "model": served,
                "message": {"role": "assistant", "content": "ok"},
                "done": True,
                "done_reason": "stop",
                "eval_count": 1,
            }
        else:
            body = {
                "id": "chatcmpl-sim",
                "object": "chat.completion",
                "model": served,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9},
            }
        return httpx.Response(200, json=body)
