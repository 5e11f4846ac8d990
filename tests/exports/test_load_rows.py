"""Tables whose rows are offered loads order them by number and show one row per load.

Labels like "poisson 100 req/s" sort before "poisson 25 req/s" as text; the
effectiveness table must put 25 first. The heterogeneous table over a load sweep
(suite D's `load-*` parts) must give a row per load × pool, not refuse the runs.
"""

from __future__ import annotations

import json

from click.testing import CliRunner
from fixture_store import Builder, config, sim_backend, summary

from sagetui.cli import main


def export_json(db, table: str, experiment: str, out) -> dict:
    res = CliRunner().invoke(main, ["--db", str(db), "export", "--format", "json", "--table",
                                    table, "--experiment", experiment, "-o", str(out)],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads((out / f"{table}.json").read_text())


def test_effectiveness_orders_loads_numerically(tmp_path):
    db = tmp_path / "s.db"
    b = Builder(db)
    e = b.experiment("eff-loads")
    for rate in (100.0, 25.0, 50.0, 125.0):
        for bl in ("separate", "sage"):
            cfg = config(workload__rate=rate, control_plane__baseline=bl)
            b.run(e, f"eff-{rate:g}-{bl}-0", cfg, 0, summary(rate * 0.9, target=rate))
    b.close()
    table = export_json(db, "effectiveness", "eff-loads", tmp_path)
    order = [(r["workload"], r["system"]) for r in table["rows"]]
    assert order == [(f"poisson {r} req/s", s) for r in (25, 50, 100, 125)
                     for s in ("sage", "separate")]


def test_heterogeneous_table_gives_a_row_per_load_and_pool(tmp_path):
    db = tmp_path / "s.db"
    b = Builder(db)
    e = b.experiment("het-loads")
    pools = {"GPU-only": ("gpu",), "CPU-only": ("cpu", "cpu"), "mixed": ("gpu", "cpu")}
    prices = {"gpu": 2.5, "cpu": 0.1}
    for rate in (600.0, 150.0):
        for name, devices in pools.items():
            cfg = config(workload__rate=rate,
                         backends=[sim_backend(i, d, prices[d]) for i, d in enumerate(devices)])
            served = rate if name != "CPU-only" or rate < 300 else 300.0
            b.run(e, f"het-{rate:g}-{name}-0", cfg, 0,
                  summary(served / 0.3, target=rate, slo=1.0 if served == rate else 0.2))
    b.close()
    table = export_json(db, "heterogeneous", "het-loads", tmp_path)
    rows = [(r["load"], r["pool"]) for r in table["rows"]]
    assert rows == [(150.0, p) for p in pools] + [(600.0, p) for p in pools]
    slo = {(r["load"], r["pool"]): r["slo"]["mean"] for r in table["rows"]}
    assert slo[(600.0, "CPU-only")] == 20.0 and slo[(600.0, "mixed")] == 100.0
