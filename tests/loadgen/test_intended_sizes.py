"""Records can be matched back to the sizes the workload drew (calibration needs them)."""

from __future__ import annotations

import random

from loadgen.schedule import Source, build_schedule, intended_requests
from loadgen.spec import WorkloadSpec

SIZES = {"chat": {"prompt_tokens": {"kind": "uniform", "low": 16, "high": 384}},
         "embedding": {"n_texts": {"kind": "uniform", "low": 1, "high": 32}}}


def test_open_loop_ids_give_back_their_scheduled_sizes():
    spec = WorkloadSpec(rate=50, duration_s=4, mix={"chat": 0.7, "embedding": 0.3}, sizes=SIZES)
    sched = build_schedule(spec)
    pick = [r.id for r in sched[::7]]
    got = intended_requests(spec, [*pick, "r9999999", "bogus"])
    assert set(got) == set(pick)
    assert all(got[r.id].plan() == r.plan() for r in sched[::7])


def test_closed_loop_ids_give_back_what_each_client_sent_whatever_the_completion_order():
    spec = WorkloadSpec(clients={"n": 3}, duration_s=4, mix={"chat": 0.5, "embedding": 0.5},
                        sizes=SIZES)
    src, sent = Source(spec), []
    pending = src.initial()
    rng = random.Random(0)
    while pending and len(sent) < 40:  # complete requests in a random order
        r = pending.pop(rng.randrange(len(pending)))
        sent.append(r)
        pending += src.on_done(r, 0.01 * len(sent))
    got = intended_requests(spec, [r.id for r in sent])
    assert len(got) == len(sent)
    for r in sent:
        g = got[r.id]
        assert (g.cls, g.prompt_tokens, g.output_tokens, g.n_texts) == \
            (r.cls, r.prompt_tokens, r.output_tokens, r.n_texts)
