"""The loopback HTTP/1.1 server every fake here is built on.

A fake subclasses ``LoopbackHttpServer`` and writes one coroutine, ``handle``: a parsed
``Request`` in, a ``Response`` out, or ``None`` to drop the connection without an
answer (a hang or a reset, as a broken upstream does). The base does the rest, the
same way for every fake:

- it binds 127.0.0.1 (or ``::1``) only, and refuses any other host;
- it reads requests with ``Content-Length`` bodies on keep-alive connections, and
  ends a connection on ``Connection: close``, on a malformed request, or when the
  handler raises ``ValueError``;
- it runs on the caller's event loop (``await open()`` / ``await close()``) or on a
  private one in a daemon thread (``start_in_thread()`` / ``stop_in_thread()``) for
  sync callers, with ``run_on_loop(coro)`` to reach that loop;
- ``close_listener()`` refuses new connections and resets open ones, and ``open()``
  binds the same port again: a server that goes down and comes back;
- on ``close()`` it sets ``stopping`` (so handlers that hang can end early), resets
  every connection, and waits for the handlers to finish.

Built on ``asyncio.start_server``, so latency and hangs cost no threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 529: "Overloaded",
}
_END_OF_HEADERS = (b"\r\n", b"\n", b"")
_DRAIN_ON_CLOSE_S = 2.0


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str  # as sent: path and query
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)

    @classmethod
    def json(
        cls, status: int, data: Any, headers: tuple[tuple[str, str], ...] = ()
    ) -> Response:
        return cls(status, json.dumps(data).encode(), (("Content-Type", "application/json"),
                                                        *headers))


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """One request from the stream, or ``None`` when the client closed it first.
    Raises ``ValueError`` on a malformed request line."""
    line = await reader.readline()
    if not line.strip():
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3:
        raise ValueError("bad request line")
    headers: dict[str, str] = {}
    while True:
        raw = await reader.readline()
        if raw in _END_OF_HEADERS:
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    body = await reader.readexactly(length) if length else b""
    return Request(parts[0], parts[1], headers, body)


def encode_response(response: Response) -> bytes:
    head = [f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Status')}"]
    head += [f"{name}: {value}" for name, value in response.headers]
    head += [f"Content-Length: {len(response.body)}", "Connection: keep-alive", "", ""]
    return "\r\n".join(head).encode("latin-1") + response.body


class LoopbackHttpServer:
    """The base of the loopback fakes; see the module doc."""

    thread_name = "fake-http"

    def __init__(self, host: str = "127.0.0.1") -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"{type(self).__name__} binds loopback only, not {host!r}")
        self.host = host
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def handle(self, request: Request, reader: asyncio.StreamReader) -> Response | None:
        """Answer one request (``None``: drop the connection). ``reader`` is there for
        a handler that waits for the client to give up."""
        raise NotImplementedError

    async def on_open(self) -> None:
        """Called on the serving loop before the first bind (make loop-bound state)."""

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def stopping(self) -> asyncio.Event:
        assert self._stopping is not None, "open() the server first"
        return self._stopping

    # -- on the caller's loop --------------------------------------------------------
    async def open(self) -> None:
        """Bind (again, on the same port once it had one); a no-op when listening."""
        if self._stopping is None:
            self._stopping = asyncio.Event()
            await self.on_open()
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._connection, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close_listener(self) -> None:
        """Refuse new connections and reset the open ones (``open()`` comes back)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        if self._stopping is None:
            return
        self._stopping.set()
        await self.close_listener()
        # Handlers end on their own once their transports are reset; cancelling them
        # first would make asyncio's stream callback log the cancellation.
        if self._handlers:
            _, pending = await asyncio.wait(set(self._handlers), timeout=_DRAIN_ON_CLOSE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._stopping = None

    # -- on a private loop in a thread -----------------------------------------------
    def start_in_thread(self) -> None:
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.open())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name=self.thread_name, daemon=True)
        self._thread.start()
        if not ready.wait(10) or failure:
            raise RuntimeError(f"{type(self).__name__} did not start") from (
                failure[0] if failure else None
            )

    def stop_in_thread(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = None

    def run_on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the private loop of ``start_in_thread`` and wait for it."""
        assert self._loop is not None, "start_in_thread() first"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def call_soon(self, callback: Any) -> None:
        """Schedule a plain callback on the private loop (from any thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(callback)

    # -- one connection ----------------------------------------------------------------
    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    break
                response = await self.handle(request, reader)
                if response is None:
                    writer.transport.abort()
                    break
                writer.write(encode_response(response))
                await writer.drain()
                if request.headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        except asyncio.CancelledError:
            if self._stopping is None or not self._stopping.is_set():
                raise
        finally:
            self._writers.discard(writer)
            self._handlers.discard(task)
            with contextlib.suppress(Exception):
                writer.close()
