"""Pipeline-aware policies: what each puts first, and that nothing is lost."""

from __future__ import annotations

import pytest
from sched_helpers import llm

from scheduler.actions import Dispatch, Reject, SetTimer
from scheduler.config import ControlPlaneConfig
from scheduler.core import ControlPlane
from vocab import Request


def _core(policy: str, admission: str = "auto", **pipeline) -> ControlPlane:
    cfg = ControlPlaneConfig(policy=policy, admission=admission, pipeline=pipeline)
    return ControlPlane(cfg, [llm("g", conc=1)])


def _call(rid, t, job=None, deadline=None, rest_out=0, attained=0.0, out=16) -> Request:
    return Request(id=rid, cls="chat", arrival=t, t_intended=t, prompt_tokens=64,
                   output_tokens=out, parent_id=job, pipeline="p" if job else "",
                   stage="s" if job else "", pipeline_deadline=deadline,
                   rest_output_tokens=rest_out, attained_s=attained)


def _order(cp: ControlPlane, reqs: list[Request]) -> list[str]:
    """Occupy the one slot, queue `reqs`, then free the slot one completion at a time."""
    acts = cp.on_arrival(_call("busy", 0.0), 0.0)
    did = next(a for a in acts if isinstance(a, Dispatch)).dispatch_id
    for r in reqs:
        cp.on_arrival(r, r.arrival)
    out, t = [], 1.0
    while True:
        acts = cp.on_completion("g", did, t)
        ds = [a for a in acts if isinstance(a, Dispatch)]
        if not ds:
            return out
        out.append(ds[0].requests[0].id)
        did, t = ds[0].dispatch_id, t + 1.0


def test_least_slack_puts_the_nearly_done_job_first():
    # j1 started at 0 with a 2 s deadline and is at its last call (released at 0.2);
    # j2's first call arrived earlier (0.1), its job has 4 s and one more call after it.
    calls = [_call("j2-first", 0.1, "j2", 4.1, rest_out=16),
             _call("j1-last", 0.2, "j1", 2.0, rest_out=0)]
    assert _order(_core("pipeline-slack"), calls) == ["j1-last", "j2-first"]
    again = [_call("j2-first", 0.1, "j2", 4.1, rest_out=16),
             _call("j1-last", 0.2, "j1", 2.0, rest_out=0)]
    assert _order(_core("fifo"), again) == ["j2-first", "j1-last"]


def test_least_slack_counts_the_work_left_after_a_call():
    # One deadline: the call whose job still has 2000 output tokens to run has less slack.
    calls = [_call("short", 0.1, "j1", 10.0, rest_out=0),
             _call("long", 0.2, "j2", 10.0, rest_out=2000)]
    assert _order(_core("pipeline-slack", admission="off"), calls) == ["long", "short"]


@pytest.mark.parametrize("policy", ["pipeline-slack", "pipeline-fcfs", "pipeline-hybrid"])
def test_a_call_whose_job_can_no_longer_make_it_is_shed(policy):
    cp = _core(policy)
    # 20,000 output tokens still to run before a deadline 5 s away: hopeless
    acts = cp.on_arrival(_call("hopeless", 0.0, "j1", 5.0, rest_out=20_000), 0.0)
    assert [type(a) for a in acts] == [Reject] and acts[0].reason == "slo_shed"
    ok = cp.on_arrival(_call("fine", 0.1, "j2", 5.0, rest_out=16), 0.1)
    assert [type(a) for a in ok] == [Dispatch]
    off = _core(policy, admission="off")
    assert [type(a) for a in off.on_arrival(
        _call("hopeless", 0.0, "j1", 5.0, rest_out=20_000), 0.0)] == [Dispatch]


def test_least_slack_puts_jobs_with_a_deadline_before_plain_calls_without_one():
    order = _order(_core("pipeline-slack"), [_call("plain", 0.1), _call("stage", 0.2, "j", 50.0)])
    assert order == ["stage", "plain"]


def test_program_fcfs_lets_an_older_job_s_later_call_overtake():
    older_later = _call("j1-second", 0.3, "j1")
    older_later.pipeline_start = 0.0
    newer_first = _call("j2-first", 0.2, "j2")
    newer_first.pipeline_start = 0.2
    plain = _call("plain", 0.25)
    assert _order(_core("pipeline-fcfs", admission="off"), [newer_first, plain, older_later]) == \
        ["j1-second", "j2-first", "plain"]


def _two_jobs(j2_deadline: float) -> list[Request]:
    """j1 started first with a loose deadline; j2 started later with `j2_deadline`."""
    j1 = _call("j1", 0.3, "j1", 100.0)
    j1.pipeline_start = 0.0
    j2 = _call("j2", 0.2, "j2", j2_deadline)
    j2.pipeline_start = 0.2
    return [j2, j1]


@pytest.mark.parametrize("policy", ["pipeline-fcfs", "pipeline-hybrid"])
def test_hybrid_keeps_job_order_while_every_call_can_wait_its_turn(policy):
    assert _order(_core(policy, admission="off"), _two_jobs(50.0)) == ["j1", "j2"]


def test_hybrid_serves_a_call_first_whose_latest_start_comes_before_the_queue_drains():
    # at t=1 two calls are queued; j2 must start by about 1.05, before they drain
    assert _order(_core("pipeline-hybrid", admission="off"), _two_jobs(1.15)) == ["j2", "j1"]
    assert _order(_core("pipeline-fcfs", admission="off"), _two_jobs(1.15)) == ["j1", "j2"]


def test_hybrid_shutdown_accounts_for_each_call_once():
    cp = _core("pipeline-hybrid", admission="off")
    cp.on_arrival(_call("busy", 0.0), 0.0)
    for r in _two_jobs(1.15):
        cp.on_arrival(r, r.arrival)
    out = cp.shutdown(0.5)
    assert sorted(x.request.id for x in out if hasattr(x, "request")) == ["busy", "j1", "j2"]


def test_las_serves_the_job_with_less_attained_service_first():
    order = _order(_core("pipeline-las"), [_call("old", 0.1, "j1", attained=2.0),
                                           _call("new", 0.2, "j2", attained=0.0)])
    assert order == ["new", "old"]


def test_las_weight_bounds_how_long_a_job_is_overtaken():
    # 2 s attained x weight 10 = 20 s: a call that arrived 30 s later does not overtake
    order = _order(_core("pipeline-las"), [_call("old", 0.1, "j1", attained=2.0),
                                           _call("new", 30.1, "j2", attained=0.0)])
    assert order == ["old", "new"]


def test_staggered_holds_a_new_job_until_its_turn():
    cp = ControlPlane(ControlPlaneConfig(policy="staggered", pipeline={"stagger_ms": 500}),
                      [llm("g", conc=8)])
    a = cp.on_arrival(_call("j1/a", 0.0, "j1"), 0.0)
    assert any(isinstance(x, Dispatch) for x in a)  # the first job goes at once
    b = cp.on_arrival(_call("j2/a", 0.1, "j2"), 0.1)
    assert not any(isinstance(x, Dispatch) for x in b)  # held: j1 was admitted at 0.0
    assert any(isinstance(x, SetTimer) and x.t == 0.5 for x in b)
    c = cp.on_arrival(_call("j1/b", 0.2, "j1"), 0.2)  # an admitted job's later call goes
    assert any(isinstance(x, Dispatch) for x in c)
    d = cp.on_timer(0.5)
    assert [x.requests[0].id for x in d if isinstance(x, Dispatch)] == ["j2/a"]
    cp.on_arrival(_call("j3/a", 0.6, "j3"), 0.6)  # held until 1.0
    out = cp.shutdown(0.7)
    assert "j3/a" in {x.request.id for x in out if hasattr(x, "request")}  # held: not lost


def _old_loose_calls(n: int, out: int = 400) -> list[Request]:
    """Calls of jobs that started at 0 with a loose deadline: first in job order."""
    calls = []
    for i in range(n):
        r = _call(f"old{i}", 0.1 + 0.01 * i, f"old{i}", 100.0, out=out)
        r.pipeline_start = 0.0
        calls.append(r)
    return calls


@pytest.mark.parametrize("policy,served_first", [("pipeline-hybrid", True),
                                                 ("pipeline-fcfs", False)])
def test_admission_ranks_a_chat_arrival_where_the_policy_serves_it(policy, served_first):
    # Three long calls of older jobs queue (about 8 s of work on the one slot); a chat
    # request that needs its first token within 2 s arrives. Hybrid serves it first
    # (its latest start comes before the queue drains), so admission, ranking it there,
    # admits it; fcfs serves it after the three, so admission refuses it.
    cp = _core(policy)
    chat = Request(id="chat", cls="chat", arrival=0.4, t_intended=0.4, prompt_tokens=64,
                   output_tokens=16, slo_ttft_ms=2000)
    order = _order(cp, [*_old_loose_calls(3), chat])
    if served_first:
        assert order == ["chat", "old0", "old1", "old2"]
    else:
        assert order == ["old0", "old1", "old2"]
        assert cp.reasons["rejected:slo_infeasible"] == 1
