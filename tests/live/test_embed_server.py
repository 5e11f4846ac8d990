"""serve-embed with the packaged MiniLM: real vectors, batching, 4xx on bad input."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from engine.http import HTTPEngine
from engine.launcher import Launcher
from engine.spec import BackendSpec

pytestmark = [pytest.mark.live]


@pytest.fixture(scope="module")
def embed(tmp_path_factory):
    spec = BackendSpec(name="minilm", kind="sentence-transformers", capabilities=["embedding"],
                       device="cpu", extra_args=["--max-wait-ms", "20"])
    with Launcher([spec], tmp_path_factory.mktemp("embed-run"), health_timeout_s=120) as engines:
        yield engines[0]


async def test_384_dim_vectors_in_order(embed):
    async with HTTPEngine(embed.url) as eng:
        assert await eng.models() == ["all-MiniLM-L6-v2"]
        texts = ["the cat sat on the mat", "a feline rested on a rug", "GPU kernels"]
        res = await eng.embeddings(texts)
        v = np.array(res.vectors)
        assert v.shape == (3, 384)
        assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-3)
        # Real semantics: the paraphrase is closer than the unrelated text.
        assert v[0] @ v[1] > v[0] @ v[2]
        single = await eng.embeddings(texts[2])
        assert np.allclose(single.vectors[0], v[2], atol=1e-4)
        assert res.usage["prompt_tokens"] > 3


def test_openai_client_base64(embed):
    """The official client asks for base64 by default and must decode our answer."""
    from openai import OpenAI

    client = OpenAI(base_url=embed.url + "/v1", api_key="unused")
    out = client.embeddings.create(model="all-MiniLM-L6-v2", input=["hello", "world"])
    assert [len(d.embedding) for d in out.data] == [384, 384]


async def test_concurrent_requests_are_batched(embed):
    async with HTTPEngine(embed.url) as eng:
        def counter(text: str, name: str) -> float:
            return next(float(ln.split()[-1]) for ln in text.splitlines()
                        if ln.startswith(name + " "))
        before = await eng.metrics_text()
        await asyncio.gather(*[eng.embeddings(f"text number {i}") for i in range(64)])
        after = await eng.metrics_text()
        batches = counter(after, "sagetui:embed_batches") - counter(before, "sagetui:embed_batches")
        texts = counter(after, "sagetui:embed_texts") - counter(before, "sagetui:embed_texts")
        assert texts == 64
        assert batches < 32  # 64 requests in at most half as many encode() calls
        stats = await eng.stats()
        assert (stats.running, stats.waiting) == (0, 0)


@pytest.mark.parametrize("body,status,param", [
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    (b"{}", 400, "input"),
    (b'{"input": []}', 400, "input"),
    (b'{"input": 5}', 400, "input"),
    (b'{"input": ["ok", 3]}', 400, "input"),
    (b'{"input": "x", "model": "gpt-9"}', 404, "model"),
    (b'{"input": "x", "encoding_format": "hex"}', 400, "encoding_format"),
    (b'{"input": "x", "dimensions": 12}', 400, "dimensions"),
])
async def test_bad_input_is_4xx_json(embed, body, status, param):
    async with HTTPEngine(embed.url) as eng:
        async with eng.session.post(embed.url + "/v1/embeddings", data=body,
                                    headers={"Content-Type": "application/json"}) as r:
            assert r.status == status
            err = json.loads(await r.read())["error"]
            assert err["param"] == param and err["message"]


async def test_oversized_body_is_413(embed):
    async with HTTPEngine(embed.url) as eng:
        big = json.dumps({"input": ["x" * 1000] * 5000}).encode()
        async with eng.session.post(embed.url + "/v1/embeddings", data=big) as r:
            assert r.status == 413
