"""A fake Ollama / OpenAI-compatible model server on 127.0.0.1, scriptable per model.

It exists to reproduce what fooled the old watcher: a one-token probe answered 200
while real traffic on the same model got 429. Each model gets two scripts, one for
*probe-shaped* requests (a 1-token limit: Ollama ``options.num_predict <= 1``,
OpenAI ``max_tokens``/``max_completion_tokens <= 1``) and one for *traffic*.

Several providers share one server through path prefixes, each with its own
concurrency counter::

    async with FakeModelServer(default=Reply.ok(latency_s=0.05)) as fake:
        fake.script("kimi-k2.5:cloud", probe=Reply.ok(), traffic=Reply.throttle("30"))
        fake.base_url("ollama")                  # http://127.0.0.1:P/p/ollama (native)
        fake.base_url("cloud", api="openai")     # http://127.0.0.1:P/p/cloud/v1
        fake.max_concurrency["ollama"]           # most requests in flight at once

Paths served (with or without ``/p/<provider>``; without, the provider is
``default``): ``POST /api/chat``, ``GET /api/tags``, ``POST /v1/chat/completions``,
``POST /chat/completions``; plus ``GET /_fake/stats`` and ``POST /_fake/reset`` for a
fake run in its own process (``python -m watcher.fakes.models``). A script is
one ``Reply`` or a list of them, used in order with the last one repeating. Sync code
(the demo, CLI tests) can run it on its own thread with ``start_in_thread()`` /
``stop_in_thread()``.

The HTTP side is ``watcher.fakes._http.LoopbackHttpServer``, shared with the other
fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from watcher.fakes._http import LoopbackHttpServer, Request, Response

DEFAULT_PROVIDER = "default"


@dataclass(frozen=True, slots=True)
class Reply:
    """How the fake answers one request. Build with the class methods."""

    status: int = 200
    content: str = "ok"
    latency_s: float = 0.0
    served_model: str | None = None  # None: echo the model asked for
    retry_after: str | None = None  # Retry-After header value, verbatim
    error: str | None = None  # error text for non-200 replies
    body: str | None = None  # raw body, sent verbatim (malformed answers)
    hang: bool = False  # never answer; wait until the client gives up
    reasoning: str | None = None  # Ollama message.thinking / OpenAI reasoning_content
    stop: str | None = None  # done_reason / finish_reason; default length for probes

    @classmethod
    def ok(cls, content: str = "ok", latency_s: float = 0.0) -> Reply:
        return cls(content=content, latency_s=latency_s)

    @classmethod
    def throttle(
        cls, retry_after: str | None = "30", error: str = "rate_limit_exceeded",
        latency_s: float = 0.0,
    ) -> Reply:
        return cls(status=429, retry_after=retry_after, error=error, latency_s=latency_s)

    @classmethod
    def failing(cls, status: int, error: str = "upstream failure") -> Reply:
        return cls(status=status, error=error)

    @classmethod
    def unauthorized(cls, error: str = "invalid api key") -> Reply:
        return cls(status=401, error=error)

    @classmethod
    def wrong_model(cls, served_model: str, content: str = "ok") -> Reply:
        return cls(served_model=served_model, content=content)

    @classmethod
    def malformed(cls, body: str = '{"model": "trunc') -> Reply:
        return cls(body=body)

    @classmethod
    def empty(cls) -> Reply:
        return cls(content="", stop="stop")

    @classmethod
    def reasoning_only(cls, thinking: str = "Okay") -> Reply:
        return cls(content="", reasoning=thinking, stop="length")

    @classmethod
    def hanging(cls) -> Reply:
        return cls(hang=True)

    def after(self, latency_s: float) -> Reply:
        return replace(self, latency_s=latency_s)


Script = Reply | Sequence[Reply]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    provider: str
    method: str
    path: str  # without the /p/<provider> prefix
    model: str | None
    probe: bool  # probe-shaped (1-token limit)
    authorization: str | None
    body: dict[str, Any] | None
    status: int | None  # what the fake answered (None: hung or dropped)
    received_at: float  # time.monotonic()


@dataclass
class _ModelScript:
    probe: list[Reply] = field(default_factory=list)
    traffic: list[Reply] = field(default_factory=list)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): connection refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _is_probe(path: str, body: dict[str, Any]) -> bool:
    if path == "/api/chat":
        options = body.get("options")
        limit = options.get("num_predict") if isinstance(options, dict) else None
    else:
        limit = body.get("max_tokens", body.get("max_completion_tokens"))
    return isinstance(limit, int) and 0 < limit <= 1


class FakeModelServer(LoopbackHttpServer):
    """Loopback fake of Ollama and OpenAI-compatible endpoints; see the module doc."""

    thread_name = "fake-models"

    def __init__(self, default: Reply | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.default = default or Reply.ok()
        self.requests: list[RecordedRequest] = []
        self.max_concurrency: dict[str, int] = defaultdict(int)
        self.in_flight: dict[str, int] = defaultdict(int)
        self.max_total_concurrency = 0  # across every provider
        self._total_in_flight = 0
        self._scripts: dict[tuple[str | None, str], _ModelScript] = {}

    # -- scripting ---------------------------------------------------------------
    def script(
        self,
        model: str,
        probe: Script | None = None,
        traffic: Script | None = None,
        provider: str | None = None,
    ) -> None:
        """Set how ``model`` answers probes and/or traffic (``provider`` None: any)."""
        entry = self._scripts.setdefault((provider, model), _ModelScript())
        if probe is not None:
            entry.probe = [probe] if isinstance(probe, Reply) else list(probe)
        if traffic is not None:
            entry.traffic = [traffic] if isinstance(traffic, Reply) else list(traffic)

    def reset(self) -> None:
        """Forget recorded requests and concurrency peaks (scripts stay)."""
        self.requests.clear()
        self.max_concurrency.clear()
        self.max_total_concurrency = 0

    def requests_for(self, model: str, probe: bool | None = None) -> list[RecordedRequest]:
        return [
            r for r in self.requests if r.model == model and (probe is None or r.probe == probe)
        ]

    def _reply_for(self, provider: str, model: str | None, probe: bool) -> Reply:
        for key in ((provider, model or ""), (None, model or "")):
            entry = self._scripts.get(key)
            if entry is None:
                continue
            replies = entry.probe if probe else entry.traffic
            if replies:
                return replies.pop(0) if len(replies) > 1 else replies[0]
        return self.default

    # -- addresses -----------------------------------------------------------------
    def base_url(self, provider: str = DEFAULT_PROVIDER, api: str = "ollama") -> str:
        """The ``baseUrl`` a gateway (or the prober) would use for ``provider``."""
        root = f"{self.url}/p/{provider}"
        return root if api == "ollama" else f"{root}/v1"

    async def send_traffic(
        self, model: str, provider: str = DEFAULT_PROVIDER, api: str = "ollama",
        prompt: str = "Summarise the overnight incidents.",
    ) -> tuple[int, str, str | None]:
        """Send one traffic-shaped request, as the gateway would for a real agent turn.
        Returns (status, body text, Retry-After): what a demo gateway turns into a
        ``[model-fallback/decision]`` journal line."""
        import httpx  # only the demo and tests need a client here

        messages = [{"role": "user", "content": prompt}]
        if api == "ollama":
            url = f"{self.base_url(provider)}/api/chat"
            payload: dict[str, Any] = {"model": model, "messages": messages, "stream": False}
        else:
            url = f"{self.base_url(provider, 'openai')}/chat/completions"
            payload = {"model": model, "messages": messages, "max_tokens": 512}
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
            response = await http.post(url, json=payload)
        return response.status_code, response.text, response.headers.get("retry-after")

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> FakeModelServer:
        await self.open()
        return self

    async def stop(self) -> None:
        await self.close()

    async def __aenter__(self) -> FakeModelServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start_in_thread(self) -> FakeModelServer:  # type: ignore[override]
        """Run on a private event loop in a daemon thread (for sync callers)."""
        super().start_in_thread()
        return self

    # -- HTTP ------------------------------------------------------------------------
    async def handle(self, request: Request, reader: asyncio.StreamReader) -> Response | None:
        answer = await self._answer(
            request.method, request.target, request.headers, request.body, reader
        )
        if answer is None:  # hung until the client went away
            return None
        status, headers, body = answer
        return Response(status, body, tuple(headers))

    async def _answer(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        raw: bytes,
        reader: asyncio.StreamReader,
    ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        path = target.split("?", 1)[0]
        if path.startswith("/_fake/"):
            return self._control(method, path)
        provider = DEFAULT_PROVIDER
        if path.startswith("/p/"):
            provider, _, rest = path[3:].partition("/")
            path = "/" + rest
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = None
        model = body.get("model") if body else None
        probe = bool(body) and _is_probe(path, body or {})

        self.in_flight[provider] += 1
        self.max_concurrency[provider] = max(
            self.max_concurrency[provider], self.in_flight[provider]
        )
        self._total_in_flight += 1
        self.max_total_concurrency = max(self.max_total_concurrency, self._total_in_flight)
        status: int | None = None
        try:
            if method == "GET" and path == "/api/tags":
                status = 200
                return status, _json_type(), self._tags(provider)
            if method != "POST" or path not in (
                "/api/chat", "/v1/chat/completions", "/chat/completions"
            ):
                status = 404
                return status, _json_type(), b'{"error":"not found"}'
            if body is None or not isinstance(model, str):
                status = 400
                return status, _json_type(), b'{"error":"invalid request body"}'
            reply = self._reply_for(provider, model, probe)
            if reply.latency_s:
                await asyncio.sleep(reply.latency_s)
            if reply.hang:
                await reader.read()  # until the client closes the connection
                return None
            status = reply.status
            ollama = path == "/api/chat"
            return status, *self._render(reply, model, probe, ollama)
        finally:
            self.in_flight[provider] -= 1
            self._total_in_flight -= 1
            self.requests.append(
                RecordedRequest(
                    provider=provider,
                    method=method,
                    path=path,
                    model=model if isinstance(model, str) else None,
                    probe=probe,
                    authorization=headers.get("authorization"),
                    body=body,
                    status=status,
                    received_at=time.monotonic(),
                )
            )

    def _control(self, method: str, path: str) -> tuple[int, list[tuple[str, str]], bytes]:
        """``GET /_fake/stats`` and ``POST /_fake/reset``: for a fake in another process."""
        if method == "POST" and path == "/_fake/reset":
            self.reset()
            return 200, _json_type(), b"{}"
        if method == "GET" and path == "/_fake/stats":
            stats = {
                "requests": len(self.requests),
                "max_concurrency": dict(self.max_concurrency),
                "max_total_concurrency": self.max_total_concurrency,
            }
            return 200, _json_type(), json.dumps(stats).encode()
        return 404, _json_type(), b'{"error":"unknown control path"}'

    def _tags(self, provider: str) -> bytes:
        names = sorted({m for (p, m) in self._scripts if p in (None, provider)})
        return json.dumps({"models": [{"name": n, "model": n} for n in names]}).encode()

    @staticmethod
    def _render(
        reply: Reply, model: str, probe: bool, ollama: bool
    ) -> tuple[list[tuple[str, str]], bytes]:
        headers = _json_type()
        if reply.retry_after is not None:
            headers.append(("Retry-After", reply.retry_after))
        if reply.body is not None:
            return headers, reply.body.encode()
        if reply.status != 200:
            text = reply.error or "error"
            err: Any = (
                text if ollama
                else {"message": text, "type": "error", "code": str(reply.status)}
            )
            return headers, json.dumps({"error": err}).encode()
        served = reply.served_model or model
        stop = reply.stop or ("length" if probe else "stop")
        tokens = 1 if probe else max(1, len(reply.content.split()))
        if ollama:
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if reply.reasoning is not None:
                message["thinking"] = reply.reasoning
            data: dict[str, Any] = {
                "model": served,
                "created_at": "2026-05-20T14:38:00Z",
                "message": message,
                "done": True,
                "done_reason": stop,
                "eval_count": tokens,
            }
        else:
            msg: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if reply.reasoning is not None:
                msg["reasoning_content"] = reply.reasoning
            data = {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1779288000,
                "model": served,
                "choices": [{"index": 0, "message": msg, "finish_reason": stop}],
                "usage": {"prompt_tokens": 5, "completion_tokens": tokens,
                          "total_tokens": 5 + tokens},
            }
        return headers, json.dumps(data).encode()


def _json_type() -> list[tuple[str, str]]:
    return [("Content-Type", "application/json")]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m watcher.fakes.models [--latency S]``: serve until killed;
    prints the port on the first line of stdout (for benches and demos that want the
    fake's CPU out of their own process)."""
    import argparse

    parser = argparse.ArgumentParser(description="loopback fake Ollama/OpenAI model server")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    args = parser.parse_args(argv)

    async def serve() -> None:
        async with FakeModelServer(default=Reply.ok(latency_s=args.latency)) as fake:
            print(fake.port, flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
