"""Pipeline jobs: kinds drawn into the schedule, stages released when their inputs end."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from loadgen.dag import Pipeline, to_toml_dict
from loadgen.jobs import Job, plan
from loadgen.schedule import build_schedule
from loadgen.spec import WorkloadSpec
from vocab import Request


def _agent():
    return (Pipeline("agent", weight=1.0, tiers=[{"name": "tight", "share": 0.5, "deadline_ms": 800},
                                                 {"name": "loose", "share": 0.5, "deadline_ms": 4000}])
            .generate("plan", tokens=64, output_tokens=16)
            .tool("call", after="plan", duration_ms=20)
            .loop("act", after=["call", "plan"], max_calls=3, template="{plan}",
                  tokens=32, output_tokens=8).spec())


def _rag():
    return (Pipeline("rag", weight=3.0, deadline_ms=2000).embed("q", tokens=16)
            .retrieve("docs", after="q", k=4)
            .generate("answer", after=["docs", "q"], template="{docs} {q}", output_tokens=32)
            .spec())


def _spec(pipelines, **kw) -> WorkloadSpec:
    return WorkloadSpec(rate=50, duration_s=4, seed=3, mix={"chat": 0.5, "pipeline": 0.5},
                        pipelines=pipelines, **kw)


def test_python_builder_and_toml_give_the_same_schedule():
    toml_text = "\n".join(
        ["rate = 50", "duration_s = 4", "seed = 3", 'mix = { chat = 0.5, pipeline = 0.5 }']
        + [_toml_table(p) for p in (_rag(), _agent())])
    from_toml = WorkloadSpec.model_validate(tomllib.loads(toml_text))
    from_py = _spec([_rag(), _agent()])
    assert from_toml == from_py
    a, b = build_schedule(from_toml), build_schedule(from_py)
    assert [r.plan() for r in a] == [r.plan() for r in b]
    kinds = {r.pipeline for r in a if r.cls == "pipeline"}
    assert kinds == {"rag", "agent"}
    tiers = {(r.pipeline, r.slo_tier, r.slo_e2e_ms) for r in a if r.cls == "pipeline"}
    assert {("agent", "tight", 800), ("agent", "loose", 4000), ("rag", "", 2000)} == tiers


def _toml_table(p) -> str:
    d = to_toml_dict(p)
    lines = ["[[pipelines]]"] + [f"{k} = {_v(v)}" for k, v in d.items() if k != "stages"]
    for s in d["stages"]:
        lines += ["[[pipelines.stages]]"] + [f"{k} = {_v(v)}" for k, v in s.items()]
    return "\n".join(lines)


def _v(v) -> str:
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list):
        return "[" + ", ".join(_v(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_v(x)}" for k, x in v.items()) + "}"
    return str(v)


def test_declaring_pipelines_moves_no_other_draw():
    plain = build_schedule(_spec([]))
    declared = build_schedule(_spec([_rag(), _agent()]))
    assert [(r.t_intended, r.cls, r.prompt_tokens) for r in plain] == \
           [(r.t_intended, r.cls, r.prompt_tokens) for r in declared]
    assert {r.pipeline for r in plain if r.cls == "pipeline"} == {"rag"}  # the RAG shape


def _job(kind, deadline_ms=1000.0, seed=0):
    req = Request(id="j1", cls="pipeline", t_intended=1.0, slo_e2e_ms=deadline_ms,
                  pipeline=kind.name)
    stages = plan(kind, np.random.default_rng(seed), passage_tokens=50,
                  retrieve_s=lambda index, k: 0.005)
    return Job(req, stages, model="m", embedding_model="e")


def _finish(call: Request, t: float, status="completed") -> Request:
    call.t_dispatched, call.t_done, call.status = call.t_intended, t, status
    return call


def _through_locals(j: Job, released: list[Request], local_s: float) -> list[Request]:
    """Run each released local stage for `local_s`, as a driver would; the calls left."""
    calls = []
    while released:
        r = released.pop(0)
        if r.backend == "local":
            released += j.on_done(_finish(r, r.t_intended + local_s), r.t_intended + local_s)
        else:
            calls.append(r)
    return calls


def test_a_stage_waits_for_its_last_input_and_local_stages_are_the_driver_s():
    j = _job(_rag())
    first = j.start(1.0)
    assert [c.stage for c in first] == ["q"] and first[0].cls == "embedding"
    assert first[0].pipeline_deadline == pytest.approx(2.0)
    (docs,) = j.on_done(_finish(first[0], 1.1), 1.1)
    assert docs.stage == "docs" and docs.backend == "local" and docs.cls == "pipeline"
    assert docs.t_intended == pytest.approx(1.1)
    (answer,) = j.on_done(_finish(docs, 1.105), 1.105)
    assert answer.stage == "answer" and answer.t_intended == pytest.approx(1.105)
    assert answer.prompt_tokens >= 4 * 50 + 16  # it reads the passages and the question
    assert answer.attained_s == pytest.approx(0.1)  # the embed call's engine time only
    assert not j.finished
    j.on_done(_finish(answer, 1.5), 1.5)
    assert j.finished and j.job.status == "completed" and j.job.t_done == pytest.approx(1.5)


def test_fan_in_releases_only_after_both_branches():
    kind = (Pipeline("fan", deadline_ms=5000).embed("q")
            .retrieve("a", after="q", k=2).retrieve("b", after="q", k=3, index="hnsw")
            .rerank("best", after=["a", "b"], k=2)
            .generate("answer", after=["best", "q"]).spec())
    j = _job(kind)
    (q,) = j.start(1.0)
    a, b = j.on_done(_finish(q, 1.2), 1.2)
    assert {a.stage, b.stage} == {"a", "b"}
    assert j.on_done(_finish(a, 1.25), 1.25) == []  # the rerank waits for b
    (rr,) = j.on_done(_finish(b, 1.3), 1.3)
    assert rr.stage == "best" and rr.cls == "embedding" and rr.n_texts == 5
    assert rr.t_intended == pytest.approx(1.3)
    # the rest of the job after the rerank: one generate call
    assert rr.rest_output_tokens == j.stages["answer"].calls[0][1]


def test_a_loop_chains_its_calls_and_the_history_grows():
    j = _job(_agent(), seed=4)
    (p,) = j.start(1.0)
    n = len(j.stages["act"].calls)
    assert 1 <= n <= 3
    calls = _through_locals(j, j.on_done(_finish(p, 1.3), 1.3), 0.02)  # the tool, 20 ms
    t = 1.32
    prompts = []
    while calls:
        (c,) = calls
        assert c.stage == "act" and c.t_intended == pytest.approx(t)
        prompts.append(c.prompt_tokens)
        t += 0.1
        calls = j.on_done(_finish(c, t), t)
    assert len(prompts) == n and prompts == sorted(prompts)
    assert j.finished and j.job.status == "completed"


def test_a_failed_stage_fails_its_job_and_releases_nothing_more():
    j = _job(_rag())
    (q,) = j.start(1.0)
    q.reason = "queue_full"
    assert j.on_done(_finish(q, 1.1, status="rejected"), 1.1) == []
    assert j.job.status == "rejected" and j.job.reason == "stage_q: queue_full"
    assert j.finished


def test_two_pipelines_with_one_name_are_refused():
    with pytest.raises(ValueError, match="two pipelines are named 'rag'"):
        _spec([_rag(), _rag()])


def test_a_stored_workload_with_pipelines_reads_back():
    spec = _spec([_rag(), _agent()])
    again = WorkloadSpec.model_validate(spec.resolved())
    assert again == spec
    assert [r.plan() for r in build_schedule(again)] == [r.plan() for r in build_schedule(spec)]
