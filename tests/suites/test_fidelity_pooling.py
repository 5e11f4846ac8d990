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


def test_engine_seed_draws_new_noise_over_the_same_requests(db_path, tmp_path, monkeypatch):
    """The fidelity suite's repeated sim runs: same workload (ids, sizes, send times),
    different engine noise; the same engine seed reproduces a run exactly."""
    import sqlite3
    from dataclasses import replace

    from engine.sim.presets import get_embed_preset, save_preset

    base = get_embed_preset("minilm-cpu")
    save_preset(replace(base, name="minilm-noisy", cost=replace(
        base.cost, spread_quantiles=tuple(0.5 + 0.01 * i for i in range(101)))), tmp_path)
    monkeypatch.setenv("SAGETUI_PRESETS_DIR", str(tmp_path))

    def run(store, engine_seed):
        raw = {"run": {"mode": "sim", "seed": 1, "raw": True, "engine_seed": engine_seed},
               "workload": {"rate": 20, "duration_s": 10, "warmup_s": 1,
                            "mix": {"embedding": 1.0}},
               "backends": [{"name": "e", "kind": "sim", "preset": "minilm-noisy",
                             "device": "cpu", "capabilities": ["embedding"],
                             "max_concurrency": 2}]}
        rid = run_one(store, None, expand_raw(raw, source="test", spec_text="").runs[0]).run_id
        con = sqlite3.connect(db_path)
        return con.execute("SELECT request_id, n_texts, t_sent, t_done - t_sent FROM request "
                           "WHERE run_id=? ORDER BY request_id", (rid,)).fetchall()

    with open_store(db_path) as store:
        a, a2, b = run(store, 1), run(store, 1), run(store, 2)
    assert len(a) > 100 and a == a2
    assert [r[:3] for r in a] == [r[:3] for r in b]  # the same requests, sent alike
    assert sum(x[3] != y[3] for x, y in zip(a, b, strict=True)) > len(a) / 2  # new noise
