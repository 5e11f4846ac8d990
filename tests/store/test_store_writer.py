"""RunWriter: lifecycle, validation of fields, fingerprints once, bulk requests."""

from __future__ import annotations

import json
import sqlite3

import pytest
from store_helpers import latency_hist

from store import StoreError, config_hash, queries
from store import histograms as hg


def _run(store, **kw):
    args = dict(experiment_id=None, name="r", mode="sim", config={"a": {"b": 1}}, seed=1,
                repetition=0)
    args.update(kw)
    return store.create_run(**args)


def test_lifecycle_created_running_completed(store):
    exp = store.create_experiment("e", kind="suite", suite="policies", spec="[run]")
    w = _run(store, experiment_id=exp, tags=["t1", "t2"], duration_s=60, requests_planned=600)
    assert queries.get_run(store, w.run_id)["status"] == "created"
    w.start()
    r = queries.get_run(store, w.run_id)
    assert r["status"] == "running" and r["pid"] > 0 and r["host"] and r["heartbeat"]
    assert r["software"]["python"].startswith("3.") and "torch" in r["software"]
    assert r["hardware"]["cpu_cores_logical"] >= 1
    w.heartbeat(requests_done=42)
    w.add_backends([{"name": "b0", "role": "llm", "engine_kind": "sim", "launch_args": ["-x"]}])
    w.add_sample({"t_s": 1.0, "offered_rps": 10, "queue_depth": {"chat": 3}})
    w.add_event(2.5, "fault", "b0", "engine down", {"kind": "kill"})
    w.finish()
    r = queries.get_run(store, w.run_id)
    assert r["status"] == "completed" and r["ended"] and r["requests_done"] == 42
    assert r["experiment"] == "e" and r["suite"] == "policies" and r["tags"] == ["t1", "t2"]
    assert r["backends"][0]["launch_args"] == ["-x"]
    assert r["events"][0]["data"] == {"kind": "kill"}
    assert queries.samples(store, w.run_id)[0]["queue_depth"] == {"chat": 3}
    with pytest.raises(StoreError, match="closed"):
        w.add_sample({"t_s": 3})


def test_hardware_fingerprint_stored_once(store):
    for i in range(3):
        w = _run(store, name=f"r{i}")
        w.start()
        w.finish()
    with store.connection() as c:
        assert c.execute("SELECT COUNT(*) FROM hardware").fetchone()[0] == 1
        assert c.execute("SELECT COUNT(DISTINCT hardware_id) FROM run").fetchone()[0] == 1


def test_config_hash_ignores_seed_and_repetition_only():
    a = {"run": {"seed": 1, "name": "x"}, "workload": {"seed": 5, "rate": 10}, "repetition": 0}
    b = {"run": {"seed": 2, "name": "x", "engine_seed": 4}, "workload": {"seed": 9, "rate": 10},
         "repetition": 3}
    c = {"run": {"seed": 1, "name": "x"}, "workload": {"seed": 5, "rate": 11}}
    assert config_hash(a) == config_hash(b) != config_hash(c)
    assert config_hash({"x": 1, "y": 2}) == config_hash({"y": 2, "x": 1})


@pytest.mark.parametrize("kwargs, field", [
    ({"mode": "warp"}, "run.mode"),
    ({"config": {"x": float("nan")}}, "run.config"),
    ({"tags": ["a,b"]}, "tags"),
    ({"experiment_id": 99}, "run.experiment_id"),
])
def test_bad_run_arguments_name_the_field(store, kwargs, field):
    with pytest.raises(StoreError, match=field.replace(".", r"\.")):
        _run(store, **kwargs)


def test_bad_record_fields_are_named(store):
    w = _run(store)
    with pytest.raises(StoreError, match="'bogus'"):
        w.add_sample({"t_s": 0, "bogus": 1})
    with pytest.raises(StoreError, match="t_s"):
        w.add_sample({"offered_rps": 1})
    with pytest.raises(StoreError, match="'colour'"):
        w.add_backends([{"name": "b", "colour": "red"}])
    with pytest.raises(StoreError, match=r"summary\[chat\].*'p99'"):
        w.add_summaries({"chat": {"p99": 3}})
    with pytest.raises(StoreError, match="request record 1.*'cls'"):
        w.add_requests([{"request_id": "a"}, {"request_id": "b", "cls": "chat"}])
    with pytest.raises(StoreError, match=r"sample\.backends_json: not valid JSON"):
        w.add_sample({"t_s": 0, "backends_json": "{oops"})
    with pytest.raises(StoreError, match="not terminal"):
        w.finish("running")


def test_start_twice_refused(store):
    w = _run(store)
    w.start()
    with pytest.raises(StoreError, match="cannot start"):
        w.start()


def test_add_requests_bulk_roundtrip(store):
    w = _run(store)
    n = 120_001  # crosses the 100k commit chunk
    recs = ({"request_id": str(i), "request_class": "chat" if i % 2 else "embedding",
             "t_intended": i * 0.001, "t_done": i * 0.001 + 0.05, "output_tokens": i % 7,
             "slo_met": i % 3 == 0} for i in range(n))
    assert w.add_requests(recs) == n
    with store.connection() as c:
        assert c.execute("SELECT COUNT(*), SUM(output_tokens), SUM(slo_met) FROM request "
                         "WHERE run_id = ?", (w.run_id,)).fetchone() == (
            n, sum(i % 7 for i in range(n)), sum(1 for i in range(n) if i % 3 == 0))
        assert c.execute("SELECT request_class, t_done, priority FROM request WHERE request_id='3'"
                         ).fetchone() == ("chat", pytest.approx(0.053), 2)


def test_summaries_and_histograms_roundtrip(store):
    w = _run(store)
    h = latency_hist(range(1000, 2000))
    w.add_histograms([("ttft", "chat", None, None, h), ("ttft", "chat", 0.0, 10.0, h)])
    w.add_summaries({"chat": {"issued": 5, "metrics": {"ttft": hg.distribution_ms(h)},
                              "extra": {"jain": 0.9}}})
    w.add_summaries({"chat": {"issued": 6, "metrics_json": json.dumps({"e2e": {"p99": 1}})}})
    s = queries.summaries_for(store, [w.run_id])[w.run_id]["chat"]
    assert s["issued"] == 6 and s["metrics"] == {"e2e": {"p99": 1}}  # replaced, not appended
    [(metric, cls, start, width, back)] = queries.histograms(store, w.run_id)
    assert (metric, cls, start, width) == ("ttft", "chat", None, None)
    assert back.get_total_count() == 1000 and back.get_value_at_percentile(50) == \
        h.get_value_at_percentile(50)
    assert len(queries.histograms(store, w.run_id, windows=True)) == 1
    with store.connection() as c:
        row = c.execute("SELECT count, min_us, max_us FROM histogram LIMIT 1").fetchone()
    assert row == (1000, 1000, h.get_max_value())


def test_writer_context_marks_failed_on_exception(store):
    with pytest.raises(ValueError), _run(store) as w:
        w.start()
        raise ValueError("boom")
    r = queries.get_run(store, w.run_id)
    assert r["status"] == "failed" and "boom" in r["status_reason"]


def test_integrity_after_writes(store, db_path):
    w = _run(store)
    w.start()
    w.finish()
    assert sqlite3.connect(db_path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_add_samples_bulk_is_all_or_nothing(store):
    w = _run(store)
    assert w.add_samples({"t_s": float(t), "done": t} for t in range(100)) == 100
    assert [s["done"] for s in queries.samples(store, w.run_id)] == list(range(100))
    with pytest.raises(StoreError, match=r"sample\[1\].t_s"):
        w.add_samples([{"t_s": 100.0}, {"done": 1}])
    assert len(queries.samples(store, w.run_id)) == 100
    assert [s["t_s"] for s in queries.samples(store, w.run_id, after_t=97)] == [98.0, 99.0]
