"""LaTeX tables compile with pdflatex and carry exactly the store's numbers."""

from __future__ import annotations

import json
import math
import re
import shutil
import sqlite3
import subprocess

import pytest
from scipy import stats
from test_golden import SELECTIONS

PDFLATEX = shutil.which("pdflatex")


def _latex(cli, tmp_path, table, *selection):
    result = cli("--format", "latex", "--table", table, *selection, "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    return (tmp_path / f"{table}.tex").read_text()


@pytest.mark.skipif(PDFLATEX is None, reason="pdflatex not installed (scripts/ensure_system_packages.sh installs texlive)")
def test_every_table_compiles_in_a_minimal_document(cli, tmp_path):
    bodies = [_latex(cli, tmp_path / name, name, *sel) for name, sel in SELECTIONS.items()]
    result = cli("--format", "latex", "--table", "scalability", "--suite", "unfair", "--allow-mismatch",
                 "-o", str(tmp_path / "footnoted"))
    assert result.exit_code == 0, result.output
    bodies.append((tmp_path / "footnoted" / "scalability.tex").read_text())  # with footnotes
    doc = tmp_path / "paper.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                   + "\n\\clearpage\n".join(bodies) + "\n\\end{document}\n")
    proc = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", doc.name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "paper.pdf").read_bytes()[:5] == b"%PDF-"


def _rows(tex: str) -> list[list[str]]:
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0]
    return [[c.strip() for c in line.rstrip("\\ ").split(" & ")]
            for line in body.strip().splitlines()]


def _mean_ci(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)


def _cell(text: str) -> tuple[str, str]:
    """(mean, half-width) as printed: digits, or "<0.01" for a non-zero value below resolution."""
    m = re.fullmatch(r"((?:\$<\$)?[\d.]+)(?:\$\\times\$)? \$\\pm\$ ((?:\$<\$)?[\d.]+)", text)
    assert m, text
    return m.group(1).replace("$<$", "<"), m.group(2).replace("$<$", "<")


def _printed(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return f"<{10 ** -decimals:.{decimals}f}" if value > 0 and float(text) == 0 else text


def test_scalability_numbers_equal_the_store(cli, tmp_path, store):
    rows = _rows(_latex(cli, tmp_path, "scalability", "--experiment", "scalability"))
    db = sqlite3.connect(store)
    q = """select r.config_json, s.throughput_rps, s.metrics_json, s.extra_json from run r
           join summary s on s.run_id = r.id join experiment e on e.id = r.experiment_id
           where e.name = 'scalability' and s.request_class = 'all'"""
    by_n: dict[int, list] = {}
    for cfg, thr, metrics, extra in db.execute(q):
        n = len(json.loads(cfg)["backends"])
        over_us = json.loads(extra)["control_plane"]["overhead_us_per_request"]
        over = over_us / 1000 / json.loads(metrics)["e2e"]["mean"] * 100
        by_n.setdefault(n, []).append((thr, over))
    db.close()
    assert [int(r[0]) for r in rows] == sorted(by_n)
    base = _mean_ci([t for t, _ in by_n[1]])[0]
    for row in rows:
        vals = by_n[int(row[0])]
        thr, thr_ci = _mean_ci([t for t, _ in vals])
        over, over_ci = _mean_ci([o for _, o in vals])
        assert _cell(row[1]) == (_printed(thr, 1), _printed(thr_ci, 1))
        assert row[2] == f"{thr / base:.2f}$\\times$"
        assert _cell(row[3]) == (_printed(over, 2), _printed(over_ci, 2))


def test_effectiveness_latencies_equal_the_store(cli, tmp_path, store):
    rows = _rows(_latex(cli, tmp_path, "effectiveness", "--experiment", "effectiveness"))
    db = sqlite3.connect(store)
    q = """select r.config_json, s.request_class, s.metrics_json from run r
           join summary s on s.run_id = r.id join experiment e on e.id = r.experiment_id
           where e.name = 'effectiveness'"""
    values: dict[tuple, list[float]] = {}
    for cfg, cls, metrics in db.execute(q):
        c = json.loads(cfg)
        for metric, dist in json.loads(metrics).items():
            for stat in ("p50", "p95", "p99"):
                key = (c["workload"]["name"], c["control_plane"]["baseline"], cls, metric, stat)
                values.setdefault(key, []).append(dist[stat])
    db.close()
    columns = [(cls, m, s) for cls, m in (("chat", "ttft"), ("chat", "e2e"), ("embedding", "e2e"))
               for s in ("p50", "p95", "p99")]
    assert len(rows) == 6
    for row in rows:
        for i, (cls, metric, stat) in enumerate(columns, start=2):
            key = (row[0], row[1], cls, metric, stat)
            if key not in values:
                assert row[i] == "--"
                continue
            mean, half = _mean_ci(values[key])
            assert _cell(row[i]) == (_printed(mean, 1), _printed(half, 1)), (key, row[i])


def test_heterogeneous_costs_equal_the_store(cli, tmp_path, store):
    rows = _rows(_latex(cli, tmp_path, "heterogeneous", "--experiment", "heterogeneous"))
    db = sqlite3.connect(store)
    q = """select r.id, group_concat(b.device), sum(b.price_per_hour),
                  (select s.throughput_rps from summary s where s.run_id = r.id and s.request_class = 'embedding')
           from run r join backend b on b.run_id = r.id join experiment e on e.id = r.experiment_id
           where e.name = 'heterogeneous' group by r.id"""
    pools: dict[str, list[tuple[float, float]]] = {}
    for _, devices, price, thr in db.execute(q):
        kinds = set(devices.split(","))
        pool = "GPU-only" if kinds == {"gpu"} else "CPU-only" if kinds == {"cpu"} else "mixed"
        pools.setdefault(pool, []).append((price, thr))
    db.close()
    assert [r[0] for r in rows] == ["GPU-only", "CPU-only", "mixed"]
    for row in rows:
        vals = pools[row[0]]
        cost = _mean_ci([p / (t * 3600) * 1e6 for p, t in vals])
        per_dollar = _mean_ci([t / p for p, t in vals])
        assert _cell(row[4]) == (_printed(cost[0], 2), _printed(cost[1], 2))
        assert _cell(row[5]) == (_printed(per_dollar[0], 2), _printed(per_dollar[1], 2))
