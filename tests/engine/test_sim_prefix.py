"""Prefix caching in SimLLMEngine (vLLM's APC): hits, LRU eviction, recomputation after
preemption, multi-turn history, and the books kept the same fast-forwarded or not."""

from __future__ import annotations

import random
from collections import OrderedDict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.sim import SimLLMEngine
from engine.sim.cost import LLMCost, LLMPreset
from engine.sim.prefix import Holder, PrefixCache

B0, B1, B2, B3, A = 5e-3, 20e-6, 6e-6, 1e-7, 3e-4


def preset(kv_tokens: int = 16 * 4096, seqs: int = 64, budget: int = 2048) -> LLMPreset:
    return LLMPreset(name="test", model="m", device_kind="X", device="gpu",
                     cost=LLMCost(B0, B1, B2, B3, A), kv_capacity_tokens=kv_tokens,
                     max_num_seqs=seqs, max_num_batched_tokens=budget)


def run(eng: SimLLMEngine, arrivals: list[tuple]) -> dict:
    """arrivals: (t, id, prompt, output, prefix or None). Returns per-id (kind, t) events."""
    out: dict = {}
    arrivals = sorted(arrivals, key=lambda a: a[0])
    i = 0
    while True:
        te = eng.next_event_time()
        ta = arrivals[i][0] if i < len(arrivals) else None
        if te is None and ta is None:
            return out
        if ta is not None and (te is None or ta < te):
            t, rid, p, o, pre = arrivals[i]
            eng.submit(rid, p, o, 2, t, prefix=pre)
            out.setdefault(rid, [])
            i += 1
            continue
        for ev in eng.advance(te):
            for r in (ev.req_ids if ev.kind == "tokens" else (ev.req_id,)):
                out[r].append(("token" if ev.kind == "tokens" else ev.kind, ev.t))
        assert 0 <= eng.blocks_in_use() <= eng.num_blocks
        pc = eng._pc  # the free queue, while kept, holds exactly the free blocks
        if pc is not None:
            queued = sum(s.hi - s.lo for s in pc.q)
            assert queued == (eng.num_blocks - eng.blocks_in_use() if pc.live else 0)


def first(evs, kind):
    return next(t for k, t in evs if k == kind)


def test_a_shared_prefix_is_computed_once():
    eng = SimLLMEngine(preset(), record_steps=True)
    arr = [(0.0, "a", 1000, 4, ("sys", 512)), (1.0, "b", 1000, 4, ("sys", 512))]
    ev = run(eng, arr)
    prefills = [s["prefill"] for s in eng.step_log if s["prefill"]]
    assert prefills == [1000, 1000 - 512]  # b reuses 32 full blocks
    assert first(ev["b"], "first_token") - 1.0 < first(ev["a"], "first_token")
    st_ = eng.prefix_stats()
    assert (st_["queries"], st_["hits"]) == (2000, 512)
    assert eng.blocks_in_use() == 0


def test_only_full_blocks_are_shared_and_the_last_token_is_recomputed():
    eng = SimLLMEngine(preset(), record_steps=True)
    run(eng, [(0.0, "a", 100, 2, ("p", 100)), (1.0, "b", 100, 2, ("p", 100))])
    # 100 tokens: 6 full blocks; b may hit at most (100 - 1) // 16 = 6 of them
    assert [s["prefill"] for s in eng.step_log if s["prefill"]] == [100, 4]
    eng = SimLLMEngine(preset(), record_steps=True)
    run(eng, [(0.0, "a", 96, 2, ("p", 96)), (1.0, "b", 96, 2, ("p", 96))])
    assert [s["prefill"] for s in eng.step_log if s["prefill"]] == [96, 16]


def test_the_cached_prefix_is_read_by_attention():
    eng = SimLLMEngine(preset(), record_steps=True)
    run(eng, [(0.0, "a", 600, 2, ("sys", 512)), (1.0, "b", 600, 2, ("sys", 512))])
    second = [s for s in eng.step_log if s["prefill"]][1]
    assert (second["prefill"], second["kv_read"]) == (88, 512)


def test_different_keys_share_nothing_and_off_means_off():
    eng = SimLLMEngine(preset())
    run(eng, [(0.0, "a", 600, 2, ("x", 512)), (1.0, "b", 600, 2, ("y", 512))])
    assert eng.prefix_stats()["hits"] == 0
    off = SimLLMEngine(preset(), prefix_caching=False, record_steps=True)
    run(off, [(0.0, "a", 600, 2, ("x", 512)), (1.0, "b", 600, 2, ("x", 512))])
    assert [s["prefill"] for s in off.step_log if s["prefill"]] == [600, 600]
    assert off.prefix_stats() == {"enabled": False}


def test_a_freed_prefix_is_evicted_least_recently_freed_first():
    """100 blocks. a (prefix "old") and c (prefix "new") take 33 each and finish; the
    free queue is then 34 never-used blocks, a's 33, c's 33. A request of 300 tokens
    takes 19 never-used ones and both prefixes survive; one of 800 tokens takes 50:
    the 34, a's partial block and 15 of "old", which keeps 17 blocks."""
    def prefills(big: int) -> list[int]:
        eng = SimLLMEngine(preset(kv_tokens=16 * 100), record_steps=True)
        run(eng, [(0.0, "a", 520, 1, ("old", 512)), (1.0, "c", 520, 1, ("new", 512)),
                  (2.0, "big", big, 1, None), (3.0, "a2", 520, 1, ("old", 512)),
                  (4.0, "c2", 520, 1, ("new", 512))])
        return [s["prefill"] for s in eng.step_log if s["prefill"]]

    assert prefills(300) == [520, 520, 300, 8, 8]
    # a2 hits 17 blocks and allocates 16 more from the head: c's partial block and 15
    # of "new", so c2 finds 17 as well
    assert prefills(800) == [520, 520, 800, 520 - 17 * 16, 520 - 17 * 16]


def test_recomputation_after_preemption_hits_its_own_blocks():
    arr = [(0.0, i, 40, 160, None) for i in range(8)]
    on = SimLLMEngine(preset(kv_tokens=640, seqs=8), record_steps=True)
    off = SimLLMEngine(preset(kv_tokens=640, seqs=8), record_steps=True, prefix_caching=False)
    ev_on = run(on, arr)
    run(off, arr)
    assert on.preemptions > 0 and off.preemptions > 0
    assert on.prefix_stats()["hits"] > 0 and on.prefix_stats()["hit_rate_new"] == 0
    recomputed_on = sum(s["prefill"] for s in on.step_log) - 8 * 40
    recomputed_off = sum(s["prefill"] for s in off.step_log) - 8 * 40
    assert recomputed_on < recomputed_off
    for i in range(8):
        assert len([k for k, _ in ev_on[i] if k == "done"]) == 1
    assert on.blocks_in_use() == 0 and not on._pc.live


def test_a_conversation_finds_its_history_cached():
    eng = SimLLMEngine(preset(), record_steps=True)
    # turn 1: 300 in, 100 out; turn 2's prompt is that history (400) + 50 new tokens
    arr = [(0.0, "t1", 300, 100, ("conv", 0, True)), (5.0, "t2", 450, 10, ("conv", 400, True))]
    run(eng, arr)
    prefills = [s["prefill"] for s in eng.step_log if s["prefill"]]
    # the history's full blocks: (300 + 100 - 1) computed tokens -> 24 blocks = 384 tokens
    assert prefills == [300, 450 - 384]


def test_a_prefix_longer_than_the_prompt_is_refused():
    eng = SimLLMEngine(preset())
    with pytest.raises(ValueError, match="prefix"):
        eng.submit("x", 100, 5, 2, 0.0, prefix=("p", 101))


def test_without_prefixes_or_preemptions_the_schedule_is_unchanged():
    rng = random.Random(3)
    arr = [(rng.random() * 3, i, rng.randint(10, 900), rng.randint(1, 200), None)
           for i in range(300)]
    on = run(SimLLMEngine(preset(seqs=32)), arr)
    off = run(SimLLMEngine(preset(seqs=32), prefix_caching=False), arr)
    assert on == off


workload = st.lists(
    st.tuples(st.floats(0, 2.0, allow_nan=False), st.integers(1, 600), st.integers(1, 80),
              st.sampled_from([None, ("a", 64), ("a", 200), ("b", 100), ("c", 0, True)])),
    min_size=1, max_size=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workload, st.sampled_from([48, 200, 4096]), st.integers(1, 16),
       st.sampled_from([16, 64, 512]))
def test_fast_forward_equivalence_and_conservation_with_prefixes(reqs, kv_blocks, seqs, budget):
    budget = max(budget, seqs)
    p = preset(kv_tokens=16 * kv_blocks, seqs=seqs, budget=budget)
    cap = 16 * kv_blocks // 2
    arr = []
    for i, (t, pt, o, pre) in enumerate(reqs):
        pt = min(max(pt, (pre or ("", 0))[1]), cap)
        if pre is not None and pre[1] > pt:
            pre = None
        arr.append((t, i, pt, min(o, cap), pre))
    fast = SimLLMEngine(p, log_hit_rate=True)
    slow = SimLLMEngine(p, token_events=True, log_hit_rate=True)
    ev_f, ev_s = run(fast, arr), run(slow, arr)
    for i, *_ in enumerate(arr):
        assert [k for k, _ in ev_f[i]].count("done") == 1
        for kind in ("first_token", "done", "preempted"):
            tf = [t for k, t in ev_f[i] if k == kind]
            ts = [t for k, t in ev_s[i] if k == kind]
            assert tf == pytest.approx(ts, rel=1e-9, abs=1e-12)
    assert fast.prefix_stats() == slow.prefix_stats()
    assert fast.blocks_in_use() == slow.blocks_in_use() == 0
    assert fast._pc.adj == 0


class _Reference:
    """vLLM's block pool, block by block: chained content hashes, reference counts,
    a free queue in freeing order (a request's last block first) evicted from its
    head, one cached block per hash."""

    def __init__(self, blocks: int, bs: int = 16):
        self.bs = bs
        self.free: OrderedDict[int, None] = OrderedDict((b, None) for b in range(blocks))
        self.ref = [0] * blocks
        self.hash_of: list = [None] * blocks
        self.cached: dict = {}
        self.held: dict = {}  # request -> its block ids

    def hashes(self, content: list) -> list:
        return [tuple(content[: (j + 1) * self.bs]) for j in range(len(content) // self.bs)]

    def lookup(self, content: list) -> list[int]:
        out = []
        for h in self.hashes(content)[: (len(content) - 1) // self.bs]:
            b = self.cached.get(h)
            if b is None:
                break
            out.append(b)
        return out

    def admit(self, rid, content: list) -> int:
        hit = self.lookup(content)
        for b in hit:
            if self.ref[b] == 0:
                del self.free[b]
            self.ref[b] += 1
        self.held[rid] = list(hit)
        return len(hit)

    def compute(self, rid, content: list, tokens: int) -> None:
        """The request holds `tokens` computed tokens: allocate and hash what that fills."""
        mine = self.held[rid]
        while len(mine) * self.bs < tokens:
            b, _ = self.free.popitem(last=False)
            h = self.hash_of[b]
            if h is not None and self.cached.get(h) == b:
                del self.cached[h]
            self.hash_of[b] = None
            self.ref[b] = 1
            mine.append(b)
        for j, h in enumerate(self.hashes(content[:tokens])):
            b = mine[j]
            if self.hash_of[b] is None and h not in self.cached:
                self.hash_of[b] = h
                self.cached[h] = b

    def release(self, rid) -> None:
        for b in reversed(self.held.pop(rid)):
            self.ref[b] -= 1
            if self.ref[b] == 0:
                self.free[b] = None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 2), st.integers(1, 12)),
                min_size=1, max_size=80),
       st.integers(12, 40))
def test_the_range_books_agree_with_a_block_by_block_pool(ops, blocks):
    """Requests with a shared prefix (or none) admitted and computed whole, several
    running at once, then finished, or preempted and readmitted later; every hit and
    every free count agrees with the block pool vLLM keeps."""
    bs = 16
    ref = _Reference(blocks)
    pc = PrefixCache()
    used = 0  # the engine's per-request books
    prefixes = {0: None, 1: ("p", 40), 2: ("q", 70)}
    running: list = []
    waiting: list = []
    n = 0
    for kind, which, size in ops:
        if kind in (1, 2) and running:  # 1: the oldest finishes, 2: the newest is preempted
            rid, content, h = running.pop(0 if kind == 1 else -1)
            tokens = len(content)
            held = -(-tokens // bs)
            free_before = blocks - used - pc.adj
            used -= held
            pc.release(h, held, tokens // bs, kind == 2, free_before)
            ref.release(rid)
            if kind == 2:
                h.preempted = True
                waiting.append((rid, content, h))
            assert blocks - used - pc.adj == len(ref.free)
            continue
        if kind == 3 and waiting:
            rid, content, h = waiting.pop(0)
        else:
            pre = prefixes[which]
            span = pre[1] if pre else 0
            content = [("P", pre[0], i) for i in range(span)] + \
                      [("R", n, i) for i in range(span, span + size * 8)]
            h = Holder(pre[0], span // bs) if pre else Holder()
            rid, n = n, n + 1
        tokens = len(content)
        hk, ho, hfree = pc.lookup(h, (tokens - 1) // bs)
        assert hk + ho == len(ref.lookup(content))
        new_blocks = -(-tokens // bs) - (hk + ho)
        if new_blocks + hfree > blocks - used - pc.adj:
            if kind == 3:
                waiting.insert(0, (rid, content, h))
            continue  # it does not fit now
        assert ref.admit(rid, content) == hk + ho
        pc.admit(h, hk, ho, tokens, bs)
        used += hk + ho
        ref.compute(rid, content, tokens)
        used += new_blocks
        if pc.live:
            pc.take(new_blocks)
        if h.key is not None:
            pc.publish(h, tokens // bs)
        running.append((rid, content, h))
        assert blocks - used - pc.adj == len(ref.free)
