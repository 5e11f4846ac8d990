"""The run-time estimate follows what costs wall time: runs, backends, request classes.

One requests-per-second figure priced an embedding request like a chat request
and a run's fixed cost at a guess, so suite D came out at half its measured time
and the agents suite at "~0 s".
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sagetui.cli import main
from sagetui.config import Experiment, expand_raw
from sagetui.suites import estimate_seconds
from sagetui.suites.estimate import AGENTS, SIM, SimCosts, agents_seconds, sim_run_seconds

BACKEND = {"name": "b", "kind": "sim", "preset": "7b-h100",
           "capabilities": ["chat", "completion", "embedding"]}


def one_run(**workload):
    raw = {"run": {"mode": "sim"},
           "workload": {"rate": 100, "duration_s": 60, "warmup_s": 10, **workload},
           "backends": [BACKEND]}
    return expand_raw(raw, source="test", spec_text="")


def test_an_embedding_request_costs_less_than_a_chat_request():
    chat = one_run(mix={"chat": 1.0})
    emb = one_run(mix={"embedding": 1.0})
    assert estimate_seconds(emb) < estimate_seconds(chat)
    assert SIM.embed_per_1k_s < SIM.llm_per_1k_s


def test_many_small_runs_cost_more_than_one_run_of_the_same_requests():
    big = one_run(rate=1000)
    small = one_run(rate=100)
    ten_small = Experiment(name="x", source="t", spec_text="", runs=small.runs * 10,
                            sweep={})
    assert estimate_seconds(ten_small) - estimate_seconds(big) >= 9 * SIM.run_s - 1e-9


def test_costs_are_applied_as_documented():
    costs = SimCosts(suite_start_s=1.0, run_s=0.5, backend_s=0.25, llm_per_1k_s=2.0,
                     embed_per_1k_s=1.0)
    exp = one_run(mix={"chat": 0.5, "embedding": 0.5})  # 7,000 requests, half each
    assert sim_run_seconds(exp.runs[0], costs) == 0.5 + 0.25 + 2.0 * 3.5 + 1.0 * 3.5
    assert estimate_seconds(exp, costs) == 1.0 + 0.5 + 0.25 + 10.5


def test_closed_loop_is_bounded_by_clients_over_think_time():
    loop = one_run(clients={"n": 10, "think_time_s": 0.5}, mix={"chat": 1.0})
    costs = SimCosts(0.0, 0.0, 0.0, 1.0, 0.0)
    assert sim_run_seconds(loop.runs[0], costs) == 20 * 70 / 1000


def test_agents_estimate_counts_items_and_the_live_llm_strategy():
    items = {"selection": 875, "selection_pool": 875, "timing": 984, "planning": 646}
    llm_items = {c: 40 for c in items}
    strategies = ("bm25", "embedding", "fusion", "llm")
    sim = agents_seconds(strategies, items, "sim", llm_items=llm_items)
    live = agents_seconds(strategies, items, "live", llm_items=llm_items)
    assert sim > AGENTS.start_s + 3380 * AGENTS.per_item_s["embedding"]
    assert live == pytest.approx(sim + AGENTS.engine_start_s + 160 * AGENTS.llm_per_item_s)
    quick = agents_seconds(("bm25", "embedding"), {c: 30 for c in items}, "sim")
    assert AGENTS.start_s < quick < sim


def test_suite_show_agents_prints_items_and_a_real_estimate(db_path):
    res = CliRunner().invoke(main, ["--db", str(db_path), "suite", "show", "agents"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "dataset BFCL v4 2026.3.23" in res.output
    assert "875 selection, 875 selection_pool, 984 timing, 646 planning test items" in res.output
    sim_line = next(x for x in res.output.splitlines() if x.startswith("expected run time (sim)"))
    assert "~0 s" not in sim_line
