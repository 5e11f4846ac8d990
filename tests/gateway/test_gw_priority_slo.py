"""The request's priority reaches engines started with vLLM's priority scheduler (and
only those); the control plane's SLO refusals are 429 `slo_infeasible` answers."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from gw_upstream import backend

from scheduler.actions import Reject
from scheduler.gateway.app import RUNTIME

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
PRIO = ["--scheduling-policy", "priority"]


async def _metric(s: aiohttp.ClientSession, url: str, line_start: str) -> float:
    async with s.get(url + "/metrics") as r:
        text = await r.text()
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in /metrics")


async def test_priority_goes_to_priority_engines_and_nowhere_else(make_gateway, upstreams):
    p, plain = await upstreams("p"), await upstreams("plain")
    gw_p = await make_gateway([{**backend("p", p, ["chat", "completion"], "tiny"),
                                "extra_args": ["--dtype", "bf16", *PRIO]}])
    gw_plain = await make_gateway([backend("plain", plain, ["chat"], "tiny")])
    async with aiohttp.ClientSession() as s:
        for gw in (gw_p, gw_plain):
            for headers, body in (({"X-Priority": "1"}, CHAT),
                                  ({}, {**CHAT, "priority": 9, "stream": True}),
                                  ({}, CHAT)):
                async with s.post(gw.url + "/v1/chat/completions", json=body,
                                  headers=headers) as r:
                    assert r.status == 200
                    await r.read()
        async with s.post(gw_p.url + "/v1/completions", headers={"X-Priority": "0"},
                          json={"model": "tiny", "prompt": "x", "max_tokens": 2}) as r:
            assert r.status == 200
    # the header's 1, the body's 9 clamped to the control plane's 4, the default 2
    assert [b.get("priority") for _, b in p.calls] == [1, 4, 2, 0]
    assert all("priority" not in b for _, b in plain.calls)
    assert p.calls[1][1]["stream"] is True


async def test_embedding_batches_carry_the_most_urgent_priority(make_gateway, upstreams):
    u = await upstreams("e", embed_delay_s=0.2)
    gw = await make_gateway([{**backend("e", u, ["embedding"], "mini", conc=1),
                              "extra_args": PRIO}],
                            {"policy": "hybrid"})  # the first goes at once, the rest queue
    async with aiohttp.ClientSession() as s:
        async def one(prio: str) -> int:
            async with s.post(gw.url + "/v1/embeddings", headers={"X-Priority": prio},
                              json={"model": "mini", "input": "a b c"}) as r:
                await r.read()
                return r.status
        first = asyncio.create_task(one("3"))
        await asyncio.sleep(0.05)  # the engine is busy: the next three queue and batch
        rest = [asyncio.create_task(one(p)) for p in ("4", "1", "2")]
        assert [await first, *[await t for t in rest]] == [200] * 4
    assert [b["priority"] for _, b in u.calls] == [3, 1]
    assert u.embed_batches == [1, 3]


@pytest.mark.parametrize("reason", ["slo_infeasible", "slo_shed", "deadline_unmeetable"])
async def test_slo_refusals_are_429_slo_infeasible(make_gateway, upstreams, reason):
    u = await upstreams("a")
    gw = await make_gateway([backend("a", u, ["chat"], "tiny")], {"policy": "slo"},
                            retry_after_s=3)
    rt = gw.app[RUNTIME]
    rt.cp.on_arrival = lambda req, now: [Reject(req, reason)]  # what the core will answer
    async with aiohttp.ClientSession() as s:
        async with s.post(gw.url + "/v1/chat/completions", json=CHAT,
                          headers={"X-SLO-TTFT-Ms": "1", "X-SLO-TPOT-Ms": "5",
                                   "X-SLO-Tier": "interactive"}) as r:
            assert r.status == 429 and r.headers["Retry-After"] == "3"
            err = (await r.json())["error"]
        assert (err["type"], err["code"]) == ("slo_infeasible", reason)
        assert reason in err["message"]
        assert await _metric(s, gw.url, f'sage_rejections_total{{reason="{reason}"}}') == 1
    assert not u.calls


async def test_slo_headers_reach_the_core_and_bad_ones_are_400(make_gateway, upstreams):
    u = await upstreams("a")
    gw = await make_gateway([backend("a", u, ["chat"], "tiny")], {"policy": "slo"})
    rt = gw.app[RUNTIME]
    seen = []
    arrival = rt.cp.on_arrival

    def spy(req, now):
        seen.append((req.slo_ttft_ms, req.slo_tpot_ms, req.slo_tier))
        return arrival(req, now)

    rt.cp.on_arrival = spy
    async with aiohttp.ClientSession() as s:
        async with s.post(gw.url + "/v1/chat/completions", json=CHAT,
                          headers={"X-SLO-TTFT-Ms": "900", "X-SLO-TPOT-Ms": "12.5",
                                   "X-SLO-Tier": "batch"}) as r:
            assert r.status == 200
        for name, value in (("X-SLO-TPOT-Ms", "-3"), ("X-SLO-Tier", "x" * 65)):
            async with s.post(gw.url + "/v1/chat/completions", json=CHAT,
                              headers={name: value}) as r:
                assert r.status == 400
                assert (await r.json())["error"]["param"] == name
    assert seen == [(900.0, 12.5, "batch")]
