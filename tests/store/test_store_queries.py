"""Read side: filters, --where over the resolved config, since, compare marks, read-only SQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from store_helpers import make_run

from store import RunNotFound, StoreError, queries


@pytest.fixture
def populated(store):
    exp = store.create_experiment("pol", kind="suite", suite="policies")
    ids = {
        "h1": make_run(store, name="h1", policy="hybrid", experiment_id=exp, tags=("paper",)),
        "f1": make_run(store, name="f1", policy="fifo", experiment_id=exp, rps=20.0),
        "x": make_run(store, name="x", policy="hybrid", status="failed"),
    }
    return store, ids


def names(runs):
    return [r["name"] for r in runs]


def test_filters(populated):
    store, ids = populated
    assert names(queries.list_runs(store)) == ["h1", "f1", "x"]
    assert names(queries.list_runs(store, status="failed")) == ["x"]
    assert names(queries.list_runs(store, tag="paper")) == ["h1"]
    assert names(queries.list_runs(store, suite="policies")) == ["h1", "f1"]
    assert names(queries.list_runs(store, last=2)) == ["f1", "x"]
    assert names(queries.list_runs(store, since="1h")) == ["h1", "f1", "x"]
    assert queries.list_runs(store, since="2999-01-01") == []
    with pytest.raises(StoreError, match="status"):
        queries.list_runs(store, status="bogus")


def test_where_over_resolved_config(populated):
    store, _ = populated
    assert names(queries.list_runs(store, where=["control_plane.policy=hybrid"])) == ["h1", "x"]
    assert names(queries.list_runs(store, where=["control_plane.policy=hybrid",
                                                 "run.name=h1"])) == ["h1"]
    assert names(queries.list_runs(store, where=["workload.rate>=15"])) == ["f1"]
    assert names(queries.list_runs(store, where=["workload.rate=10"])) == ["h1", "x"]
    assert names(queries.list_runs(store, where=["backends.0.kind=sim"])) == ["h1", "f1", "x"]
    assert names(queries.list_runs(store, where=["control_plane.policy!=hybrid"])) == ["f1"]
    assert queries.list_runs(store, where=["no.such.path=1"]) == []


@pytest.mark.parametrize("bad", ["policy", "=x", "a..b=1", "a=", "a.b={\"x\":1}", "a<null"])
def test_bad_where_is_named(store, bad):
    with pytest.raises(StoreError, match="where"):
        queries.list_runs(store, where=[bad])


def test_parse_since():
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert queries.parse_since("2h", now) == "2026-11-25T10:00:00.000+00:00"
    assert queries.parse_since("2026-11-24", now) == "2026-11-24T00:00:00.000+00:00"
    assert queries.parse_since("2026-11-24T10:00+01:00", now) == "2026-11-24T09:00:00.000+00:00"
    for bad in ("yesterday", "2026-13-01", "5y"):
        with pytest.raises(StoreError, match="since"):
            queries.parse_since(bad, now)


def test_get_run_unknown_and_deleted(populated):
    store, ids = populated
    with pytest.raises(RunNotFound, match="run 999"):
        queries.get_run(store, 999)
    queries.delete_run(store, ids["x"])
    assert names(queries.list_runs(store)) == ["h1", "f1"]
    with pytest.raises(RunNotFound):
        queries.get_run(store, ids["x"])
    assert queries.get_run(store, ids["x"], include_deleted=True)["deleted"]
    queries.delete_run(store, ids["x"], purge=True)
    with store.connection() as c:
        assert c.execute("SELECT COUNT(*) FROM summary WHERE run_id=?", (ids["x"],)).fetchone() \
            == (0,)
        assert c.execute("SELECT COUNT(*) FROM run WHERE id=?", (ids["x"],)).fetchone() == (0,)


def test_tags(populated):
    store, ids = populated
    assert queries.tag_run(store, ids["f1"], ["a", "b"]) == ["a", "b"]
    assert queries.untag_run(store, ids["f1"], ["a"]) == ["b"]
    assert names(queries.list_runs(store, tag="b")) == ["f1"]
    assert queries.get_run(store, ids["f1"])["tags"] == ["b"]
    with pytest.raises(StoreError, match="tag"):
        queries.tag_run(store, ids["f1"], ["x,y"])
    with pytest.raises(RunNotFound):
        queries.tag_run(store, 999, ["a"])


def test_compare_single_runs_uses_histograms(store):
    a = make_run(store, name="a", policy="p1")
    b = make_run(store, name="b", policy="p2", ttft_scale=1.5)
    c = make_run(store, name="c", policy="p3", ttft_scale=1.0)
    res = queries.compare(store, [a, b, c])
    row = next(r for r in res["rows"] if r["metric"] == "ttft.p50")
    assert row["test"] == ["mann-whitney", "mann-whitney"]
    assert row["marks"] == ["+", "~"]
    assert row["changes"][0] == pytest.approx(0.5, abs=0.01)
    thr = next(r for r in res["rows"] if r["metric"] == "throughput_rps")
    assert thr["marks"] == ["", ""]  # one run per side, no distribution: untestable
    assert res["warnings"] == []
    with store.transaction() as conn:
        conn.execute("UPDATE run SET software_json = '{\"vllm\": \"0.1\"}' WHERE id = ?", (c,))
    assert "vllm" in queries.compare(store, [a, c])["warnings"][0]


def test_compare_repetitions_uses_welch(store):
    e1 = store.create_experiment("base")
    e2 = store.create_experiment("fast")
    base = [make_run(store, name="b", experiment_id=e1, seed=s, repetition=s,
                     measured_rps=10 + s * 0.1)
            for s in range(3)]
    fast = [make_run(store, name="f", experiment_id=e2, seed=s, repetition=s,
                     measured_rps=20 + s * 0.1, rps=20,
                     ttft_scale=0.5) for s in range(3)]
    res = queries.compare(store, [base[0], fast[0]])
    assert res["groups"] == [base, fast]
    thr = next(r for r in res["rows"] if r["metric"] == "throughput_rps")
    assert thr["test"] == ["welch"] and thr["marks"] == ["+"] and thr["n"] == [3, 3]
    ttft = next(r for r in res["rows"] if r["metric"] == "ttft.p99")
    assert ttft["marks"] == ["-"]
    same = queries.compare(store, [base[0], base[1]])  # repetitions of each other: singletons
    assert same["groups"] == [[base[0]], [base[1]]]
    with pytest.raises(StoreError, match="two runs"):
        queries.compare(store, [base[0]])


def test_run_sql_read_only(populated, db_path):
    store, _ = populated
    cols, rows = queries.run_sql(db_path, "SELECT name, json_extract(config_json, "
                                          "'$.control_plane.policy') AS p FROM run ORDER BY id")
    assert cols == ["name", "p"] and rows[0] == ("h1", "hybrid")
    before = db_path.read_bytes()
    for bad in ("DELETE FROM run", "UPDATE run SET name='x'", "INSERT INTO meta VALUES ('a','b')",
                "DROP TABLE run", "CREATE TABLE t(x)", "ATTACH DATABASE ':memory:' AS m",
                "PRAGMA journal_mode=DELETE", "WITH x AS (SELECT 1) DELETE FROM run"):
        with pytest.raises(StoreError, match="refused"):
            queries.run_sql(db_path, bad)
    assert db_path.read_bytes() == before
    assert queries.list_runs(store)[0]["name"] == "h1"
    with pytest.raises(StoreError, match="sql"):
        queries.run_sql(db_path, "SELEC nonsense")


def test_list_runs_json_matches_structured_reads(populated):
    import json

    store, ids = populated
    queries.tag_run(store, ids["h1"], ['quote"d'])
    data = json.loads(queries.list_runs_json(store, where=["control_plane.policy=hybrid"]))
    assert [d["name"] for d in data] == ["h1", "x"]
    full = queries.get_run(store, ids["h1"])
    assert data[0]["config"] == full["config"] and data[0]["tags"] == ["paper", 'quote"d']
    chat = data[0]["summary"]["chat"]
    assert chat["metrics"] == full["summary"]["chat"]["metrics"]
    assert chat["throughput_rps"] == 10.0 and chat["slo_attainment"] is None
    flat = queries.flat_summaries(store)
    assert flat[ids["h1"]]["chat.ttft.p99_ms"] == full["summary"]["chat"]["metrics"]["ttft"]["p99"]
    assert queries.list_runs_json(store, status="cancelled") == "[]"
