"""The probe client against a real loopback fake: every outcome is classified, none raises."""

from __future__ import annotations

import email.utils
import logging

import pytest

from tests.probe.conftest import ollama_at, openai_at
from watcher.classify.table import FailureClass
from watcher.fakes.models import FakeModelServer, Reply, closed_port
from watcher.probe.client import ProbeClient, ProbeTimeouts, parse_retry_after
from watcher.probe.providers import CredentialRef, Provider

NOW = 1_779_288_000.0  # 2026-05-20T14:40:00Z, the flap afternoon


@pytest.fixture
async def client():
    async with ProbeClient(wall_clock=lambda: NOW) as c:
        yield c


@pytest.mark.parametrize("api", ["ollama", "openai"])
async def test_healthy_model_answering_one_token_is_ok(fake, client, api):
    provider = ollama_at(fake) if api == "ollama" else openai_at(fake)
    result = await client.probe(f"{provider.id}/kimi-k2.5:cloud", provider)
    assert result.ok, result
    assert result.failure_class is None
    assert result.status == 200
    assert result.served_model == "kimi-k2.5:cloud"
    assert result.started_at == NOW
    assert 0 < result.latency_s < 1
    (request,) = fake.requests
    assert request.probe and request.model == "kimi-k2.5:cloud"


async def test_ollama_probe_is_native_chat_with_a_one_token_limit(fake, client):
    await client.probe("ollama/glm-5.1:cloud", ollama_at(fake))
    (request,) = fake.requests
    assert request.path == "/api/chat"
    assert request.body is not None
    assert request.body["stream"] is False
    assert request.body["options"] == {"num_predict": 1}
    assert [m["role"] for m in request.body["messages"]] == ["user"]


async def test_openai_probe_is_chat_completions_with_max_tokens_one(fake, client):
    await client.probe("cloud/gpt-5.2", openai_at(fake))
    (request,) = fake.requests
    assert request.path == "/v1/chat/completions"
    assert request.body is not None
    assert request.body["max_tokens"] == 1
    assert request.body["model"] == "gpt-5.2"


async def test_single_space_answer_counts_as_content(fake, client):
    fake.script("m", probe=Reply.ok(content=" "))
    assert (await client.probe("ollama/m", ollama_at(fake))).ok


async def test_latest_suffix_and_dated_snapshot_match_the_asked_model(fake, client):
    fake.script("llama3.2", probe=Reply.wrong_model("llama3.2:latest"))
    fake.script("gpt-4o", probe=Reply.wrong_model("gpt-4o-2024-08-06"))
    assert (await client.probe("ollama/llama3.2", ollama_at(fake))).ok
    assert (await client.probe("cloud/gpt-4o", openai_at(fake))).ok


@pytest.mark.parametrize("api", ["ollama", "openai"])
async def test_another_model_answering_on_the_same_socket_is_wrong_model(fake, client, api):
    provider = ollama_at(fake) if api == "ollama" else openai_at(fake)
    fake.script("deepseek-v4-flash:cloud", probe=Reply.wrong_model("qwen3:8b"))
    result = await client.probe(f"{provider.id}/deepseek-v4-flash:cloud", provider)
    assert not result.ok
    assert result.failure_class is FailureClass.WRONG_MODEL
    assert result.served_model == "qwen3:8b"
    assert "qwen3:8b" in result.detail


@pytest.mark.parametrize(
    "body",
    ['{"model": "trunc', "<html><body>502 Bad Gateway</body></html>", "[]", '{"model": "m"}'],
)
@pytest.mark.parametrize("api", ["ollama", "openai"])
async def test_unreadable_200_body_is_malformed(fake, client, api, body):
    provider = ollama_at(fake) if api == "ollama" else openai_at(fake)
    fake.script("m", probe=Reply.malformed(body))
    result = await client.probe(f"{provider.id}/m", provider)
    assert not result.ok
    assert result.failure_class is FailureClass.MALFORMED
    assert result.status == 200


@pytest.mark.parametrize("api", ["ollama", "openai"])
async def test_empty_answer_is_malformed(fake, client, api):
    provider = ollama_at(fake) if api == "ollama" else openai_at(fake)
    fake.script("m", probe=Reply.empty())
    result = await client.probe(f"{provider.id}/m", provider)
    assert not result.ok
    assert result.failure_class is FailureClass.MALFORMED
    assert "empty" in result.detail


@pytest.mark.parametrize("api", ["ollama", "openai"])
async def test_reasoning_model_spending_its_token_on_thinking_is_ok(fake, client, api):
    provider = ollama_at(fake) if api == "ollama" else openai_at(fake)
    fake.script("qwen3:8b", probe=Reply.reasoning_only())
    result = await client.probe(f"{provider.id}/qwen3:8b", provider)
    assert result.ok, result
    assert "reasoning" in result.detail


async def test_throttle_with_retry_after_seconds_is_throttle(fake, client):
    fake.script("kimi-k2.5:cloud", probe=Reply.throttle(retry_after="42"))
    result = await client.probe("ollama/kimi-k2.5:cloud", ollama_at(fake))
    assert not result.ok
    assert result.failure_class is FailureClass.THROTTLE
    assert result.status == 429
    assert result.retry_after_s == 42.0


async def test_throttle_with_retry_after_http_date_is_seconds_from_probe_start(fake, client):
    when = email.utils.formatdate(NOW + 120, usegmt=True)
    fake.script("gpt-5.5", probe=Reply.throttle(retry_after=when, error="Rate limit reached"))
    result = await client.probe("cloud/gpt-5.5", openai_at(fake))
    assert result.failure_class is FailureClass.THROTTLE
    assert result.retry_after_s == pytest.approx(120.0)


async def test_service_unavailable_is_overloaded(fake, client):
    fake.script("m", probe=Reply.failing(503, "service unavailable: model at capacity"))
    result = await client.probe("ollama/m", ollama_at(fake))
    assert not result.ok and result.status == 503
    assert result.failure_class is FailureClass.OVERLOADED


async def test_internal_server_error_is_server_error(fake, client):
    fake.script("m", probe=Reply.failing(500, "internal error"))
    result = await client.probe("cloud/m", openai_at(fake))
    assert not result.ok and result.status == 500
    assert result.failure_class is FailureClass.SERVER_ERROR


async def test_unauthorized_is_auth(fake, client):
    fake.script("m", probe=Reply.unauthorized("unauthorized"))
    result = await client.probe("cloud/m", openai_at(fake))
    assert not result.ok and result.status == 401
    assert result.failure_class is FailureClass.AUTH


async def test_bad_gateway_html_page_is_server_error(fake, client):
    fake.script("m", probe=Reply(status=502, body="<html><h1>502 Bad Gateway</h1></html>"))
    result = await client.probe("ollama/m", ollama_at(fake))
    assert (result.failure_class, result.status) == (FailureClass.SERVER_ERROR, 502)


async def test_throttle_text_in_a_200_error_body_is_still_a_throttle(fake, client):
    fake.script("m", probe=Reply.malformed('{"error": "rate limit exceeded, retry in 20s"}'))
    result = await client.probe("ollama/m", ollama_at(fake))
    assert not result.ok
    assert result.failure_class is FailureClass.THROTTLE


async def test_a_2xx_other_than_200_is_no_answer(fake, client):
    fake.script("m", probe=Reply(status=204, body=""))
    result = await client.probe("cloud/m", openai_at(fake))
    assert not result.ok
    assert (result.failure_class, result.status) == (FailureClass.MALFORMED, 204)


async def test_closed_port_is_connection_failure(client):
    provider = Provider(id="ollama", api="ollama", base_url=f"http://127.0.0.1:{closed_port()}")
    result = await client.probe("ollama/m", provider)
    assert not result.ok
    assert result.failure_class is FailureClass.CONNECTION
    assert result.status is None


async def test_hanging_endpoint_is_timeout_within_the_total_budget(fake):
    fake.script("m", probe=Reply.hanging())
    async with ProbeClient(timeouts=ProbeTimeouts(total=0.3)) as client:
        result = await client.probe("ollama/m", ollama_at(fake))
    assert not result.ok
    assert result.failure_class is FailureClass.TIMEOUT
    assert 0.25 <= result.latency_s < 1.5


async def test_slow_answer_past_total_timeout_is_timeout_even_while_bytes_trickle(fake):
    # latency longer than the total: asyncio.timeout bounds the whole exchange
    fake.script("m", probe=Reply.ok(latency_s=0.6))
    async with ProbeClient(timeouts=ProbeTimeouts(total=0.2, connect=0.1)) as client:
        result = await client.probe("ollama/m", ollama_at(fake))
    assert result.failure_class is FailureClass.TIMEOUT
    assert result.latency_s < 0.5


async def test_credential_is_sent_as_bearer_but_never_appears_in_result_or_logs(fake, caplog):
    secret = "sk-test-5f3c9a1e7b2d"
    caplog.set_level(logging.DEBUG)
    fake.script("gpt-5.5", probe=Reply.unauthorized(f"Incorrect API key provided: {secret}"))
    provider = openai_at(fake, credential=CredentialRef.parse("env:CLOUD_KEY"))
    async with ProbeClient(environ={"CLOUD_KEY": secret}) as client:
        result = await client.probe("cloud/gpt-5.5", provider)
    assert fake.requests[0].authorization == f"Bearer {secret}"
    assert result.failure_class is FailureClass.AUTH
    assert "Incorrect API key provided: ***" in result.detail
    assert secret not in repr(result)
    assert secret not in repr(provider)
    assert secret not in caplog.text
    assert "Incorrect API key" in result.detail  # the text was kept, only the key scrubbed


async def test_unresolvable_credential_fails_the_probe_without_sending_it(fake):
    provider = openai_at(fake, credential=CredentialRef.parse("env:MISSING_KEY"))
    async with ProbeClient(environ={}) as client:
        result = await client.probe("cloud/gpt-5.5", provider)
    assert not result.ok
    assert result.failure_class is FailureClass.AUTH_PERMANENT
    assert "env:MISSING_KEY" in result.detail
    assert fake.requests == []


async def test_probe_gets_200_while_traffic_on_the_same_model_gets_429(fake, client):
    """The 20 May setup: the fake must be able to tell the two request shapes apart."""
    fake.script("kimi-k2.5:cloud", probe=Reply.ok(), traffic=Reply.throttle(retry_after="30"))
    probe = await client.probe("ollama/kimi-k2.5:cloud", ollama_at(fake))
    status, body, retry_after = await fake.send_traffic("kimi-k2.5:cloud", "ollama")
    cloud_status, _, _ = await fake.send_traffic("kimi-k2.5:cloud", "cloud", api="openai")
    assert probe.ok
    assert (status, retry_after, cloud_status) == (429, "30", 429)
    assert "rate_limit_exceeded" in body
    assert [r.probe for r in fake.requests] == [True, False, False]
    assert fake.requests[2].path == "/v1/chat/completions"


async def test_scripted_sequence_plays_in_order_and_last_reply_repeats(fake, client):
    fake.script("m", probe=[Reply.throttle(), Reply.ok()])
    provider = ollama_at(fake)
    classes = [(await client.probe("ollama/m", provider)).failure_class for _ in range(3)]
    assert classes == [FailureClass.THROTTLE, None, None]


def test_retry_after_parses_seconds_dates_and_rejects_junk():
    assert parse_retry_after("7", NOW) == 7.0
    assert parse_retry_after(email.utils.formatdate(NOW + 30, usegmt=True), NOW) == 30.0
    assert parse_retry_after(email.utils.formatdate(NOW - 30, usegmt=True), NOW) == 0.0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None


def test_fake_server_in_a_thread_serves_sync_callers():
    import httpx

    fake = FakeModelServer().start_in_thread()
    try:
        fake.script("m", traffic=Reply.failing(500))
        response = httpx.post(f"{fake.url}/chat/completions", json={"model": "m"})
        assert response.status_code == 500
        assert fake.requests[0].provider == "default"
    finally:
        fake.stop_in_thread()


async def test_openai_responses_provider_is_probed_through_chat_completions(fake, client):
    provider = Provider(
        id="direct", api="openai-responses", base_url=fake.base_url("direct", "openai")
    )
    result = await client.probe("direct/gpt-5.5", provider)
    assert result.ok
    assert fake.requests[0].path == "/v1/chat/completions"


async def test_fake_in_its_own_process_serves_probes_and_reports_concurrency(client):
    import asyncio
    import sys

    import httpx

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watcher.fakes.models", "--latency", "0.01",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        port = int(await asyncio.wait_for(proc.stdout.readline(), 10))
        provider = Provider(id="p", api="ollama", base_url=f"http://127.0.0.1:{port}/p/p")
        assert (await client.probe("p/m", provider)).ok
        async with httpx.AsyncClient() as http:
            stats = (await http.get(f"http://127.0.0.1:{port}/_fake/stats")).json()
            await http.post(f"http://127.0.0.1:{port}/_fake/reset")
            after = (await http.get(f"http://127.0.0.1:{port}/_fake/stats")).json()
        assert stats == {"requests": 1, "max_concurrency": {"p": 1}, "max_total_concurrency": 1}
        assert after["requests"] == 0
    finally:
        proc.terminate()
        await proc.wait()
