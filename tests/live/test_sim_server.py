"""serve-sim: the simulator in real time behind an OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from engine.http import HTTPEngine
from engine.launcher import Launcher
from engine.sim.llm import SimLLMEngine
from engine.sim.presets import get_llm_preset

from .conftest import sim_spec

PROMPT, OUT = 64, 40


@pytest.fixture(scope="module")
def sims(tmp_path_factory):
    specs = [sim_spec("llm", "7b-a100"),
             sim_spec("llm4", "7b-a100", extra_args=["--stream-interval", "4"]),
             sim_spec("emb", "minilm-cpu", caps=("embedding",))]
    with Launcher(specs, tmp_path_factory.mktemp("sim-run"), health_timeout_s=60) as engines:
        yield {e.name: e for e in engines}


def modelled(preset: str, prompt: int, out: int) -> tuple[float, float]:
    """(TTFT, E2E) of one request alone on the engine, in virtual time."""
    eng = SimLLMEngine(get_llm_preset(preset), token_events=True)
    eng.submit(0, prompt, out, 2, 0.0)
    first = None
    while True:
        for ev in eng.advance(eng.next_event_time()):
            if ev.kind == "first_token":
                first = ev.t
            if ev.kind == "done":
                return first, ev.t


async def _timed_stream(eng: HTTPEngine, chat: bool = True, out: int = OUT):
    body = {"model": "llama-2-7b", "max_tokens": out}
    if chat:
        body["messages"] = [{"role": "user", "content": " ".join(["word"] * PROMPT)}]
    else:
        body["prompt"] = " ".join(["word"] * PROMPT)
    t0 = time.perf_counter()
    it = eng.stream_chat(body) if chat else eng.stream_completion(body)
    chunks = [c async for c in it]
    return t0, chunks


async def test_streams_at_modelled_pace(sims):
    ttft_m, e2e_m = modelled("7b-a100", PROMPT, OUT)
    assert e2e_m > 0.3  # long enough to measure on a loaded machine
    async with HTTPEngine(sims["llm"].url) as eng:
        t0, chunks = await _timed_stream(eng)
    content = [c for c in chunks if c.text]
    assert len(content) == OUT and sum(c.text.count("tok") for c in content) == OUT
    assert chunks[-1].usage == {"prompt_tokens": PROMPT, "completion_tokens": OUT,
                                "total_tokens": PROMPT + OUT}
    ttft, e2e = content[0].t - t0, content[-1].t - t0
    # Never faster than the model; late only by scheduling noise on a shared machine.
    assert e2e_m * 0.97 <= e2e <= e2e_m * 1.25 + 0.05, (e2e, e2e_m)
    assert ttft_m * 0.9 <= ttft <= ttft_m + 0.05
    gaps = [b.t - a.t for a, b in zip(content, content[1:], strict=False)]
    assert sum(gaps) / len(gaps) == pytest.approx((e2e_m - ttft_m) / (OUT - 1), rel=0.3)


async def test_stream_interval_coalesces_chunks(sims):
    async with HTTPEngine(sims["llm4"].url) as eng:
        _, chunks = await _timed_stream(eng, chat=False)
    content = [c for c in chunks if c.text]
    assert sum(c.text.count("tok") for c in content) == OUT
    assert len(content) <= OUT // 4 + 2  # first token alone, then every 4
    assert chunks[-1].usage["completion_tokens"] == OUT


async def test_concurrent_requests_batch_and_show_in_metrics(sims):
    async with HTTPEngine(sims["llm"].url) as eng:
        tasks = [asyncio.create_task(_timed_stream(eng, out=60)) for _ in range(20)]
        await asyncio.sleep(0.15)
        busy = await eng.stats()
        results = await asyncio.gather(*tasks)
        assert busy.running == 20 and busy.kv_use > 0
        # Continuous batching: 20 together take far less than 20 alone.
        _, e2e_alone = modelled("7b-a100", PROMPT, 60)
        spans = [c[-1].t - t0 for t0, c in results]
        assert max(spans) < 3 * e2e_alone
        assert (await eng.stats()).running == 0
        non_stream = await eng.post_json("/v1/completions",
                                         {"prompt": "a b c", "max_tokens": 5})
        assert non_stream["usage"]["completion_tokens"] == 5
        assert non_stream["choices"][0]["text"].count("tok") == 5


async def test_client_disconnect_frees_capacity(sims):
    async with HTTPEngine(sims["llm"].url) as eng:
        it = eng.stream_chat({"messages": [{"role": "user", "content": "x"}],
                              "max_tokens": 3000})
        async for _ in it:
            if (await eng.stats()).running == 1:
                break
        await it.aclose()
        for _ in range(100):
            if (await eng.stats()).running == 0:
                break
            await asyncio.sleep(0.01)
        assert (await eng.stats()).running == 0


async def test_non_streamed_request_aborted_when_client_leaves(sims):
    async with HTTPEngine(sims["llm"].url) as eng:
        post = asyncio.create_task(eng.post_json(
            "/v1/completions", {"prompt": "x", "max_tokens": 3000}))
        for _ in range(100):
            if (await eng.stats()).running == 1:
                break
            await asyncio.sleep(0.01)
        assert (await eng.stats()).running == 1
        post.cancel()  # closes the connection
        for _ in range(100):
            if (await eng.stats()).running == 0:
                break
            await asyncio.sleep(0.01)
        assert (await eng.stats()).running == 0


async def test_embeddings_take_modelled_batch_time(sims):
    async with HTTPEngine(sims["emb"].url) as eng:
        t0 = time.perf_counter()
        res = await eng.embeddings(["one two three"] * 8, model="all-MiniLM-L6-v2")
        took = time.perf_counter() - t0
    assert len(res.vectors) == 8 and len(res.vectors[0]) == 384
    assert res.usage["prompt_tokens"] == 24
    from engine.sim.presets import get_embed_preset

    assert took >= get_embed_preset("minilm-cpu").cost.batch_time(24) * 0.97


@pytest.mark.parametrize("name,path,body,status,param", [
    ("llm", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, 400,
     "max_completion_tokens"),
    ("llm", "/v1/completions", {"prompt": "x", "max_tokens": -1}, 400, "max_tokens"),
    ("llm", "/v1/completions", {"prompt": "x", "max_tokens": "3"}, 400, "max_tokens"),
    ("llm", "/v1/completions", {"max_tokens": 3}, 400, "prompt"),
    ("llm", "/v1/chat/completions", {"messages": [], "max_tokens": 3}, 400, "messages"),
    ("llm", "/v1/chat/completions", {"messages": "hi", "max_tokens": 3}, 400, "messages"),
    ("llm", "/v1/completions", {"prompt": "x", "max_tokens": 3, "model": "nope"}, 404, "model"),
    ("llm", "/v1/completions", {"prompt": "x", "max_tokens": 10**9}, 400, "max_tokens"),
    ("llm", "/v1/completions", {"prompt": "x", "max_tokens": 3, "stream": "yes"}, 400, "stream"),
    ("llm", "/v1/embeddings", {"input": "x"}, 400, None),
    ("emb", "/v1/completions", {"prompt": "x", "max_tokens": 3}, 400, None),
    ("emb", "/v1/embeddings", {"input": []}, 400, "input"),
])
async def test_bad_input_is_4xx_json(sims, name, path, body, status, param):
    url = sims[name].url
    async with HTTPEngine(url) as eng:
        async with eng.session.post(url + path, data=json.dumps(body)) as r:
            assert r.status == status, await r.text()
            assert json.loads(await r.read())["error"]["param"] == param
        assert await eng.health()
