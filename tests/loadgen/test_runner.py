"""The runner against a real null server: closed loop bound, pipeline stages, progress."""

from __future__ import annotations

import sys
from collections import Counter

import pytest

from loadgen.client import ClientConfig
from loadgen.metrics import aggregate
from loadgen.runner import run
from loadgen.spec import WorkloadSpec


def _max_overlap(recs) -> int:
    ev = sorted([(r.t_sent, 1) for r in recs] + [(r.t_done, -1) for r in recs], key=lambda e: (e[0], e[1]))
    cur = best = 0
    for _, d in ev:
        cur += d
        best = max(best, cur)
    return best


def test_closed_loop_never_exceeds_n(null_server):
    url = null_server(ttft_ms=5, tpot_ms=1)
    spec = WorkloadSpec(duration_s=1.5, clients={"n": 4, "think_time_s": 0.01},
                        sizes={"chat": {"output_tokens": {"kind": "uniform", "low": 2, "high": 20}}}, model="null")
    res = run(spec, ClientConfig(targets=url))
    assert res.max_in_flight <= 4
    assert _max_overlap(res.records) == 4
    per_client = Counter(r.client_id for r in res.records)
    assert set(per_client) == {"c000", "c001", "c002", "c003"}
    assert all(r.status == "completed" for r in res.records)
    # each client's next request is intended think time after its previous finished
    by = {}
    for r in sorted(res.records, key=lambda r: r.t_intended):
        if r.client_id in by:
            assert r.t_intended == pytest.approx(by[r.client_id] + 0.01, abs=1e-9)
        by[r.client_id] = r.t_done


def test_open_loop_pipeline_records_every_stage(null_server):
    url = null_server(ttft_ms=2, tpot_ms=1)
    spec = WorkloadSpec(rate=40, duration_s=1.5, mix={"pipeline": 1.0}, model="null", embedding_model="null",
                        pipeline={"top_k": 2, "corpus_size": 40, "passage_tokens": 8},
                        slos={"pipeline": {"e2e_ms": 5000}})
    samples = []
    res = run(spec, ClientConfig(targets=url), on_progress=samples.append)
    tops = [r for r in res.records if r.parent_id is None]
    assert tops and all(r.cls == "pipeline" and r.status == "completed" for r in tops)
    for top in tops:
        kids = {r.cls: r for r in res.records if r.parent_id == top.id}
        assert set(kids) == {"embedding", "pipeline", "chat"}  # the search is a local stage
        assert kids["pipeline"].stage == "search" and kids["pipeline"].status == "completed"
        assert kids["embedding"].t_done <= kids["chat"].t_intended <= kids["chat"].t_sent
        assert kids["chat"].prompt_tokens > top.prompt_tokens - 1  # question + passages
        assert top.t_done == kids["chat"].t_done
    a = aggregate(res.records, warmup_s=0, duration_s=1.5, target_rate_rps=40)
    assert {"stage_embed", "stage_search", "stage_chat", "e2e"} <= set(a.summaries["pipeline"]["metrics"])
    assert a.summaries["pipeline"]["slo_attainment"] == 1.0
    assert [s["t_s"] for s in samples][:2] == [0.0, 1.0]
    assert sum(s["offered_rps"] for s in samples) == len(tops)
    assert samples[-1]["done"] == len(tops)


def test_open_loop_pacing_and_failures_go_on(null_server):
    url = null_server(fault="http500")
    spec = WorkloadSpec(rate=200, duration_s=1.0, model="null")
    with pytest.raises(RuntimeError, match=f"preflight to {url} \\(chat\\) failed: http_500"):
        run(spec, ClientConfig(targets=url))
    res = run(spec, ClientConfig(targets=url), preflight=0)
    assert len(res.records) > 150
    assert all(r.status == "failed" and r.reason.startswith("http_500") for r in res.records)
    assert ("timerfd" if sys.platform.startswith("linux") else "loop-timer") in res.pacer
    late = sorted(r.t_sent - r.t_intended for r in res.records)
    assert late[0] >= 0 and late[len(late) // 2] < 0.02  # loose: the machine is shared


@pytest.mark.slow
def test_multi_process_workers_share_schedule(null_server):
    url = null_server()
    spec = WorkloadSpec(rate=300, duration_s=1.5, model="null")
    samples = []
    res = run(spec, ClientConfig(targets=url), workers=2, on_progress=samples.append)
    from loadgen.schedule import build_schedule

    assert [r.id for r in res.records] == [r.id for r in build_schedule(spec)]
    assert all(r.status == "completed" for r in res.records)
    late = sorted(r.t_sent - r.t_intended for r in res.records)
    # one shared start: never early, and no worker offset by its start-up (~1 s)
    assert late[0] >= 0 and late[len(late) // 2] < 0.05
    assert samples[-1]["done"] == len(res.records)


def test_closed_loop_needs_enough_connections():
    spec = WorkloadSpec(duration_s=1, clients={"n": 10})
    with pytest.raises(ValueError, match="clients.n = 10"):
        run(spec, ClientConfig(targets="http://127.0.0.1:1", concurrency=4))


def test_progress_merger_orders_seconds_across_workers():
    from loadgen.runner import Tick, _Merger
    from vocab import Request

    out = []
    mg = _Merger(2, out.append)

    def rec(i):
        return Request(id=f"r{i}", cls="chat", t_intended=0, t_sent=0, t_done=0.5,
                       status="completed")

    mg.add(Tick(0, 3, 1, [rec(0)], worker=0))
    assert out == []  # worker 1 has not reported second 0 yet
    mg.add(Tick(0, 2, 0, [rec(1)], worker=1))
    assert [(s["t_s"], s["offered_rps"], s["done"]) for s in out] == [(0, 5, 2)]
    mg.add(Tick(1, 1, 0, [], worker=0))
    mg.add(Tick(2, 1, 0, [rec(2)], worker=0))
    mg.add(Tick(0, 4, 0, [], worker=1))  # late count for a reported second -> the next one
    assert len(out) == 1
    mg.done(1)  # worker 1 finished: it no longer holds seconds back
    assert [(s["t_s"], s["offered_rps"], s["done"]) for s in out] == [(0, 5, 2), (1, 5, 2), (2, 1, 3)]
    mg.done(0)
    assert len(out) == 3


def test_progress_bookkeeping_waits_for_a_gap_in_the_sends():
    from loadgen.runner import QUIET_AFTER_SEND_S, _Run

    r = _Run(WorkloadSpec(rate=10, duration_s=1), ClientConfig(targets="http://127.0.0.1:1"),
             tokenizer_dir=None, worker=0, workers=1, on_tick=None)
    assert r._quiet_after(1.0) is None  # closed loop / nothing scheduled: at once
    r.send_times = [0.999, 1.0005, 1.001, 1.002, 1.0021, 1.010, 1.011]
    # the first send at/after 1.0 followed by >= 5 ms of nothing is the one at 1.0021
    assert r._quiet_after(1.0) == pytest.approx(1.0021 + QUIET_AFTER_SEND_S)
    dense = [1 + i * 0.001 for i in range(400)]  # never 5 ms apart: the widest gap in 0.25 s
    dense[100] += 0.0004
    r.send_times = dense
    assert r._quiet_after(1.0) == pytest.approx(dense[99] + QUIET_AFTER_SEND_S)  # 1.4 ms to the next
    assert r._quiet_after(1.5) is None  # after the last send


def _recording_server():
    """A null server in a thread that keeps each chat request's prompt by request id."""
    import asyncio
    import threading

    from aiohttp import web

    from loadgen.null_server import NullServer

    seen: dict[str, str] = {}

    @web.middleware
    async def record(request, handler):
        if request.path == "/v1/chat/completions":
            body = await request.json()
            seen[request.headers["X-Request-Id"]] = body["messages"][0]["content"]
        return await handler(request)

    loop = asyncio.new_event_loop()
    started = threading.Event()
    box = {}

    async def up():
        app = NullServer().app()
        app.middlewares.append(record)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["runner"], box["port"] = runner, site._server.sockets[0].getsockname()[1]
        started.set()

    threading.Thread(target=lambda: (loop.run_until_complete(up()), loop.run_forever()),
                     daemon=True).start()
    assert started.wait(10)

    def stop():
        asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)

    return f"http://127.0.0.1:{box['port']}", seen, stop


def test_each_run_sends_its_own_prompt_texts():
    """Two runs of one seed send the same sizes at the same times, but texts of their
    own, so an engine's prefix cache cannot serve one run from the other's prompts."""
    url, seen, stop = _recording_server()
    spec = WorkloadSpec(rate=40, duration_s=0.5, mix={"chat": 1.0}, model="null", seed=7)
    try:
        texts, sizes, salts = [], [], []
        for salt in (None, None, "fixed", "fixed"):
            seen.clear()
            res = run(spec, ClientConfig(targets=url), preflight=0, prompt_salt=salt)
            assert all(r.status == "completed" for r in res.records)
            texts.append(dict(seen))
            sizes.append({r.id: r.prompt_tokens for r in res.records})
            salts.append(res.prompt_salt)
    finally:
        stop()
    assert len(texts[0]) >= 10 and texts[0].keys() == texts[1].keys()
    assert salts[0] and salts[1] and salts[0] != salts[1] and salts[2] == "fixed"
    differ = [k for k in texts[0] if texts[0][k] != texts[1][k]]
    assert len(differ) == len(texts[0])  # every request's text is new
    assert texts[2] == texts[3]  # a given salt repeats its texts exactly
    assert sizes[0] == sizes[1] == sizes[2]  # and the workload itself is the seed's


def test_declared_pipelines_run_every_stage_live(null_server):
    from loadgen.dag import Pipeline

    url = null_server(ttft_ms=2, tpot_ms=1)
    agent = (Pipeline("agent", deadline_ms=5000).generate("plan", output_tokens=4)
             .tool("call", after="plan", duration_ms=5)
             .loop("act", after=["call", "plan"], template="{plan}", max_calls=2,
                   output_tokens=4).spec())
    hop = (Pipeline("hop", deadline_ms=5000).embed("q", tokens=8)
           .retrieve("wide", after="q", k=4, index="ivf").retrieve("exact", after="q", k=2)
           .rerank("best", after=["wide", "exact"], k=2)
           .generate("answer", after=["best", "q"], template="{best} {q}", output_tokens=4)
           .spec())
    spec = WorkloadSpec(rate=20, duration_s=1.0, mix={"pipeline": 1.0}, model="null",
                        embedding_model="null", pipelines=[agent, hop],
                        pipeline={"corpus_size": 40, "passage_tokens": 8})
    res = run(spec, ClientConfig(targets=url))
    jobs = [r for r in res.records if r.parent_id is None]
    assert jobs and all(j.status == "completed" for j in jobs)
    want = {"agent": {"plan", "call", "act"}, "hop": {"q", "wide", "exact", "best", "answer"}}
    for j in jobs:
        stages = [r for r in res.records if r.parent_id == j.id]
        assert {r.stage for r in stages} == want[j.pipeline]
        assert all(r.status == "completed" for r in stages)
        assert j.t_done == max(r.t_done for r in stages)
        by = {r.stage: r for r in stages}
        if j.pipeline == "hop":  # the rerank waited for both retrievals
            assert by["best"].t_intended >= max(by["wide"].t_done, by["exact"].t_done) - 1e-6
