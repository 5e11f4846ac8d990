"""SimEmbeddingEngine: batch time a + b·tokens, FIFO, bounded parallelism."""

from __future__ import annotations

import pytest

from engine.sim import SimEmbeddingEngine
from engine.sim.cost import EmbedCost, EmbedPreset

A, B = 4e-3, 50e-6


def preset(par: int = 1, merge_to: int = 0) -> EmbedPreset:
    return EmbedPreset(name="e", model="m", device_kind="X", device="cpu",
                       cost=EmbedCost(A, B), parallelism=par, dynamic_batch_texts=merge_to)


def drain(eng, t: float = 0.0) -> list:
    out = []
    while (te := eng.next_event_time()) is not None:
        out += eng.advance(te)
    return out


def test_batches_run_one_at_a_time_in_order():
    eng = SimEmbeddingEngine(preset())
    eng.submit("a", 8, 512, 0.0)
    eng.submit("b", 1, 64, 0.0)
    assert eng.stats().waiting == 2
    evs = drain(eng)
    assert [(e.kind, e.req_id, e.tokens) for e in evs] == [("done", "a", 8), ("done", "b", 1)]
    ta = A + B * 512
    assert evs[0].t == pytest.approx(ta)
    assert evs[1].t == pytest.approx(ta + A + B * 64)
    assert eng.stats().running == 0


def test_parallelism_serves_batches_side_by_side():
    eng = SimEmbeddingEngine(preset(par=2))
    for i in range(3):
        eng.submit(i, 4, 100, 0.0)
    eng.advance(0.0)
    assert eng.stats().running == 2 and eng.stats().waiting == 1
    evs = drain(eng)
    d = A + B * 100
    assert [e.t for e in evs] == pytest.approx([d, d, 2 * d])


def test_arrival_while_busy_waits_for_the_worker():
    eng = SimEmbeddingEngine(preset())
    eng.submit("a", 1, 100, 0.0)
    eng.advance(0.0)
    eng.submit("b", 1, 100, 0.001)
    evs = drain(eng)
    d = A + B * 100
    assert [e.t for e in evs] == pytest.approx([d, 2 * d])


def test_abort_drops_queued_and_running_batches():
    eng = SimEmbeddingEngine(preset())
    for i in range(3):
        eng.submit(i, 1, 10, 0.0)
    eng.advance(0.0)
    eng.abort(0)
    eng.abort(1)
    assert [e.req_id for e in drain(eng)] == [2]


def test_bad_batches_are_refused():
    eng = SimEmbeddingEngine(preset())
    with pytest.raises(ValueError, match="n_texts"):
        eng.submit("x", 0, 10, 0.0)
    with pytest.raises(ValueError, match="total_tokens"):
        eng.submit("x", 1, -1, 0.0)
    eng.submit("x", 1, 1, 0.0)
    with pytest.raises(ValueError, match="batch_id"):
        eng.submit("x", 1, 1, 0.0)
    with pytest.raises(ValueError, match="parallelism"):
        SimEmbeddingEngine(preset(par=0))


def test_oversized_batches_run_as_several():
    from dataclasses import replace

    eng = SimEmbeddingEngine(replace(preset(), max_batch_texts=8))
    eng.submit("big", 20, 2000, 0.0)
    (ev,) = drain(eng)
    assert ev.t == pytest.approx(3 * A + B * 2000)


def test_dynamic_batching_merges_batches_queued_behind_a_busy_worker():
    """serve-embed's batcher: what queued during a pass runs as the next pass, one `a`."""
    eng = SimEmbeddingEngine(preset(merge_to=32))
    eng.submit("a", 4, 128, 0.0)
    assert eng.advance(0.0) == []  # a starts alone on the idle engine
    eng.submit("b", 2, 64, 0.001)
    eng.submit("c", 3, 96, 0.002)
    evs = drain(eng)
    ta = A + B * 128
    assert [(e.req_id, e.tokens) for e in evs] == [("a", 4), ("b", 2), ("c", 3)]
    assert evs[0].t == pytest.approx(ta)
    assert evs[1].t == evs[2].t == pytest.approx(ta + A + B * (64 + 96))  # one pass
    assert eng.batches == 2


def test_dynamic_batching_stops_at_its_cap_and_skips_aborted_batches():
    eng = SimEmbeddingEngine(preset(merge_to=8))
    eng.submit("a", 1, 10, 0.0)
    eng.advance(0.0)
    for bid in "bcde":
        eng.submit(bid, 4, 40, 0.001)
    eng.abort("c")
    evs = drain(eng)
    ta = A + B * 10
    t_bd = ta + A + B * 80  # b and d (c aborted) make 8 texts: the cap
    assert [(e.req_id, e.t) for e in evs] == [("a", pytest.approx(ta)), ("b", pytest.approx(t_bd)),
                                             ("d", pytest.approx(t_bd)),
                                             ("e", pytest.approx(t_bd + A + B * 40))]


def test_dynamic_batching_rejects_a_negative_cap():
    with pytest.raises(ValueError, match="dynamic_batch_texts"):
        SimEmbeddingEngine(preset(merge_to=-1))


def pass_times(eng, tokens: list[int]) -> list[float]:
    """Each batch alone on an idle engine: its pass time."""
    out, t = [], 0.0
    for i, n in enumerate(tokens):
        eng.submit(i, 1, n, now=t)
        (done,) = drain(eng)
        out.append(done.t - t)
        t = done.t + 1.0
    return out


def test_a_measured_spread_varies_each_pass_around_the_line_reproducibly():
    spread = EmbedPreset(name="e", model="m", device_kind="X", device="cpu",
                         cost=EmbedCost(A, B, spread_quantiles=(0.8, 1.0, 1.2)))
    line = A + B * 100
    times = pass_times(SimEmbeddingEngine(spread, seed=3), [100] * 400)
    assert min(times) >= 0.8 * line - 1e-12 and max(times) <= 1.2 * line + 1e-12
    assert sum(times) / len(times) == pytest.approx(line, rel=0.03)  # mean-1 factors
    assert len({round(x, 9) for x in times}) > 300  # a spread, not a few values
    assert pass_times(SimEmbeddingEngine(spread, seed=3), [100] * 400) == times
    assert pass_times(SimEmbeddingEngine(spread, seed=4), [100] * 400) != times
    # without one, every pass of a size takes the same time
    assert pass_times(SimEmbeddingEngine(preset()), [100] * 5) == pytest.approx([line] * 5)
