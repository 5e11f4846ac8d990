"""The gateway against real upstream servers on loopback: headers, limits, auth,
disconnects, a backend killed mid-run, and hybrid embedding batches."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from gw_upstream import backend

from scheduler.gateway.app import RUNTIME

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


async def _metric(session: aiohttp.ClientSession, url: str, line_start: str) -> float:
    async with session.get(url + "/metrics") as r:
        text = await r.text()
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in /metrics")


async def test_answers_carry_sage_headers_and_models(make_gateway, upstreams):
    u = await upstreams("a")
    gw = await make_gateway([backend("a", u, ["chat", "completion"], "tiny")])
    async with aiohttp.ClientSession() as s:
        async with s.post(gw.url + "/v1/chat/completions", json=CHAT,
                          headers={"X-Request-Id": "mine-1", "X-Priority": "1",
                                   "X-SLO-TTFT-Ms": "500", "X-Client-Id": "c1"}) as r:
            assert r.status == 200
            assert r.headers["x-sage-backend"] == "a"
            assert float(r.headers["x-sage-queue-ms"]) >= 0
            assert float(r.headers["x-sage-overhead-us"]) > 0
            assert r.headers["x-request-id"] == "mine-1"
            assert (await r.json())["choices"][0]["message"]["content"] == "tok tok tok tok"
        # the same X-Request-Id again is a new request, not a crash of the core
        async with s.post(gw.url + "/v1/completions", headers={"X-Request-Id": "mine-1"},
                          json={"model": "tiny", "prompt": "x", "max_tokens": 2}) as r:
            assert r.status == 200
        async with s.get(gw.url + "/v1/models") as r:
            assert [m["id"] for m in (await r.json())["data"]] == ["tiny"]
        async with s.get(gw.url + "/health") as r:
            assert r.status == 200 and (await r.json())["backends"] == {"a": True}
        assert await _metric(s, gw.url, 'sage_requests_total{class="chat",status="completed"}') == 1
    assert "priority" not in u.calls[0][1]


async def test_full_queue_is_429_with_retry_after(make_gateway, upstreams):
    u = await upstreams("a", token_delay_s=0.1)
    gw = await make_gateway([backend("a", u, ["chat"], "tiny", conc=1)],
                            {"policy": "fifo", "queue_capacity": {"chat": 1}})
    async with aiohttp.ClientSession() as s:
        async def one():
            async with s.post(gw.url + "/v1/chat/completions", json=CHAT) as r:
                return r.status, r.headers.get("Retry-After"), await r.json()
        first = asyncio.create_task(one())  # takes the only slot
        await asyncio.sleep(0.05)
        second = asyncio.create_task(one())  # waits in the queue (capacity 1)
        await asyncio.sleep(0.05)
        # the live orchestrator samples this series (label `class`) every second
        assert await _metric(s, gw.url, 'sage_queue_depth{class="chat"}') == 1
        assert await _metric(s, gw.url, 'sage_backend_in_flight{backend="a"}') == 1
        status, retry, body = await one()
        assert status == 429 and retry == "1"
        assert body["error"]["code"] == "queue_full"
        assert [(await first)[0], (await second)[0]] == [200, 200]
        assert await _metric(s, gw.url, 'sage_rejections_total{reason="queue_full"}') == 1


async def test_body_cap_413_and_api_key_401(make_gateway, upstreams, monkeypatch):
    u = await upstreams("a")
    gw = await make_gateway([backend("a", u, ["chat"], "tiny")], max_body_bytes=2048,
                            api_key="s3cret")
    async with aiohttp.ClientSession() as s:
        auth = {"Authorization": "Bearer s3cret"}
        big = dict(CHAT, messages=[{"role": "user", "content": "x" * 5000}])
        async with s.post(gw.url + "/v1/chat/completions", json=big, headers=auth) as r:
            assert r.status == 413 and (await r.json())["error"]["code"] == "body_too_large"

        async def chunked():  # no Content-Length: the cap holds while reading
            for _ in range(10):
                yield b"x" * 1000
        async with s.post(gw.url + "/v1/chat/completions", data=chunked(), headers=auth) as r:
            assert r.status == 413
        for bad in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            async with s.post(gw.url + "/v1/chat/completions", json=CHAT, headers=bad) as r:
                assert r.status == 401
                assert (await r.json())["error"]["code"] == "invalid_api_key"
        async with s.get(gw.url + "/metrics") as r:
            assert r.status == 401
        async with s.get(gw.url + "/health") as r:
            assert r.status == 200  # probes need no key
        async with s.post(gw.url + "/v1/chat/completions", json=CHAT, headers=auth) as r:
            assert r.status == 200


async def test_client_disconnect_mid_stream_frees_capacity(make_gateway, upstreams):
    u = await upstreams("a", token_delay_s=0.05)
    gw = await make_gateway([backend("a", u, ["chat"], "tiny", conc=1)], {"policy": "fifo"})
    body = dict(CHAT, stream=True, max_tokens=60)  # 3 s if nobody stops it
    async with aiohttp.ClientSession() as s:
        r = await s.post(gw.url + "/v1/chat/completions", json=body)
        assert r.status == 200
        assert (await r.content.readline()).startswith(b"data: ")
        r.close()  # the client goes away mid-stream
        t0 = time.monotonic()
        async with s.post(gw.url + "/v1/chat/completions", json=CHAT) as r2:
            assert r2.status == 200  # got the only slot: the first one freed it
        assert time.monotonic() - t0 < 1.5
        for _ in range(50):
            if u.aborted:
                break
            await asyncio.sleep(0.02)
        assert u.aborted == 1  # the upstream request was aborted, not run to the end
        assert await _metric(s, gw.url, 'sage_backend_in_flight{backend="a"}') == 0


async def test_client_gone_while_queued_never_reaches_engine(make_gateway, upstreams):
    u = await upstreams("a", token_delay_s=0.05)
    gw = await make_gateway([backend("a", u, ["chat"], "tiny", conc=1)], {"policy": "fifo"})
    async with aiohttp.ClientSession() as s:
        busy = asyncio.create_task(s.post(gw.url + "/v1/chat/completions",
                                          json=dict(CHAT, max_tokens=6)))
        await asyncio.sleep(0.05)
        queued = asyncio.create_task(s.post(gw.url + "/v1/chat/completions", json=CHAT))
        await asyncio.sleep(0.05)
        queued.cancel()  # the client gives up while its request waits in the queue
        r = await busy
        assert r.status == 200
        await asyncio.sleep(0.1)
        async with s.post(gw.url + "/v1/chat/completions", json=CHAT) as r3:
            assert r3.status == 200
        assert len(u.calls) == 2  # the abandoned request was never sent upstream
        assert await _metric(s, gw.url, 'sage_backend_in_flight{backend="a"}') == 0


async def test_killed_backend_out_within_1s_and_queued_work_moves(make_gateway, upstreams):
    a = await upstreams("a", token_delay_s=0.05)
    b = await upstreams("b", token_delay_s=0.05)
    gw = await make_gateway([backend("a", a, ["chat"], "tiny", conc=2),
                             backend("b", b, ["chat"], "tiny", conc=2)],
                            {"policy": "fifo", "router": "round-robin"},
                            health_interval_s=0.1, health_timeout_s=0.3)
    async with aiohttp.ClientSession() as s:
        async def plain():
            async with s.post(gw.url + "/v1/chat/completions",
                              json=dict(CHAT, max_tokens=6)) as r:
                return r.status, r.headers.get("x-sage-backend"), await r.json()

        async def streamed():
            async with s.post(gw.url + "/v1/chat/completions",
                              json=dict(CHAT, stream=True, max_tokens=40)) as r:
                return r.headers.get("x-sage-backend"), await r.read()

        streams = [asyncio.create_task(streamed()) for _ in range(2)]
        await asyncio.sleep(0.1)  # both streams started, one on each backend
        plains = [asyncio.create_task(plain()) for _ in range(8)]
        t_wait = time.monotonic()  # a: its stream and one not-yet-answered plain request
        while (await _metric(s, gw.url, 'sage_backend_in_flight{backend="a"}') != 2
               or a.running != 2):
            assert time.monotonic() - t_wait < 5
            await asyncio.sleep(0.005)
        port = a.port
        t_kill = time.monotonic()
        await a.stop()
        while await _metric(s, gw.url, 'sage_backend_up{backend="a"}') != 0:
            assert time.monotonic() - t_kill < 1.0, "backend a not taken out within 1 s"
            await asyncio.sleep(0.02)
        results = await asyncio.gather(*plains)
        assert all(st == 200 for st, _, _ in results), results  # none lost: moved to b
        done = await asyncio.gather(*streams)
        by_backend = dict(done)
        assert b"backend_down" in by_backend["a"] and b"[DONE]" not in by_backend["a"]
        assert by_backend["b"].endswith(b"data: [DONE]\n\n")
        async with s.get(gw.url + "/health") as r:
            assert (await r.json())["backends"] == {"a": False, "b": True}
        # it comes back when healthy
        await a.start(port)
        t_up = time.monotonic()
        while await _metric(s, gw.url, 'sage_backend_up{backend="a"}') != 1:
            assert time.monotonic() - t_up < 1.0
            await asyncio.sleep(0.02)
        cp = gw.app[RUNTIME].cp
        cp.assert_conserved()
        assert cp.failed == 1 and cp.requeued >= 1


async def test_hybrid_batches_embeddings_into_one_upstream_call(make_gateway, upstreams):
    u = await upstreams("e", embed_delay_s=0.02)
    gw = await make_gateway([backend("e", u, ["embedding"], "mini", conc=1)],
                            {"policy": "hybrid",
                             "hybrid": {"batch_max_texts": 64, "batch_max_wait_ms": 20}})
    texts = [["a" * (i + 1), "b" * (i + 1)] for i in range(12)]
    async with aiohttp.ClientSession() as s:
        async def one(inp):
            async with s.post(gw.url + "/v1/embeddings",
                              json={"model": "mini", "input": inp}) as r:
                assert r.status == 200
                return await r.json()
        answers = await asyncio.gather(*[one(t) for t in texts])
    assert len(u.embed_batches) < len(texts)  # fewer engine calls than client requests
    assert max(u.embed_batches) >= 6  # several requests' texts went in one call
    assert sum(u.embed_batches) == 24
    for inp, ans in zip(texts, answers, strict=True):
        # each client gets exactly its own vectors (the fake engine seeds them by length)
        assert [d["embedding"][0] for d in ans["data"]] == [float(len(t)) for t in inp]
        assert [d["index"] for d in ans["data"]] == [0, 1]


@pytest.mark.parametrize("fault,status", [("http500", 502), ("garbage", 502)])
async def test_engine_faults_are_502_json_not_crashes(make_gateway, fault, status):
    from loadgen import null_server

    runner, port, _ = await null_server.start(fault=fault)
    try:
        url = f"http://127.0.0.1:{port}"
        gw = await make_gateway([
            {"name": "n", "kind": "openai", "capabilities": ["chat"], "model": "tiny",
             "url": url, "max_concurrency": 2},
            {"name": "e", "kind": "openai", "capabilities": ["embedding"], "model": "mini",
             "url": url, "max_concurrency": 2}], {"policy": "hybrid"}, probe_health=False)
        async with aiohttp.ClientSession() as s:
            if fault == "http500":
                async with s.post(gw.url + "/v1/chat/completions", json=CHAT) as r:
                    assert r.status == status
                    assert (await r.json())["error"]["code"] == "upstream_error"
            # an embeddings batch the engine answers badly fails every member with a reason
            rs = await asyncio.gather(*[s.post(gw.url + "/v1/embeddings",
                                               json={"model": "mini", "input": ["a", "b"]})
                                        for _ in range(3)])
            for r in rs:
                assert r.status == status
                assert (await r.json())["error"]["code"] == "upstream_error"
        cp = gw.app[RUNTIME].cp
        assert cp.failed >= 3 and cp.completed == 0
    finally:
        await runner.cleanup()


async def test_streams_pass_through_without_buffering(make_gateway, upstreams):
    u = await upstreams("a", token_delay_s=0.05)
    gw = await make_gateway([backend("a", u, ["chat"], "tiny")])
    async with aiohttp.ClientSession() as s:
        t0 = time.monotonic()
        async with s.post(gw.url + "/v1/chat/completions",
                          json=dict(CHAT, stream=True, max_tokens=12)) as r:
            assert r.headers["x-sage-backend"] == "a" and "x-sage-queue-ms" in r.headers
            arrivals = []
            async for line in r.content:
                if line.startswith(b"data: {"):
                    arrivals.append(time.monotonic() - t0)
    assert len(arrivals) == 12
    # tokens arrive as the engine makes them (~50 ms apart), not all at the end (~0.6 s)
    assert arrivals[0] < arrivals[-1] - 0.3
    assert sum(b - a > 0.02 for a, b in zip(arrivals, arrivals[1:], strict=False)) >= 8


async def test_engine_that_stalls_times_out_with_reason(make_gateway, upstreams):
    u = await upstreams("a", token_delay_s=0.4)
    gw = await make_gateway([backend("a", u, ["chat"], "tiny")], upstream_timeout_s=0.2)
    async with aiohttp.ClientSession() as s:
        async with s.post(gw.url + "/v1/chat/completions", json=CHAT) as r:
            assert r.status == 504 and (await r.json())["error"]["code"] == "upstream_timeout"
        u.token_delay_s, u.stall_s = 0.0, 0.4  # the first chunk at once, then it stalls
        async with s.post(gw.url + "/v1/chat/completions",
                          json=dict(CHAT, stream=True, max_tokens=3)) as r:
            body = await r.read()
        assert r.status == 200 and b"upstream_timeout" in body and b"[DONE]" not in body
    cp = gw.app[RUNTIME].cp
    assert cp.reasons["failed:upstream_timeout"] == 2


async def test_embedding_batch_on_killed_backend_is_retried_elsewhere(make_gateway, upstreams):
    e1 = await upstreams("e1", embed_delay_s=0.3)
    e2 = await upstreams("e2", embed_delay_s=0.05)
    gw = await make_gateway([backend("e1", e1, ["embedding"], "mini", conc=1),
                             backend("e2", e2, ["embedding"], "mini", conc=1)],
                            {"policy": "hybrid", "router": "round-robin",
                             "hybrid": {"batch_max_texts": 4, "batch_max_wait_ms": 5}},
                            health_interval_s=0.1)
    texts = [["x" * (i + 1)] for i in range(10)]
    async with aiohttp.ClientSession() as s:
        async def one(inp):
            async with s.post(gw.url + "/v1/embeddings",
                              json={"model": "mini", "input": inp}) as r:
                return r.status, r.headers.get("x-sage-backend"), await r.json()
        tasks = [asyncio.create_task(one(t)) for t in texts]
        await asyncio.sleep(0.1)  # a batch is inside e1 (0.3 s per call)
        assert e1.running == 1
        await e1.stop()
        results = await asyncio.gather(*tasks)
    assert all(st == 200 for st, _, _ in results), results
    for inp, (_, _, ans) in zip(texts, results, strict=True):
        assert ans["data"][0]["embedding"][0] == float(len(inp[0]))
    assert {b for _, b, _ in results} == {"e2"}  # nothing came back from the dead one
    assert gw.app[RUNTIME].cp.requeued >= 1


async def test_hung_backend_taken_out_within_1s_with_default_probes(make_gateway, upstreams):
    a = await upstreams("a")
    b = await upstreams("b")
    gw = await make_gateway([backend("a", a, ["chat"], "tiny"), backend("b", b, ["chat"],
                                                                        "tiny")])
    async with aiohttp.ClientSession() as s:
        await asyncio.sleep(0.3)  # a probe cycle with both healthy
        a.hung = True
        t0 = time.monotonic()
        while await _metric(s, gw.url, 'sage_backend_up{backend="a"}') != 0:
            assert time.monotonic() - t0 < 1.1, "hung backend not taken out within 1 s"
            await asyncio.sleep(0.02)
        a.hung = False  # resumes: back at the next good probe
        t1 = time.monotonic()
        while await _metric(s, gw.url, 'sage_backend_up{backend="a"}') != 1:
            assert time.monotonic() - t1 < 1.0
            await asyncio.sleep(0.02)
