"""A sim backend honours the vLLM scheduler flags of the engine it stands for."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.sim import SimEmbeddingEngine, SimLLMEngine
from engine.sim.factory import make_engine, sim_flags
from engine.spec import BackendSpec


def spec(**kw) -> BackendSpec:
    base = dict(name="b", kind="sim", capabilities=["chat"], preset="7b-h100")
    base.update(kw)
    return BackendSpec(**base)


def test_vllm_flags_reach_the_engine():
    eng = make_engine(spec(extra_args=["--max-num-seqs", "8", "--max-num-batched-tokens=1024",
                                       "--scheduling-policy", "priority", "--dtype", "bf16"]))
    assert isinstance(eng, SimLLMEngine)
    assert (eng.max_seqs, eng.max_tokens, eng.priority_scheduling) == (8, 1024, True)
    for i in range(20):
        eng.submit(i, 50, 20, 2, 0.0)
    eng.advance(0.0)
    assert eng.stats().running == 8


def test_defaults_and_embedding_presets():
    eng = make_engine(spec())
    assert (eng.max_seqs, eng.priority_scheduling) == (256, False)
    assert isinstance(make_engine(spec(capabilities=["embedding"], preset="minilm-cpu")),
                      SimEmbeddingEngine)
    assert sim_flags(["--dtype", "bf16", "--enforce-eager"])[1] == ["--dtype", "bf16",
                                                                    "--enforce-eager"]


@pytest.mark.parametrize(("args", "message"), [
    (["--max-num-seqs"], "--max-num-seqs needs a value"),
    (["--max-num-seqs", "many"], "needs an integer, got 'many'"),
    (["--max-num-batched-tokens=0"], "must be >= 1"),
    (["--scheduling-policy", "edf"], "'edf' is not one of fcfs, priority"),
])
def test_bad_flags_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        sim_flags(args)


def test_only_sim_backends():
    with pytest.raises(ValueError, match="not 'sim'"):
        make_engine(spec(kind="vllm"))


def test_noise_is_seeded_per_run_and_per_backend(tmp_path, monkeypatch):
    """Replicas of one calibrated preset draw their own front-end delays, and a new
    run seed draws new ones; the same seed and name draw the same."""
    from engine.sim.presets import get_llm_preset, save_preset

    base = get_llm_preset("tiny-cpu")
    noisy = replace(base, name="noisy", cost=replace(base.cost, frontend_quantiles=tuple(
        0.001 * i for i in range(101))))
    monkeypatch.setenv("SAGETUI_PRESETS_DIR", str(tmp_path))
    save_preset(noisy, tmp_path)

    def ttfts(name: str, seed: int) -> list[float]:
        eng = make_engine(spec(name=name, preset="noisy"), seed=seed)
        out = []
        for i in range(20):
            t0 = i * 10.0
            eng.submit(i, 16, 1, now=t0)
            while (te := eng.next_event_time()) is not None:
                out += [e.t - t0 for e in eng.advance(te) if e.kind == "first_token"]
        return out

    a = ttfts("r0", 1)
    assert len(a) == 20
    assert ttfts("r0", 1) == a
    assert ttfts("r1", 1) != a
    assert ttfts("r0", 2) != a


@pytest.mark.parametrize("kind", ["vllm", "vllm-cpu", "sim"])
def test_launcher_passes_the_scheduling_policy_to_the_engine(kind):
    """`--scheduling-policy priority` in extra_args reaches `vllm serve`, vLLM-CPU's API
    server and serve-sim alike (which then schedule by priority), and the spec says so."""
    from engine.launcher import engine_argv
    from engine.servers.sim_server import parse_args

    extra = {"model": "/m"} if kind != "sim" else {"preset": "tiny-cpu"}
    s = BackendSpec(name="p", kind=kind, capabilities=["chat"], device="cpu",
                    extra_args=["--scheduling-policy", "priority"], **extra)
    argv, _ = engine_argv(s, 9000)
    assert argv[-2:] == ["--scheduling-policy", "priority"] and s.priority_scheduling
    if kind == "sim":
        assert parse_args(argv[argv.index("--host"):]).priority_scheduling
        assert not parse_args(argv[argv.index("--host"):-1] + ["fcfs"]).priority_scheduling


def test_prefix_caching_follows_vllms_flag():
    assert make_engine(spec()).prefix_stats()["enabled"]
    off = make_engine(spec(extra_args=["--no-enable-prefix-caching"]))
    assert off.prefix_stats() == {"enabled": False}
    assert sim_flags(["--enable-prefix-caching"])[0] == {"prefix_caching": True}
