"""The fidelity suite's live reference: several runs of one load pooled into one estimate."""

from __future__ import annotations

import pytest

from sagetui.config import expand_raw
from sagetui.orchestrate.runner import run_one
from sagetui.suites.fidelity import COMPARED, compare, pooled_summaries
from store import open_store

BACKENDS = [{"name": "g", "kind": "sim", "preset": "7b-h100", "capabilities": ["chat"],
             "max_concurrency": 8},
            {"name": "e", "kind": "sim", "preset": "minilm-cpu", "device": "cpu",
             "capabilities": ["embedding"], "max_concurrency": 2}]


def _run(store, rate, seed):
    raw = {"run": {"mode": "sim", "seed": seed},
           "workload": {"rate": rate, "duration_s": 20, "warmup_s": 1,
                        "mix": {"chat": 0.7, "embedding": 0.3}},
           "backends": BACKENDS}
    return run_one(store, None, expand_raw(raw, source="test", spec_text="").runs[0])


def test_pooled_quantiles_lie_between_the_runs_and_throughput_is_their_mean(db_path):
    with open_store(db_path) as store:
        a, b = _run(store, 40, 1), _run(store, 160, 2)  # light and heavy: quantiles differ
        pooled = pooled_summaries(store, [a.run_id, b.run_id])
    n = 0
    for cls, metric, stat in COMPARED:
        lo, hi = sorted(s[cls]["metrics"][metric][stat] for s in (a.summaries, b.summaries))
        # a quantile of a mixture lies between the mixed distributions' quantiles
        assert lo * 0.999 <= pooled[cls]["metrics"][metric][stat] <= hi * 1.001
        n += lo != hi
    assert n >= 3  # the two runs really differ, so the bounds above mean something
    rates = [s["all"]["throughput_rps"] for s in (a.summaries, b.summaries)]
    assert pooled["all"]["throughput_rps"] == pytest.approx(sum(rates) / 2)
    # one run pooled alone is that run (same HdrHistogram estimator as its summary)
    with open_store(db_path) as store:
        alone = pooled_summaries(store, [a.run_id])
    assert all(abs(e["rel_error"]) < 1e-9 for e in compare(alone, a.summaries).values())
