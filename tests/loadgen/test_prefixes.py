"""Shared prompt prefixes in the workload: validation, draws, and the old schedules kept."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from loadgen.schedule import Source, build_schedule
from loadgen.spec import WorkloadSpec

BASE = dict(rate=200, duration_s=5, seed=4, mix={"chat": 0.6, "completion": 0.1, "embedding": 0.3},
            sizes={"chat": {"prompt_tokens": {"kind": "uniform", "low": 10, "high": 300}}})
KEEP = ("id", "t_intended", "cls", "client_id", "priority", "output_tokens", "n_texts", "slo_ttft_ms")


def test_adding_prefixes_moves_nothing_but_the_prompts():
    plain = build_schedule(WorkloadSpec(**BASE))
    shared = build_schedule(WorkloadSpec(**BASE, prefixes={"chat": {"groups": 3, "tokens": 512}}))
    assert [[getattr(r, k) for k in KEEP] for r in plain] == \
           [[getattr(r, k) for k in KEEP] for r in shared]
    for a, b in zip(plain, shared, strict=True):
        assert b.prompt_tokens == a.prompt_tokens + b.prefix_tokens
        assert (b.prefix_tokens > 0) == (b.cls == "chat")
    assert all(r.prefix_id == "" and r.prefix_tokens == 0 for r in plain)


def test_shared_prefixes_pick_a_group_with_its_own_length():
    spec = WorkloadSpec(**BASE, prefixes={"chat": {"groups": 4, "share": 0.5, "tokens": {
        "kind": "uniform", "low": 100, "high": 2000}}})
    chat = [r for r in build_schedule(spec) if r.cls == "chat"]
    with_prefix = [r for r in chat if r.prefix_id]
    assert 0.4 < len(with_prefix) / len(chat) < 0.6
    lengths = {r.prefix_id: set() for r in with_prefix}
    for r in with_prefix:
        lengths[r.prefix_id].add(r.prefix_tokens)
        assert not r.prefix_extend
    assert len(lengths) == 4 and all(len(v) == 1 for v in lengths.values())


def test_a_conversation_carries_its_history_and_starts_over_past_the_limit():
    spec = WorkloadSpec(**{**BASE, "mix": {"chat": 1}}, prefixes={"chat": {
        "kind": "conversation", "groups": 2, "max_history": 3000}})
    by_conv: dict[str, list] = {}
    for r in build_schedule(spec):
        by_conv.setdefault(r.prefix_id.split(".")[0], []).append(r)
    assert set(by_conv) == {"chat/conversation/0", "chat/conversation/1"}
    for turns in by_conv.values():
        history = 0
        gen = "0"
        for r in turns:
            g = r.prefix_id.split(".")[1]
            if g != gen:
                history, gen = 0, g
            assert r.prefix_extend and r.prefix_tokens == history
            assert r.prompt_tokens + r.output_tokens <= 3000 or history == 0
            history = r.prompt_tokens + r.output_tokens


def test_a_closed_loop_client_continues_its_own_conversation():
    spec = WorkloadSpec(duration_s=100, clients={"n": 2}, prefixes={"chat": {"kind": "conversation"}})
    src = Source(spec)
    reqs = src.initial()
    seen = list(reqs)
    for _ in range(3):
        reqs = [n for r in reqs for n in src.on_done(r, r.t_intended + 1)]
        seen += reqs
    for c in ("c000", "c001"):
        mine = [r for r in seen if r.client_id == c]
        assert len({r.prefix_id for r in mine}) == 1
        assert [r.prefix_tokens for r in mine][1:] == [
            a.prompt_tokens + a.output_tokens for a in mine[:-1]]


@pytest.mark.parametrize(("prefixes", "message"), [
    ({"embedding": {}}, "prefixes are for chat and completion"),
    ({"chat": {"share": 0}}, "prefixes.chat.share"),
    ({"chat": {"groups": 0}}, "prefixes.chat.groups"),
    ({"chat": {"kind": "template"}}, "prefixes.chat.kind"),
    ({"chat": {"tokens": -5}}, "prefixes.chat.tokens"),
])
def test_bad_prefixes_are_refused_naming_the_field(prefixes, message):
    with pytest.raises(ValidationError) as e:
        WorkloadSpec(prefixes=prefixes)
    assert message in str(e.value)
