"""Metric definitions on hand-computed records."""

from __future__ import annotations

import json

import pytest

from loadgen import metrics as m
from vocab import Request


def R(**kw) -> Request:
    """A finished record: completed unless told, an embedding of one text."""
    kw.setdefault("status", "completed")
    if kw.get("cls") == "embedding":
        kw.setdefault("n_texts", 1)
    return Request(**kw)


def chat(i, t, **kw):
    base = dict(id=f"r{i}", cls="chat", client_id="c0", t_intended=t, t_sent=t + 0.001,
                t_first_token=t + 0.101, chunk_times=[t + 0.101, t + 0.111, t + 0.131],
                t_done=t + 0.131, output_tokens=3)
    base.update(kw)
    return R(**base)


def test_per_request_definitions():
    r = chat(0, 1.0, t_received=1.002, t_dispatched=1.012)
    assert m.lateness(r) == pytest.approx(0.001)
    assert m.ttft(r) == pytest.approx(0.101)
    assert m.ttft_sent(r) == pytest.approx(0.100)
    assert m.e2e(r) == pytest.approx(0.131)
    assert m.e2e_sent(r) == pytest.approx(0.130)
    assert m.tpot(r) == pytest.approx((0.131 - 0.101) / 2)
    assert m.itl(r) == pytest.approx([0.010, 0.020])
    assert m.queue_wait(r) == pytest.approx(0.010)
    assert m.queue_wait(chat(1, 0, queue_wait_ms=4.0)) == pytest.approx(0.004)
    assert m.tpot(chat(2, 0, output_tokens=1)) is None
    f = chat(3, 0, status="failed", reason="timeout: x")
    assert m.e2e(f) is None and m.itl(f) == []


def test_slo_met_counts_from_intended():
    assert chat(0, 0, slo_ttft_ms=102).slo_met()
    assert not chat(0, 0, slo_ttft_ms=100.5).slo_met()  # 100 ms from actual send, 101 from intended
    assert not chat(0, 0, slo_e2e_ms=130).slo_met()
    assert not chat(0, 0, status="failed").slo_met()


def test_jain():
    assert m.jain([1, 1, 1, 1]) == 1.0
    assert m.jain([1, 0, 0, 0]) == pytest.approx(0.25)
    assert m.jain([1, 2]) == pytest.approx(9 / 10)


def test_records_validate_status():
    with pytest.raises(ValueError, match="status"):
        R(id="x", cls="chat", status="ok")


def test_store_dict_has_request_columns():
    from store.schema import request_row

    d = request_row(chat(0, 1.0, slo_e2e_ms=500))
    assert d["request_id"] == "r0" and d["request_class"] == "chat" and d["slo_met"] is True
    assert "chunk_times" not in d and d["t_first_token"] == pytest.approx(1.101)


def test_aggregate_hand_computed():
    recs = [
        chat(0, 0.5),  # warm-up: excluded
        chat(1, 1.0, slo_ttft_ms=150),
        chat(2, 2.0, client_id="c1", slo_ttft_ms=50),  # misses its TTFT SLO
        chat(3, 3.0, client_id="c1", status="failed", reason="http_500: boom", t_first_token=None,
             chunk_times=[], t_done=3.2),
        R(id="e1", cls="embedding", client_id="c0", t_intended=4.0, t_sent=4.0, t_done=4.05,
          prompt_tokens=128, n_texts=2),
        R(id="x", cls="chat", status="rejected", reason="queue_full: x", t_intended=4.5,
          t_sent=4.5, t_done=4.5),
        chat(9, 11.0),  # after the window: excluded
    ]
    a = m.aggregate(recs, warmup_s=1.0, duration_s=4.0, target_rate_rps=1.25)
    s = a.summaries["all"]
    assert (s["issued"], s["completed"], s["failed"], s["rejected"]) == (5, 3, 1, 1)
    assert s["slo_attainment"] == pytest.approx(2 / 5)  # r1 and e1 met; failure, rejection, r2 missed
    assert s["throughput_rps"] == pytest.approx(3 / 4)
    assert s["throughput_tok_s"] == pytest.approx((3 + 3 + 128) / 4)
    assert s["goodput_rps"] == pytest.approx(2 / 4)
    assert s["achieved_rate_rps"] == pytest.approx(5 / 4)
    assert s["target_rate_rps"] == 1.25
    assert s["extra"]["pacing"]["achieved_over_target"] == pytest.approx(1.0)
    assert s["extra"]["failure_reasons"] == {"http_500": 1, "queue_full": 1}
    ttft = s["metrics"]["ttft"]
    assert ttft["count"] == 2 and ttft["p50"] == pytest.approx(101, rel=1e-3)
    assert s["metrics"]["itl"]["count"] == 4
    assert s["lateness_p99_ms"] == pytest.approx(1.0, rel=1e-3)
    c = a.summaries["chat"]
    assert c["issued"] == 4 and c["target_rate_rps"] is None
    assert a.summaries["embedding"]["metrics"]["e2e"]["p50"] == pytest.approx(50, rel=1e-3)
    # fairness over clients' completed requests: c0 has 2 (r1, e1), c1 has 1, "" has 0
    assert s["extra"]["fairness_jain"] == pytest.approx(m.jain([0, 2, 1]))
    assert s["extra"]["longest_wait_ms"] == pytest.approx(200, rel=1e-3)  # r3 failed at +0.2 s
    keys = {(h[0], h[1], h[2]) for h in a.histograms}
    assert ("ttft", "chat", None) in keys and ("ttft", "chat", 1.0) in keys
    whole = {(h[0], h[1]): h[4] for h in a.histograms if h[2] is None}
    assert whole[("e2e", "all")].get_total_count() == 3


def test_windows_split_by_intended_time():
    recs = [chat(i, 0.5 * i) for i in range(50)]  # 0 .. 24.5 s
    a = m.aggregate(recs, warmup_s=0, duration_s=25, target_rate_rps=2, window_s=10)
    w = {h[2]: h[4].get_total_count() for h in a.histograms if h[0] == "e2e" and h[1] == "chat"}
    assert w == {None: 50, 0.0: 20, 10.0: 20, 20.0: 10}


def test_samples_per_second():
    recs = [chat(0, 0.2), chat(1, 0.5, t_done=1.6, chunk_times=[0.7], t_first_token=0.7),
            chat(2, 1.1, status="failed", reason="timeout: x", t_done=2.5, t_first_token=None, chunk_times=[])]
    a = m.aggregate(recs, warmup_s=0, duration_s=3, target_rate_rps=1)
    s = a.samples
    assert [x["t_s"] for x in s] == [0.0, 1.0, 2.0]
    assert [x["offered_rps"] for x in s] == [2, 1, 0]
    assert [x["achieved_rps"] for x in s] == [1, 1, 0]
    assert [x["errors"] for x in s] == [0, 0, 1]
    assert [x["done"] for x in s] == [1, 2, 3]
    assert [x["in_flight"] for x in s] == [1, 1, 0]
    assert json.loads(s[0]["latency_json"])["chat"]["e2e_p50"] == pytest.approx(131)


def test_pipeline_stages():
    top = R(id="p", cls="pipeline", t_intended=1.0, t_sent=1.0, t_first_token=1.3, t_done=1.5,
            chunk_times=[1.3, 1.5], output_tokens=2, slo_e2e_ms=600)
    emb = R(id="p/embed", cls="embedding", parent_id="p", t_intended=1.0, t_sent=1.0, t_done=1.1)
    ch = R(id="p/chat", cls="chat", parent_id="p", t_intended=1.12, t_sent=1.12, t_first_token=1.3,
           chunk_times=[1.3, 1.5], t_done=1.5, output_tokens=2)
    a = m.aggregate([top, emb, ch], warmup_s=0, duration_s=2, target_rate_rps=None)
    assert set(a.summaries) == {"pipeline", "all"}  # stages are not issued requests
    p = a.summaries["pipeline"]["metrics"]
    assert p["stage_embed"]["p50"] == pytest.approx(100, rel=1e-3)
    assert p["stage_search"]["p50"] == pytest.approx(20, rel=1e-3)
    assert p["stage_chat"]["p50"] == pytest.approx(380, rel=1e-3)
    assert p["e2e"]["p50"] == pytest.approx(500, rel=1e-3)
    assert a.summaries["pipeline"]["slo_attainment"] == 1.0


def test_aggregate_bad_args():
    with pytest.raises(ValueError, match="duration_s"):
        m.aggregate([], warmup_s=0, duration_s=0, target_rate_rps=None)


def test_batched_recording_equals_raw_recording():
    import numpy as np

    rng = np.random.default_rng(0)
    raw = np.concatenate([rng.integers(0, 5000, 2000), rng.lognormal(10, 3, 5000).astype(np.int64) % m.HIST_MAX_US])
    a = m.new_histogram()
    for v in raw.tolist():
        a.record_value(v)
    b = m.new_histogram()
    vals, counts = np.unique(m.lowest_equivalent_us(raw), return_counts=True)
    for v, c in zip(vals.tolist(), counts.tolist(), strict=True):
        b.record_value(v, c)
    assert a.get_total_count() == b.get_total_count()
    for q in (0, 10, 50, 90, 99, 99.9, 100):
        assert a.get_value_at_percentile(q) == b.get_value_at_percentile(q)
    assert a.encode() == b.encode()


def test_fast_percentiles_equal_the_library():
    import numpy as np

    rng = np.random.default_rng(1)
    h = m.new_histogram()
    for v in rng.lognormal(8, 2, 3000).astype(np.int64).tolist():
        h.record_value(v)
    qs = [0, 0.1, 1, 25, 50, 90, 95, 99, 99.9, 100]
    assert m.percentiles_us(h, qs) == [h.get_value_at_percentile(q) for q in qs]
    assert m.percentiles_us(m.new_histogram(), [50]) == [0]
