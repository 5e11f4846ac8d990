"""Relative loads: the capacity probe, the expansion at fraction × capacity, and a failed probe.

The fixture suite (fixtures/relative-load.toml) serves embedding-only traffic on one
simulated MiniLM CPU node; with fifo and max_concurrency 1 each request is one pass of
a + b × tokens = 5.88 ms + 84.7 µs × 256, so the node serves 36.3 req/s.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sagetui.config import ConfigError, expand_raw
from sagetui.orchestrate.runner import run_experiment
from sagetui.suites import expand_suite, load_suite
from sagetui.suites.capacity import (
    CapacityResult,
    Criterion,
    ProbeError,
    _step,
    criterion,
    probe_capacity,
)
from sagetui.suites.relative import class_rates, expand_fractions, resolve

FIXTURE = Path(__file__).parent / "fixtures" / "relative-load.toml"
SERVICE_RATE = 1 / (5.88e-3 + 84.7e-6 * 4 * 64)  # req/s of one unbatched minilm-cpu node


def node_config(**slos):
    raw = {"run": {"name": "node", "part": "node", "seed": 1},
           "control_plane": {"baseline": "sage", "policy": "fifo"},
           "workload": {"rate": 10, "mix": {"embedding": 1.0},
                        "sizes": {"embedding": {"n_texts": 4, "text_tokens": 64}},
                        "slos": {"embedding": slos}},
           "backends": [{"name": "cpu", "kind": "sim", "preset": "minilm-cpu", "device": "cpu",
                         "capabilities": ["embedding"], "max_concurrency": 1}]}
    return expand_raw(raw, source="test", spec_text="").runs[0]


def test_probe_finds_the_service_rate_of_one_node():
    """Without an SLO the throughput criterion binds: the capacity is the node's service
    rate (up to the 5 % the criterion allows)."""
    res = probe_capacity(node_config())
    assert res.criterion.limit_ms == 10_000 and not res.criterion.from_slo
    assert abs(res.capacity_rps - SERVICE_RATE) / SERVICE_RATE <= 0.10, res.describe()
    assert len(res.steps) <= 12


def test_probe_agrees_with_a_fine_sweep():
    """With a 500 ms SLO latency binds below the service rate; the bisection lands within
    10 % of the highest sustained rate of a 0.5 req/s grid."""
    cfg = node_config(e2e_ms=500)
    res = probe_capacity(cfg)
    crit = criterion(cfg)
    grid = [20 + 0.5 * i for i in range(41)]  # 20 .. 40 req/s
    ok = [r for r in grid if _step(cfg, r, crit, 30.0, 5.0).ok]
    assert ok and max(ok) < 40
    assert abs(res.capacity_rps - max(ok)) / max(ok) <= 0.10, (res.describe(), max(ok))
    assert res.capacity_rps < SERVICE_RATE


def test_a_probe_that_sustains_nothing_names_the_part_and_why():
    with pytest.raises(ProbeError, match=r"part node: capacity probe: no rate sustained.*> 1 ms"):
        probe_capacity(node_config(e2e_ms=1))


def fake_probe(capacities: dict[str, float]):
    def probe(cfg):
        if cfg.run.part not in capacities:
            raise ProbeError(f"part {cfg.run.part}: nothing sustained")
        return CapacityResult(capacities[cfg.run.part], Criterion("embedding", "e2e", 500, True),
                              (), 0.0)
    return probe


def test_expansion_runs_at_fraction_times_capacity_and_stores_both():
    exp = expand_suite(load_suite(FIXTURE))
    pending = [c for c in exp.runs if c.run.load_fraction is not None]
    assert {c.run.part for c in pending} == {"fifo", "batched", "impossible"}
    assert all(c.run.capacity_rps is None for c in pending)
    done, failed = resolve(exp, probe=fake_probe({"fifo": 40.0, "batched": 64.0}))
    by_part: dict[str, list] = {}
    for c in done.runs:
        by_part.setdefault(c.run.part, []).append(c)
    for part, cap in (("fifo", 40.0), ("batched", 64.0)):
        runs = by_part[part]
        assert len(runs) == 3 * 2  # 3 fractions x 2 repetitions
        assert sorted({c.run.load_fraction for c in runs}) == [0.5, 0.9, 1.5]
        for c in runs:
            assert c.workload.rate == pytest.approx(c.run.load_fraction * cap)
            assert c.run.capacity_rps == cap and "simulation" in c.run.capacity_basis
            assert c.run.name.endswith(f"[load={c.run.load_fraction:g}]")
            stored = c.resolved()["run"]
            assert stored["capacity_rps"] == cap and stored["load_fraction"] == c.run.load_fraction
        # the repetitions of a fraction offer the same rate: they stay one configuration
        assert len({(c.run.load_fraction, c.workload.rate) for c in runs}) == 3
    assert [c.workload.rate for c in by_part["absolute"]] == [5, 5, 10, 10]
    assert all("capacity_rps" not in c.resolved()["run"] for c in by_part["absolute"])
    failed_parts = {done.runs[i].run.part for i in failed}
    assert failed_parts == {"impossible"} and len(failed) == 6
    assert all("capacity probe failed: part impossible" in why for why in failed.values())


def test_quick_overrides_the_relative_loads():
    exp = expand_suite(load_suite(FIXTURE), quick=True)
    fifo = [c for c in exp.runs if c.run.part == "fifo"]
    assert sorted(c.run.load_fraction for c in fifo) == [0.5, 1.2]
    assert exp.sweep["fifo:relative_load"] == [0.5, 1.2]


def test_pinning_the_rate_drops_relative_loads_and_a_part_cannot_have_both(tmp_path):
    exp = expand_suite(load_suite(FIXTURE), overrides=["workload.rate=7"])
    assert all(c.run.load_fraction is None and c.workload.rate == 7 for c in exp.runs)
    text = FIXTURE.read_text().replace('name = "absolute"', 'name = "absolute"\nrelative_load = [1.0]')
    both = tmp_path / "both.toml"
    both.write_text(text)
    with pytest.raises(ConfigError, match="absolute.*relative_load.*workload.rate"):
        expand_suite(load_suite(both))


def test_a_failed_probe_fails_its_part_and_the_others_complete(db_path):
    exp = expand_suite(load_suite(FIXTURE), quick=True)
    reports = run_experiment(exp, str(db_path), kind="suite", suite="relative-load")
    status = {}
    for r in reports:
        status.setdefault(r.name.split("[")[0].split("/")[-1], set()).add(r.status)
    assert status == {"fifo": {"completed"}, "batched": {"completed"},
                      "impossible": {"failed"}, "absolute": {"completed"}}
    failed = [r for r in reports if r.status == "failed"]
    assert all("capacity probe failed: part impossible" in r.error for r in failed)
    con = sqlite3.connect(db_path)
    ids = ",".join(str(r.run_id) for r in failed)
    rows = con.execute(f"SELECT status, status_reason FROM run WHERE id IN ({ids})").fetchall()
    assert {s for s, _ in rows} == {"failed"} and all("no rate sustained" in w for _, w in rows)
    assert con.execute(f"SELECT COUNT(*) FROM summary WHERE run_id IN ({ids})").fetchone() == (0,)
    cap = con.execute("SELECT json_extract(config_json, '$.run.capacity_rps'), "
                      "json_extract(config_json, '$.run.load_fraction'), "
                      "json_extract(config_json, '$.workload.rate') FROM run "
                      "WHERE name LIKE '%fifo[load=1.2]'").fetchone()
    assert abs(cap[0] - SERVICE_RATE) / SERVICE_RATE < 0.25 and cap[1] == 1.2
    assert cap[2] == pytest.approx(1.2 * cap[0], rel=1e-3)
    _exports_show_load_as_times_capacity(db_path, db_path.parent / "out")


def _exports_show_load_as_times_capacity(db_path, out):
    """The saturation and goodput tables and the load figures read the stored capacity."""
    import csv
    import json

    from exports.api import export
    from exports.selection import Selection

    sel = Selection(suite="relative-load")
    for table in ("saturation", "goodput_capacity"):
        export(db_path, fmt="json", selection=sel, out_dir=out, table=table)
        rows = {r["config"]: r for r in json.loads((out / f"{table}.json").read_text())["rows"]}
        assert set(rows) == {"part=fifo", "part=batched"}
        for r in rows.values():
            assert r["capacity"] > 0 and r["rates"].endswith("(0.5–1.2×)")
            x = r["goodput_x" if table == "saturation" else "all_x"]["mean"]
            assert x in (0.0, 0.5, 1.2)
    export(db_path, fmt="csv", selection=sel, out_dir=out, figure="slo_vs_load")
    with open(out / "slo_vs_load.csv", encoding="utf-8") as f:
        data = list(csv.DictReader(f))
    assert {d["load_x_capacity"] for d in data if "absolute" in d["series"]} == {""}
    data = [d for d in data if "absolute" not in d["series"]]
    assert {float(d["load_x_capacity"]) for d in data} == {0.5, 1.2}
    for d in data:
        assert float(d["offered_rps"]) == pytest.approx(
            float(d["load_x_capacity"]) * float(d["capacity_rps"]), rel=1e-3)


def test_a_capacity_reference_gives_every_policy_the_same_rates():
    """Suite B's rule: policies are compared at the same offered loads, fractions of
    one reference configuration's capacity (here fifo), probed once."""
    raw = {"run": {"name": "p", "part": "p", "seed": 1,
                   "capacity_reference": {"control_plane.policy": "fifo"}},
           "sweep": {"control_plane.policy": ["fifo", "hybrid"]},
           "control_plane": {"baseline": "sage", "policy": "fifo"},
           "workload": {"rate": 10, "mix": {"embedding": 1.0}, "duration_s": 6,
                        "warmup_s": 1,
                        "sizes": {"embedding": {"n_texts": 4, "text_tokens": 64}}},
           "backends": [{"name": "cpu", "kind": "sim", "preset": "minilm-cpu",
                         "device": "cpu", "capabilities": ["embedding"],
                         "max_concurrency": 1}]}
    exp = expand_raw(raw, source="test", spec_text="")
    for c in exp.runs:
        c.run.load_fraction = 0.5
    probed = []

    def probe(cfg):
        probed.append(cfg.control_plane.policy)
        return probe_capacity(cfg)

    done, failed = resolve(exp, probe=probe)
    assert not failed and probed == ["fifo"]  # one probe, of the reference
    rates = {c.control_plane.policy: c.workload.rate for c in done.runs}
    assert rates["fifo"] == rates["hybrid"] > 0
    assert all("reference configuration" in c.run.capacity_basis for c in done.runs)


LLM = {"name": "llm", "kind": "sim", "preset": "7b-h100", "capabilities": ["chat", "completion"],
       "max_concurrency": 256}
EMB = {"name": "emb", "kind": "sim", "preset": "minilm-h100", "capabilities": ["embedding"],
       "max_concurrency": 8}


def chat_relative(**run):
    """Suite D's shape: chat and embeddings at two embedding rates, chat relative."""
    raw = {"run": {"name": "d", "part": "d", "seed": 1, "load_class": "chat", **run},
           "sweep": {"workload.rate+workload.mix": [[260, {"chat": 160, "embedding": 100}],
                                                    [560, {"chat": 160, "embedding": 400}]]},
           "control_plane": {"baseline": "sage", "policy": "hybrid"},
           "workload": {"duration_s": 6, "warmup_s": 1},
           "backends": [LLM, EMB]}
    return expand_raw(raw, source="test", spec_text="")


def test_a_load_class_is_probed_alone_and_sets_only_its_rate():
    """Chat at fractions of the chat capacity of a reference (the LLM engine alone, chat
    alone), embeddings at their configured rates beside it."""
    exp = chat_relative(capacity_reference={"backends": [LLM]})
    exp = exp.model_copy(update={"runs": expand_fractions(exp.runs, [0.5, 1.5])})
    probed = []

    def probe(cfg):
        probed.append(cfg)
        return CapacityResult(200.0, Criterion("chat", "ttft", 1000, True), (), 0.0)

    done, failed = resolve(exp, probe=probe)
    assert not failed and len(probed) == 1  # one reference for both embedding rates
    target = probed[0]
    assert target.workload.mix["chat"] == 1.0 and target.workload.mix["embedding"] == 0.0
    assert target.workload.rate == pytest.approx(160) and [b.name for b in target.backends] == ["llm"]
    seen = set()
    for c in done.runs:
        rates = class_rates(c.workload)
        assert rates["chat"] == pytest.approx(c.run.load_fraction * 200)
        seen.add((c.run.load_fraction, round(rates["embedding"])))
        assert c.workload.rate == pytest.approx(sum(rates.values()))
        assert "chat traffic alone" in c.run.capacity_basis
        assert "backends = [llm (7b-h100 x1)]" in c.run.capacity_basis
    assert seen == {(0.5, 100), (0.5, 400), (1.5, 100), (1.5, 400)}


def test_a_load_class_probe_finds_the_chat_capacity_in_simulation():
    """The real probe on the reference: one 7B H100 serving chat alone sustains a rate
    the embeddings beside it do not count towards."""
    exp = chat_relative(capacity_reference={"backends": [LLM]})
    exp = exp.model_copy(update={"runs": expand_fractions(exp.runs[:1], [1.0])})
    done, failed = resolve(exp)
    assert not failed
    (run,) = done.runs
    cap = run.run.capacity_rps
    assert 20 < cap < 400
    assert class_rates(run.workload)["chat"] == pytest.approx(cap, rel=1e-3)
    assert class_rates(run.workload)["embedding"] == pytest.approx(100, rel=1e-3)


@pytest.mark.parametrize("load_class, message", [("chat", "run.load_class.*no weight"),
                                                 ("speech", "load_class")])
def test_a_load_class_must_be_a_class_the_workload_sends(load_class, message):
    raw = {"run": {"name": "e", "load_class": load_class},
           "workload": {"mix": {"embedding": 1.0}}, "backends": [EMB]}
    with pytest.raises(ConfigError, match=message):
        expand_raw(raw, source="test", spec_text="")
