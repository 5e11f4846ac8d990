"""The HTTP client against a real null server: SSE, pace, headers, failures."""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest

from loadgen import metrics as m
from loadgen.client import Client, ClientConfig, _Failure, parse_sse_line
from vocab import Request


def req(cls="chat", i=0, out=20, **kw):
    base = dict(id=f"r{i}", t_intended=0.0, cls=cls, client_id="c7", priority=1, prompt_tokens=16,
                output_tokens=out, n_texts=2 if cls == "embedding" else 0,
                text_tokens=16 if cls == "embedding" else 0, slo_ttft_ms=250.0, slo_e2e_ms=None,
                model="null")
    base.update(kw)
    return Request(**base)


async def call(url, r, **cfg):
    async with Client(ClientConfig(targets=url, **cfg)) as c:
        rec = await c.call(r)
    return rec


def test_parse_sse_lines():
    assert parse_sse_line(b"\n") == ("skip", None)
    assert parse_sse_line(b": keep-alive\n") == ("skip", None)
    assert parse_sse_line(b"event: message\n") == ("skip", None)
    assert parse_sse_line(b"data: [DONE]\n") == ("done", None)
    assert parse_sse_line(b'data:{"a": 1}\r\n') == ("data", {"a": 1})
    for bad in (b"data: {oops\n", b"data: [1, 2]\n", b"<html>\n"):
        with pytest.raises(_Failure, match="garbage"):
            parse_sse_line(bad)


@pytest.mark.parametrize("cls", ["chat", "completion"])
async def test_stream_timing_matches_pace(null_server, cls):
    url = null_server(ttft_ms=40, tpot_ms=10)
    recs = [await call(url, req(cls, i)) for i in range(3)]
    for rec in recs:
        assert rec.status == "completed", rec.reason
        assert rec.output_tokens == 20 and len(rec.chunk_times) == 20
        assert rec.prompt_tokens == 16  # from the server's usage
        assert m.ttft_sent(rec) >= 0.040  # the chat role chunk is not the first token
        assert rec.backend == "null"
    # the known pace, within what a shared 2-core machine adds
    assert np.median([m.ttft_sent(r) for r in recs]) == pytest.approx(0.040, abs=0.030)
    assert np.median([m.tpot(r) for r in recs]) == pytest.approx(0.010, abs=0.003)
    assert np.median([g for r in recs for g in m.itl(r)]) == pytest.approx(0.010, abs=0.003)


async def test_embeddings_and_vectors(null_server):
    url = null_server()
    async with Client(ClientConfig(targets=url)) as c:
        vecs: list = []
        rec = await c.call(req("embedding"), vectors=vecs)
    assert rec.status == "completed", rec.reason
    assert len(vecs) == 2 and len(vecs[0]) == 384
    assert rec.t_first_token is None and m.e2e(rec) > 0


def test_headers_and_body():
    c = Client(ClientConfig(targets="http://x:1", send_priority_field=True))
    h = c.headers(req(slo_e2e_ms=900.0))
    assert h == {"X-Request-Id": "r0", "X-Client-Id": "c7", "X-Priority": "1",
                 "X-SLO-TTFT-Ms": "250", "X-SLO-E2E-Ms": "900"}
    h = c.headers(req(slo_tpot_ms=12.5, slo_tier="tight"))
    assert h["X-SLO-TPOT-Ms"] == "12.5" and h["X-SLO-Tier"] == "tight"
    b = c.body(req())
    assert b["max_tokens"] == 20 and b["ignore_eos"] is True and b["priority"] == 1
    assert b["stream_options"] == {"include_usage": True}
    assert len(b["messages"][0]["content"].split()) == 16
    e = c.body(req("embedding"))
    assert len(e["input"]) == 2 and all(len(t.split()) == 8 for t in e["input"])


def test_a_shared_prefix_opens_every_prompt_that_names_it():
    c = Client(ClientConfig(targets="http://x:1"))
    a, b = (c.body(req(i=i, prompt_tokens=40, prefix_id="sys", prefix_tokens=30))
            ["messages"][0]["content"].split() for i in (1, 2))
    assert len(a) == len(b) == 40
    assert a[:30] == b[:30] and a[30:] != b[30:]


@pytest.mark.parametrize(("fault", "reason"), [
    ("garbage", "garbage: bad JSON"),
    ("close", "stream_closed"),
    ("http500", "http_500: "),
    ("error_event", "server_error: engine overloaded"),
])
async def test_misbehaving_server_fails_with_reason(null_server, fault, reason):
    url = null_server(ttft_ms=5, tpot_ms=2, fault=fault)
    rec = await call(url, req())
    assert rec.status == "failed"
    assert rec.reason.startswith(reason), rec.reason
    assert rec.t_done is not None and not rec.slo_met()


async def test_embedding_garbage(null_server):
    rec = await call(null_server(fault="garbage"), req("embedding"))
    assert rec.status == "failed" and rec.reason.startswith("garbage: embeddings answer is not JSON")


async def test_connection_refused_and_timeout(null_server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rec = await call(f"http://127.0.0.1:{port}", req())
    assert rec.status == "failed" and rec.reason.startswith("connection"), rec.reason
    url = null_server(ttft_ms=500, tpot_ms=0)
    rec = await call(url, req(out=2), timeout_s=0.1)
    assert rec.status == "failed" and rec.reason.startswith("timeout"), rec.reason


async def test_round_robin_targets(null_server):
    a, b = null_server(), null_server()
    async with Client(ClientConfig(targets={"chat": [a, b]})) as c:
        recs = [await c.call(req(i=i)) for i in range(4)]
        with pytest.raises(ValueError, match="no URL for class 'embedding'"):
            await c.call(req("embedding"))
    assert [r.status for r in recs] == ["completed"] * 4


async def test_least_request_sends_to_the_url_with_fewest_in_flight(null_server):
    slow, fast = null_server(ttft_ms=300, tpot_ms=0), null_server()
    async with Client(ClientConfig(targets={"chat": [slow, fast]},
                                   balance="least-request")) as c:
        first = asyncio.create_task(c.call(req(i=0)))  # holds `slow` (first in the list)
        await asyncio.sleep(0.05)
        rest = [await c.call(req(i=i)) for i in range(1, 4)]  # one at a time
        await first
        assert c._open == {slow: 0, fast: 0}  # every request was counted out again
    # all three went to `fast` (round-robin would have sent one to `slow`: 300 ms)
    assert all(r.status == "completed" and r.t_done - r.t_sent < 0.2 for r in rest)


def test_config_errors():
    with pytest.raises(ValueError, match="balance: 'random'"):
        ClientConfig(targets={"chat": ["http://x"]}, balance="random")
    with pytest.raises(ValueError, match="targets: unknown class 'video'"):
        ClientConfig(targets={"video": ["http://x"]})
    with pytest.raises(ValueError, match="targets.chat"):
        ClientConfig(targets={"chat": ["ftp://x"]})


@pytest.mark.slow
def test_exact_prompt_lengths_with_a_real_tokenizer():
    tiny = pytest.importorskip("engine.tiny_model")
    d = tiny.default_dir()
    if not tiny.is_valid(d):
        pytest.skip("tiny model not built here (engine.tiny_model.ensure_tiny_model)")
    from loadgen.tokens import PromptMaker

    p = PromptMaker(str(d), seed=3)
    for n in [1, 2, 3, 4, 5, 17, 64, 300]:
        for k in range(3):
            text = p.text(n, f"r{k}")
            assert p.count(text) == n
    assert p.text(16, "a") == PromptMaker(str(d), seed=3).text(16, "a") != p.text(16, "b")


def test_token_chunks():
    from loadgen.client import _is_token_chunk

    assert not _is_token_chunk({"choices": [{"delta": {"role": "assistant", "content": ""}}]})
    assert not _is_token_chunk({"choices": [], "usage": {"completion_tokens": 3}})
    assert _is_token_chunk({"choices": [{"delta": {"content": "a"}}]})
    assert _is_token_chunk({"choices": [{"delta": {"content": ""}, "finish_reason": "length"}]})
    assert _is_token_chunk({"choices": [{"text": "x", "finish_reason": None}]})


def test_http_error_classification():
    import json as _json

    from loadgen.client import _http_failure

    body = _json.dumps({"error": {"message": "Request rejected by the control plane: queue_full.",
                                  "type": "rate_limit_error", "param": None, "code": "queue_full"}}).encode()
    f = _http_failure(429, body)
    assert (f.status, f.reason.split(":")[0]) == ("rejected", "queue_full")
    f = _http_failure(503, body.replace(b"queue_full", b"slo_infeasible"))
    assert (f.status, f.reason.split(":")[0]) == ("rejected", "slo_infeasible")
    f = _http_failure(503, _json.dumps({"error": {"message": "Request failed by the control plane: x.",
                                                  "code": "backend_down"}}).encode())
    assert (f.status, f.reason) == ("failed", "http_503: Request failed by the control plane: x.")
    f = _http_failure(502, b"<html>bad gateway</html>")
    assert (f.status, f.reason) == ("failed", "http_502: <html>bad gateway</html>")
    assert _http_failure(429, b"slow down").status == "rejected"


async def test_sse_lines_split_across_reads(serve_app):
    """A real server that cuts lines mid-way: a line counts when it is complete."""
    import asyncio

    from aiohttp import web

    async def handler(request):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for piece in (b'data: {"choices": [{"text": "a", "fin', b'ish_reason": null}]}\n',
                      b'\ndata: {"choices": [{"text": "b", "finish_reason": "length"}]}\n\nda',
                      b"ta: [DO", b"NE]\n\n"):
            await resp.write(piece)
            await asyncio.sleep(0.03)
        return resp

    app = web.Application()
    app.router.add_post("/v1/completions", handler)
    rec = await call(await serve_app(app), req("completion", out=2))
    assert rec.status == "completed", rec.reason
    assert len(rec.chunk_times) == 2 and rec.output_tokens == 2
    assert m.ttft_sent(rec) >= 0.025  # the first line was complete only with the second piece
    assert m.e2e_sent(rec) >= 0.085


def test_salt_gives_new_texts_of_the_same_length():
    from loadgen.tokens import PromptMaker

    plain, a, b = PromptMaker(seed=3), PromptMaker(seed=3, salt="a"), PromptMaker(seed=3, salt="b")
    assert plain.text(40, "r1") == PromptMaker(seed=3, salt="").text(40, "r1")
    assert len({plain.text(40, "r1"), a.text(40, "r1"), b.text(40, "r1")}) == 3
    assert a.text(40, "r1") == PromptMaker(seed=3, salt="a").text(40, "r1")
    assert all(len(p.text(40, "r1").split()) == 40 for p in (plain, a, b))
