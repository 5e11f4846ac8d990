"""Named simulator presets: built-in ones derived from a roofline, plus user JSON files.

User presets live in a directory (default `~/.config/sagetui/presets`, or
`$SAGETUI_PRESETS_DIR`), one `<name>.json` each; calibration writes there. A
user preset with a built-in's name overrides it, so a calibrated `tiny-cpu`
replaces the rough default.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

from engine.sim.cost import (
    Device,
    EmbedCost,
    EmbedPreset,
    LLMCost,
    LLMPreset,
    ModelShape,
    Roofline,
    derive_llm_cost,
    kv_capacity_tokens,
)

Preset = LLMPreset | EmbedPreset

# Datasheet figures (docs/simulator.md cites them). Prices are illustrative
# on-demand USD per device-hour; override per backend with price_per_hour.
DEVICES = {
    "A100-80GB": Device("A100-80GB", mem_gb=80, hbm_tb_s=2.039, bf16_tflops=312, price_per_hour=1.80,
                        sms=108),
    "H100": Device("H100", mem_gb=80, hbm_tb_s=3.35, bf16_tflops=989, price_per_hour=2.50,
                   sms=132),
    "H200": Device("H200", mem_gb=141, hbm_tb_s=4.8, bf16_tflops=989, price_per_hour=3.50,
                   sms=132),
}

# Llama-2-7B/13B and Llama-3-70B shapes from their HF config.json; Llama-3.1-8B
# is the model of the published fitted coefficients we cross-check against.
MODELS = {
    "7b": ModelShape("llama-2-7b", 6.74e9, 6.61e9, layers=32, kv_heads=32, head_dim=128,
                     hidden=4096, intermediate=11008),
    "13b": ModelShape("llama-2-13b", 13.02e9, 12.85e9, layers=40, kv_heads=40, head_dim=128,
                      hidden=5120, intermediate=13824),
    "70b": ModelShape("llama-3-70b", 70.55e9, 70.0e9, layers=80, kv_heads=8, head_dim=128,
                      hidden=8192, intermediate=28672),
    "8b": ModelShape("llama-3.1-8b", 8.03e9, 7.50e9, layers=32, kv_heads=8, head_dim=128,
                     hidden=4096, intermediate=14336),
}

_GPU_GRID = [("7b", 1), ("13b", 1), ("70b", 4), ("8b", 1)]

# CodeLlama-34B (its HF config.json): 48 layers, 8 KV heads of 128, width 8192, MLP 22016.
CODELLAMA_34B = ModelShape("codellama-34b", 33.74e9, 33.48e9, layers=48, kv_heads=8,
                           head_dim=128, hidden=8192, intermediate=22016)

# The H100 measured: the overlapped roofline (engine.sim.cost) with efficiencies fitted
# (engine.sim.tracefit) on the CodeLlama-34B sweep trace of vLLM 0.11.0 on one H100
# (tests/data/gpu_traces/codellama34b-h100-sweep.jsonl; benches/bench_gpu_traces.py
# fit). Its two other CodeLlama-34B traces and the Llama-2-7B one were held out;
# docs/fidelity.md has the errors. The per-step overhead is tiny-cpu's β0 (a fit
# with one model cannot split it from the weight streaming; engine.sim.tracefit).
H100_FIT = Roofline(overlap=True, elementwise=True, kv_split=True, mem_eff=0.821353, compute_eff=0.700488,
                    kv_eff=0.702207, step_overhead_s=1.14e-3, alpha_s=1.22e-4,
                    decode_seq_s=4e-6, unhidden=0.28155)
H100_FIT_SOURCE = ("H100 efficiencies fitted on the CodeLlama-34B vLLM 0.11.0 sweep trace "
                   "(tests/data/gpu_traces)")
# What each GPU preset rests on (docs/fidelity.md has the measured errors).
_SOURCES = {
    "7b-h100": H100_FIT_SOURCE + "; held out: the Llama-2-7B vLLM 0.11.0 H100 trace, "
               "E2E MAPE 2.0 %, TTFT MAPE 8.2 %, burst E2E +1.9 %",
    "H100": H100_FIT_SOURCE + "; no trace of this model",
    "other": "roofline (datasheet, 0.7 of peak; docs/simulator.md), not measured on this "
             "device: on H100 it was off by +3.4 % E2E and -7.0 % TTFT on the Llama-2-7B "
             "vLLM 0.11.0 trace, 13-19 % slow per decode step on CodeLlama-34B",
}

# An LLM step that starts while another process works on the same GPU takes this
# much longer. Published: two vLLM processes sharing an A100 through MPS decoded
# with a 19.5 % higher TPOT than on dedicated GPUs (Pebble, "NVIDIA MPS vs dedicated
# GPU allocation for LLM inference", Qwen3-4B-FP8); an embedding model beside the
# LLM is lighter, so this is an upper-middle default. Suites sweep 0 / 0.1 / 0.4.
GPU_COHOST_SLOWDOWN = 0.195
_DEV_SLUG = {"A100-80GB": "a100", "H100": "h100", "H200": "h200"}


def _builtin_llm() -> dict[str, LLMPreset]:
    out: dict[str, LLMPreset] = {}
    for dev_name, dev in DEVICES.items():
        for key, tp in _GPU_GRID:
            m = MODELS[key]
            name = f"{key}-{_DEV_SLUG[dev_name]}" + (f"-tp{tp}" if tp > 1 else "")
            fitted = dev_name == "H100"
            cost = derive_llm_cost(m, dev, tp, H100_FIT) if fitted else derive_llm_cost(m, dev, tp)
            out[name] = LLMPreset(
                name=name,
                model=m.name,
                device_kind=dev_name,
                device="gpu",
                cost=replace(cost, cohost_slowdown=GPU_COHOST_SLOWDOWN),
                kv_capacity_tokens=kv_capacity_tokens(m, dev, tp),
                tensor_parallel=tp,
                price_per_hour=dev.price_per_hour * tp,
                source=_SOURCES.get(name, _SOURCES["H100" if fitted else "other"]),
            )
    # KV cache: what vLLM 0.11.0 logged for it on one H100 (gpu_memory_utilization 0.9,
    # max_num_batched_tokens 4096); the weights-only formula leaves 23,000 tokens, vLLM
    # 80 GiB of HBM (datasheets count GB) minus its activation peak.
    h100 = DEVICES["H100"]
    out["codellama-34b-h100"] = LLMPreset(
        name="codellama-34b-h100", model=CODELLAMA_34B.name, device_kind="H100", device="gpu",
        cost=replace(derive_llm_cost(CODELLAMA_34B, h100, 1, H100_FIT),
                     cohost_slowdown=GPU_COHOST_SLOWDOWN),
        kv_capacity_tokens=40592, price_per_hour=h100.price_per_hour,
        source="fit: " + H100_FIT_SOURCE + "; held out: its two prefix-1024 traces, TTFT and "
               "E2E mean errors within 5 % (docs/fidelity.md)",
    )
    # The local tiny random Llama on vLLM-CPU (2 cores). Coefficients fitted so
    # the simulator reproduces vLLM's serving benchmark on it (docs/setup.md: 64 in /
    # 32 out: TTFT p50 8.4 ms and TPOT p50 1.4 ms at 20 req/s; 129 req/s for
    # 500 at once): benches/bench_sim_engine.py tiny-fit. Three figures, four
    # unknowns: the beta1/alpha split is not pinned down. Recalibrate with
    # engine.sim.calibrate from a live run.
    out["tiny-cpu"] = LLMPreset(
        name="tiny-cpu",
        model="tiny-llama",
        device_kind="x86-64",
        device="cpu",
        cost=LLMCost(beta0=1.14e-3, beta1=90.5e-6, beta2=21.0e-6, beta3=0.0, alpha=1.16e-3),
        # VLLM_CPU_KVCACHE_SPACE=1 GiB / 4096 B per token (4 layers x 4 heads x 64 x 2 x bf16)
        kv_capacity_tokens=262144,
        max_num_seqs=256,
        max_num_batched_tokens=4096,
        price_per_hour=0.10,
        source="fitted to vLLM's serving benchmark on the tiny Llama (bench tiny-fit); recalibrate",
    )
    return out


def _builtin_embed() -> dict[str, EmbedPreset]:
    return {
        # Measured on the 2-core x86-64 development machine with the packaged
        # all-MiniLM-L6-v2 (benches/bench_sim_engine.py minilm --cpu-time): one core
        # costs a = 10.88 ms + b = 156.6 us/token (R² 0.96, MAPE 5.9 %); two torch
        # threads run a batch 1.85x faster (1.6-2.1x measured), hence a/1.85, b/1.85
        # for the in-process engine that serves one batch at a time on both cores.
        # dynamic_batch_texts = 32 in all three: serve-embed's batcher (--max-batch 32)
        # merges what queued during a pass into the next one (engine/st_engine.py).
        "minilm-cpu": EmbedPreset(
            name="minilm-cpu", model="all-MiniLM-L6-v2", device_kind="x86-64", device="cpu",
            cost=EmbedCost(a=5.88e-3, b=84.7e-6), parallelism=1, max_batch_texts=256,
            dynamic_batch_texts=32, price_per_hour=0.10,
            source="measured on 2-core x86-64; docs/simulator.md",
        ),
        # Roofline: 2 x 22.7M FLOPs/token at 30% of H100 BF16 peak -> 0.15 us/token;
        # a = launch + tokenization + Python per batch, assumed 2 ms.
        "minilm-h100": EmbedPreset(
            name="minilm-h100", model="all-MiniLM-L6-v2", device_kind="H100", device="gpu",
            cost=EmbedCost(a=2.0e-3, b=0.15e-6), parallelism=1, max_batch_texts=1024,
            dynamic_batch_texts=32, price_per_hour=DEVICES["H100"].price_per_hour,
            source="roofline, eff 0.3",
        ),
        # Roofline: 2 x 335M FLOPs/token at 50% of A100 BF16 peak -> 4.3 us/token; a = 5 ms.
        "bge-large-a100": EmbedPreset(
            name="bge-large-a100", model="BAAI/bge-large-en-v1.5", device_kind="A100-80GB",
            device="gpu", cost=EmbedCost(a=5.0e-3, b=4.3e-6), parallelism=1,
            max_batch_texts=512, dynamic_batch_texts=32,
            price_per_hour=DEVICES["A100-80GB"].price_per_hour,
            source="roofline, eff 0.5",
        ),
    }


_BUILTIN_LLM = _builtin_llm()
_BUILTIN_EMBED = _builtin_embed()


def presets_dir() -> Path:
    """Where user presets are read from and saved to."""
    env = os.environ.get("SAGETUI_PRESETS_DIR")
    return Path(env) if env else Path.home() / ".config" / "sagetui" / "presets"


def _load_file(path: Path) -> Preset:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read preset: {e}") from e
    kind = data.get("type") if isinstance(data, dict) else None
    try:
        if kind == "llm":
            return LLMPreset.from_dict(data)
        if kind == "embedding":
            return EmbedPreset.from_dict(data)
    except KeyError as e:
        raise ValueError(f"{path}: invalid preset: missing field {e}") from e
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: invalid preset: {e}") from e
    raise ValueError(f"{path}: field 'type' must be 'llm' or 'embedding', got {kind!r}")


def _user_presets(directory: Path | None = None, strict: bool = True) -> dict[str, Preset]:
    d = directory or presets_dir()
    if not d.is_dir():
        return {}
    out = {}
    for p in sorted(d.glob("*.json")):
        try:
            out[p.stem] = _load_file(p)
        except ValueError:
            if strict:
                raise
    return out


def list_presets(kind: str | None = None, directory: Path | None = None, *,
                 strict: bool = True) -> dict[str, Preset]:
    """All presets by name (user ones override built-ins); kind = 'llm' | 'embedding' | None.
    A broken user file raises, naming it; with strict=False it is left out (for listing
    the allowed names in another error)."""
    if kind not in (None, "llm", "embedding"):
        raise ValueError(f"kind: {kind!r} is not one of llm, embedding")
    merged: dict[str, Preset] = {**_BUILTIN_LLM, **_BUILTIN_EMBED,
                                 **_user_presets(directory, strict)}
    if kind == "llm":
        return {k: v for k, v in merged.items() if isinstance(v, LLMPreset)}
    if kind == "embedding":
        return {k: v for k, v in merged.items() if isinstance(v, EmbedPreset)}
    return merged


def preset_names(kind: str | None = None) -> list[str]:
    """Names of the readable presets of `kind` (broken user files left out)."""
    return sorted(list_presets(kind, strict=False))


def get_preset(name: str, directory: Path | None = None) -> Preset:
    """A preset by name (a user file of that name overrides a built-in); unknown names
    list the allowed ones.

    Only the named file is read: a broken file of another preset (hand-edited, or saved
    by a newer sagetui) must not stop every simulation that does not use it.
    """
    d = directory or presets_dir()
    path = d / f"{name}.json"
    if path.is_file():
        return _load_file(path)
    builtin: dict[str, Preset] = {**_BUILTIN_LLM, **_BUILTIN_EMBED}
    if name in builtin:
        return builtin[name]
    user = {p.stem for p in d.glob("*.json")} if d.is_dir() else set()
    raise KeyError(f"preset: {name!r} unknown; allowed: {', '.join(sorted({*builtin, *user}))}")


def get_llm_preset(name: str, directory: Path | None = None) -> LLMPreset:
    p = get_preset(name, directory)
    if not isinstance(p, LLMPreset):
        raise KeyError(f"preset: {name!r} is an embedding preset, not an LLM one")
    return p


def get_embed_preset(name: str, directory: Path | None = None) -> EmbedPreset:
    p = get_preset(name, directory)
    if not isinstance(p, EmbedPreset):
        raise KeyError(f"preset: {name!r} is an LLM preset, not an embedding one")
    return p


def save_preset(preset: Preset, directory: Path | None = None) -> Path:
    """Write a preset as `<name>.json` in the user presets directory."""
    if not preset.name or "/" in preset.name or preset.name.startswith("."):
        raise ValueError(f"name: {preset.name!r} is not a valid preset file name")
    d = directory or presets_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{preset.name}.json"
    path.write_text(json.dumps(preset.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def _beta3_cell(c: LLMCost) -> str:
    """β3 in ns; with split-KV attention, split / unsplit and the decode batch from which
    attention runs unsplit."""
    if not c.attn_split_tiles:
        return f"{c.beta3 * 1e9:.1f}"
    seqs = math.ceil(c.attn_split_tiles / c.attn_kv_heads)
    return f"{c.beta3 * 1e9:.1f} / {c.beta3_whole * 1e9:.1f} (≥ {seqs} seqs)"


def llm_preset_table() -> str:
    """The built-in LLM presets as the Markdown table in docs/simulator.md (the last
    three columns only for the overlapped step: mem_s, the unhidden share u, β5; β3 split
    and unsplit where attention splits KV reads)."""
    lines = [
        "| preset | device × TP | β0 ms | β1 µs | β2 µs | β3 ns | α ms | mem_s ms | u | β5 µs "
        "| KV tokens | $/h |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in _BUILTIN_LLM.values():
        if p.device != "gpu":
            continue
        c = p.cost
        over = (f"{c.mem_s * 1e3:.2f} | {c.unhidden:.2f} | {c.beta5 * 1e6:.2f}" if c.mem_s
                else "— | — | —")
        lines.append(
            f"| `{p.name}` | {p.device_kind}×{p.tensor_parallel} | {c.beta0 * 1e3:.2f} | "
            f"{c.beta1 * 1e6:.2f} | {c.beta2 * 1e6:.2f} | {_beta3_cell(c)} | "
            f"{c.alpha * 1e3:.2f} | {over} | {p.kv_capacity_tokens:,} | {p.price_per_hour:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(llm_preset_table())
