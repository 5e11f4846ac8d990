"""The official `openai` package as a real client of the gateway, in front of the
load generator's null server (a real OpenAI-compatible HTTP server)."""

from __future__ import annotations

import openai
import pytest

from loadgen import null_server
from loadgen.null_server import EMBED_DIM
from scheduler.gateway import GatewayOptions, parse_gateway_config, start_gateway


@pytest.fixture
async def gateway():
    runner_u, port, _srv = await null_server.start(ttft_ms=2, tpot_ms=1)
    url = f"http://127.0.0.1:{port}"
    cfg = parse_gateway_config({"control_plane": {"policy": "hybrid"}, "backends": [
        {"name": "llm", "kind": "openai", "capabilities": ["chat", "completion"],
         "model": "tiny", "url": url, "max_concurrency": 4},
        {"name": "emb", "kind": "openai", "capabilities": ["embedding"],
         "model": "mini", "url": url, "max_concurrency": 2}]})
    runner, gw_url = await start_gateway(cfg, GatewayOptions(api_key="k-123"))
    yield gw_url
    await runner.cleanup()
    await runner_u.cleanup()


def _client(url: str, key: str = "k-123") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=10)


async def test_openai_chat_plain_and_streaming(gateway):
    async with _client(gateway) as c:
        raw = await c.chat.completions.with_raw_response.create(
            model="tiny", messages=[{"role": "user", "content": "hi there"}], max_tokens=5,
            extra_headers={"X-Priority": "0", "X-SLO-TTFT-Ms": "200"})
        assert raw.headers["x-sage-backend"] == "llm"
        assert float(raw.headers["x-sage-queue-ms"]) >= 0
        assert raw.parse().choices[0].message.content.split() == ["tok"] * 5
        stream = await c.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=7,
            stream=True, stream_options={"include_usage": True})
        texts, usage = [], None
        async for chunk in stream:
            if chunk.choices:
                texts.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                usage = chunk.usage
        assert "".join(t or "" for t in texts) == "tok " * 7 and usage.completion_tokens == 7
        comp = await c.completions.create(model="tiny", prompt="a b c", max_tokens=3,
                                          stream=True)
        assert "".join([ch.choices[0].text async for ch in comp if ch.choices]) == "tok " * 3


async def test_openai_embeddings_float_and_base64(gateway):
    async with _client(gateway) as c:
        r = await c.embeddings.create(model="mini", input=["alpha", "beta", "gamma"])
        assert [len(d.embedding) for d in r.data] == [EMBED_DIM] * 3
        assert [d.index for d in r.data] == [0, 1, 2]
        assert r.data[0].embedding != r.data[1].embedding
        f = await c.embeddings.create(model="mini", input="alpha", encoding_format="float")
        assert f.data[0].embedding == pytest.approx(r.data[0].embedding, abs=1e-6)


async def test_openai_errors_are_typed(gateway):
    async with _client(gateway) as c:
        with pytest.raises(openai.NotFoundError, match="does not exist"):
            await c.chat.completions.create(model="gpt-9", max_tokens=2,
                                            messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.BadRequestError, match="max_tokens"):
            await c.chat.completions.create(model="tiny", max_tokens=-3,
                                            messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.BadRequestError, match="input"):
            await c.embeddings.create(model="mini", input=[])
        models = await c.models.list()
        assert sorted(m.id for m in models.data) == ["mini", "tiny"]
    async with _client(gateway, key="wrong") as c:
        with pytest.raises(openai.AuthenticationError):
            await c.models.list()
