"""One HTTP seam for probing models: a one-token request, spoken as the gateway speaks.

- Ollama native: ``POST {base}/api/chat``, ``stream: false``, ``options.num_predict: 1``.
- OpenAI-compatible (``openai-completions``, and ``openai-responses`` probed the same
  way): ``POST {base}/chat/completions``, ``max_tokens: 1``.

``ProbeClient.probe`` never raises (except on cancellation): every outcome is a
``ProbeResult``. A 200 is judged by ``watcher.probe.answer``; anything else is
classified by the same taxonomy as journal lines (``watcher.classify.taxonomy.classify_outcome``),
with ``Retry-After`` (seconds or HTTP date) read from the headers. Transport failures
map directly: refused/reset/DNS -> ``CONNECTION``, any timeout -> ``TIMEOUT``.

The credential is resolved at probe time and only ever goes into the
``Authorization`` header; details are clipped and scrubbed of it before they leave.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from watcher.classify.table import FailureClass
from watcher.classify.taxonomy import classify_outcome
from watcher.core.evidence import ProbeResult
from watcher.probe.answer import Verdict, judge_ollama, judge_openai
from watcher.probe.providers import CredentialError, Provider

log = logging.getLogger(__name__)

PROBE_PROMPT = "Reply with one word: ok"
DETAIL_MAX = 200
USER_AGENT = "failover-watcher-probe"


@dataclass(frozen=True, slots=True)
class ProbeTimeouts:
    """Explicit phase timeouts, each capped by ``total`` (also enforced as a whole)."""

    total: float = 5.0
    connect: float = 2.0
    write: float = 2.0

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=min(self.connect, self.total),
            read=self.total,
            write=min(self.write, self.total),
            pool=self.total,
        )


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    return max(0.0, when.timestamp() - now)


def model_name(ref: str) -> str:
    """``provider/model`` -> the name the provider knows (``ollama/kimi-k2.5:cloud`` ->
    ``kimi-k2.5:cloud``; ``openrouter/openrouter/owl-alpha`` -> ``openrouter/owl-alpha``)."""
    _, _, model = ref.partition("/")
    return model


def _scrub(text: str, secret: str | None) -> str:
    text = " ".join(text.split())
    if secret:
        text = text.replace(secret, "***")
    if len(text) > DETAIL_MAX:
        text = text[: DETAIL_MAX - 1] + "…"
    return text


class ProbeClient:
    """Probes one model at a time over one shared ``httpx.AsyncClient``.

    ``wall_clock`` stamps ``started_at`` (epoch seconds); latency uses
    ``time.monotonic``. ``transport`` is the test seam for ``httpx.MockTransport``;
    tests of this project use a real loopback server instead.
    """

    def __init__(
        self,
        *,
        timeouts: ProbeTimeouts | None = None,
        wall_clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
        credentials_dir: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 64,
    ) -> None:
        self.timeouts = timeouts or ProbeTimeouts()
        self._wall_clock = wall_clock
        self._environ = environ
        self._credentials_dir = credentials_dir
        self._http = httpx.AsyncClient(
            timeout=self.timeouts.httpx(),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"User-Agent": USER_AGENT},
            transport=transport,
            follow_redirects=False,
            trust_env=False,  # a probe must reach the endpoint itself, not a proxy
        )

    async def __aenter__(self) -> ProbeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def probe(self, ref: str, provider: Provider) -> ProbeResult:
        """Probe ``ref`` (``provider/model``) at ``provider``; never raises."""
        started_at = self._wall_clock()
        t0 = time.monotonic()
        probe_id = uuid.uuid4().hex[:12]
        secret: str | None = None

        def result(**kw: Any) -> ProbeResult:
            kw["detail"] = _scrub(kw.get("detail", ""), secret)
            return ProbeResult(
                model=ref,
                started_at=started_at,
                latency_s=time.monotonic() - t0,
                probe_id=probe_id,
                **kw,
            )

        try:
            headers: dict[str, str] = {}
            if provider.credential is not None:
                try:
                    token = provider.credential.resolve(self._environ, self._credentials_dir)
                except CredentialError as exc:
                    return result(
                        ok=False,
                        failure_class=FailureClass.AUTH_PERMANENT,
                        detail=f"not sent: {exc}",
                    )
                secret = token.get_secret_value()
                headers["Authorization"] = f"Bearer {secret}"
            asked = model_name(ref)
            if provider.speaks_ollama:
                url = f"{provider.base_url}/api/chat"
                payload: dict[str, Any] = {
                    "model": asked,
                    "messages": [{"role": "user", "content": PROBE_PROMPT}],
                    "stream": False,
                    "options": {"num_predict": 1},
                }
            else:
                url = f"{provider.base_url}/chat/completions"
                payload = {
                    "model": asked,
                    "messages": [{"role": "user", "content": PROBE_PROMPT}],
                    "max_tokens": 1,
                    "stream": False,
                }
            try:
                async with asyncio.timeout(self.timeouts.total):
                    response = await self._http.post(url, json=payload, headers=headers)
            except (TimeoutError, httpx.TimeoutException) as exc:
                return result(
                    ok=False,
                    failure_class=FailureClass.TIMEOUT,
                    detail=f"no answer within {self.timeouts.total:g} s ({type(exc).__name__})",
                )
            except (httpx.ConnectError, httpx.NetworkError) as exc:
                return result(
                    ok=False,
                    failure_class=FailureClass.CONNECTION,
                    detail=f"{type(exc).__name__}: {exc}",
                )
            except httpx.RemoteProtocolError as exc:
                return result(
                    ok=False,
                    failure_class=FailureClass.MALFORMED,
                    detail=f"protocol error: {exc}",
                )
            return self._interpret(asked, provider, response, started_at, result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client never raises into the scheduler
            log.exception("probe of %s failed unexpectedly", ref)
            return result(
                ok=False, failure_class=FailureClass.UNKNOWN, detail=f"{type(exc).__name__}"
            )

    def _interpret(
        self,
        asked: str,
        provider: Provider,
        response: httpx.Response,
        started_at: float,
        result: Callable[..., ProbeResult],
    ) -> ProbeResult:
        status = response.status_code
        text = response.text
        retry_after = parse_retry_after(response.headers.get("retry-after"), started_at)
        if status != 200:
            c = classify_outcome(None, status, text)
            return result(
                ok=False,
                # another 2xx is "not a failure" to the taxonomy, but it is no answer
                failure_class=c.failure_class or FailureClass.MALFORMED,
                status=status,
                retry_after_s=retry_after if retry_after is not None else c.retry_after_s,
                detail=f"HTTP {status}: {text}",
            )
        try:
            body = json.loads(text)
        except ValueError:
            return result(
                ok=False,
                failure_class=FailureClass.MALFORMED,
                status=status,
                detail=f"unparseable body: {text[:80]}",
            )
        verdict: Verdict = (
            judge_ollama(asked, body) if provider.speaks_ollama else judge_openai(asked, body)
        )
        if verdict.error_text is not None:
            c = classify_outcome(None, None, verdict.error_text)
            return result(
                ok=False,
                failure_class=c.failure_class or FailureClass.UNKNOWN,
                status=status,
                retry_after_s=retry_after if retry_after is not None else c.retry_after_s,
                detail=f"{verdict.detail}: {verdict.error_text}",
            )
        return result(
            ok=verdict.failure_class is None,
            failure_class=verdict.failure_class,
            status=status,
            detail=verdict.detail,
            served_model=verdict.served_model,
        )
