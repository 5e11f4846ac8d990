"""`runs list --format json|csv` splices each run's pre-rendered summary (run_listing);
runs without one (summary rows written directly, stores before schema 4) print the same."""

from __future__ import annotations

import csv
import io
import json

from store_helpers import make_run

from store import open_store, queries
from store.migrations import current_version
from store.schema import SCHEMA_VERSION


def _fill(store) -> dict[str, int]:
    exp = store.create_experiment("pol", kind="suite", suite="policies")
    ids = {"h1": make_run(store, name="h1", experiment_id=exp, tags=("paper", 'q"t')),
           "f1": make_run(store, name="f1", policy="fifo", ttft_scale=2.0, rps=20.0),
           "bare": store.create_run(experiment_id=None, name="bare", mode="sim", config={},
                                    seed=0, repetition=0).run_id}
    w = store.create_run(experiment_id=None, name="emb", mode="sim", config={}, seed=0,
                         repetition=0)
    w.add_summaries({"embedding": {"issued": 5, "completed": 5, "throughput_rps": 2.5,
                                   "metrics": {"e2e": {"p50": 3.0, "p99": 9.5}}}})
    w.finish()
    ids["emb"] = w.run_id
    return ids


def _drop_listing(store) -> None:
    with store.transaction() as conn:
        conn.execute("DELETE FROM run_listing")


def test_the_writer_renders_listing_rows_and_both_paths_print_the_same(store):
    ids = _fill(store)
    with store.connection() as conn:
        have = {r[0] for r in conn.execute("SELECT run_id FROM run_listing")}
    assert have == {ids["h1"], ids["f1"], ids["emb"]}  # every run with summaries
    cached_json, cached_csv = queries.list_runs_json(store), queries.list_runs_csv(store)
    _drop_listing(store)
    assert queries.list_runs_json(store) == cached_json
    assert queries.list_runs_csv(store) == cached_csv


def test_csv_columns_are_the_union_and_cells_line_up(store):
    ids = _fill(store)
    rows = list(csv.DictReader(io.StringIO(queries.list_runs_csv(store))))
    by = {r["name"]: r for r in rows}
    assert [r["name"] for r in rows] == ["h1", "f1", "bare", "emb"]
    assert float(by["f1"]["chat.ttft.p99_ms"]) > float(by["h1"]["chat.ttft.p99_ms"])
    assert by["h1"]["tags"] == 'paper,q"t' and by["f1"]["chat.throughput_rps"] == "20.0"
    assert by["emb"]["embedding.e2e.p99_ms"] == "9.5" and by["emb"]["chat.ttft.p99_ms"] == ""
    assert by["bare"]["chat.issued"] == "" and by["bare"]["id"] == str(ids["bare"])


def test_mixed_rendered_and_unrendered_runs(store):
    ids = _fill(store)
    whole = queries.list_runs_csv(store)
    with store.transaction() as conn:
        conn.execute("DELETE FROM run_listing WHERE run_id = ?", (ids["f1"],))
    assert queries.list_runs_csv(store) == whole
    data = json.loads(queries.list_runs_json(store))
    assert data[1]["summary"]["chat"]["throughput_rps"] == 20.0


def test_rewritten_summaries_replace_the_rendered_copy(store):
    w = store.create_run(experiment_id=None, name="r", mode="sim", config={}, seed=0,
                         repetition=0)
    w.add_summaries({"chat": {"issued": 1, "throughput_rps": 1.0}})
    w.add_summaries({"chat": {"issued": 7, "throughput_rps": 3.5}})
    w.finish()
    [run] = json.loads(queries.list_runs_json(store))
    assert run["summary"]["chat"]["issued"] == 7
    assert "3.5" in queries.list_runs_csv(store).splitlines()[1]


def test_a_v3_store_is_upgraded_with_listing_rows_for_its_runs(db_path):
    with open_store(db_path) as s:
        ids = _fill(s)
        before_json, before_csv = queries.list_runs_json(s), queries.list_runs_csv(s)
        with s.transaction() as c:
            c.execute("DROP TABLE run_listing")
            c.execute("DROP INDEX ix_run_rerun_of")
            c.execute("ALTER TABLE run DROP COLUMN rerun_of")
            c.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    with open_store(db_path) as s:
        with s.connection() as c:
            assert current_version(c, str(db_path)) == SCHEMA_VERSION == 5
            n = c.execute("SELECT COUNT(*) FROM run_listing").fetchone()[0]
        assert n == 3
        assert queries.list_runs_json(s) == before_json
        assert queries.list_runs_csv(s) == before_csv
        assert queries.get_run(s, ids["h1"])["rerun_of"] is None


def test_purge_removes_the_listing_row(store):
    ids = _fill(store)
    queries.delete_run(store, ids["h1"], purge=True)
    with store.connection() as conn:
        assert conn.execute("SELECT COUNT(*) FROM run_listing WHERE run_id = ?",
                            (ids["h1"],)).fetchone()[0] == 0
