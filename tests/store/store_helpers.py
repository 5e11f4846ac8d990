"""Helpers shared by the store tests (imported as a plain module)."""

from __future__ import annotations

from store import histograms as hg


def latency_hist(values_us):
    h = hg.new_histogram()
    for v in values_us:
        hg.record_us(h, v)
    return h


def make_run(store, *, name="r", policy="hybrid", experiment_id=None, seed=0, repetition=0,
             tags=(), ttft_scale=1.0, rps=10.0, n=2000, status="completed",
             measured_rps=None):
    """A finished run with a chat summary and a whole-run ttft histogram (scaled)."""
    config = {"run": {"name": name, "seed": seed}, "control_plane": {"policy": policy},
              "workload": {"rate": rps}, "backends": [{"name": "b0", "kind": "sim"}]}
    w = store.create_run(experiment_id=experiment_id, name=name, mode="sim", config=config,
                         seed=seed, repetition=repetition, tags=tags)
    w.start()
    h = latency_hist([int((1000 + (i * 37) % 9000) * ttft_scale) for i in range(n)])
    w.add_histograms([("ttft", "chat", None, None, h)])
    w.add_summaries({"chat": {"issued": n, "completed": n, "throughput_rps": measured_rps or rps,
                              "metrics": {"ttft": hg.distribution_ms(h)}}})
    w.finish(status)
    return w.run_id
