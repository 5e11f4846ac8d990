"""Predicted latency from the work ahead on a backend.

Why: routing, ordering and admission must read *predictions* — when would a
request dispatched now get its first token, how fast would it decode — from
the tokens queued and running on each backend and that backend's cost model.
A lagging average of past latencies cannot see a burst that has just been
dispatched, and an unseen backend estimated at 0 ms attracts everything.

The cost model is the simulator preset's (vLLM-like step cost
β0 + β1·prefill + β2·decode + β3·kv_read + α·new; embedding batch a + b·tokens).
A sim backend uses its own preset; a live one the preset it names or a prior
for its kind. Observations then correct each prediction multiplicatively
(observed / predicted, an EWMA), so a live engine's real speed takes over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.spec import BackendSpec

# A live backend that names no preset starts from this prior of its kind; the
# observed/predicted correction then adapts it (clamped, see Correction).
_KIND_PRIORS = {
    ("vllm-cpu", "llm"): "tiny-cpu",
    ("vllm", "llm"): "7b-h100",
    ("openai", "llm"): "7b-h100",
    ("sim", "llm"): "7b-h100",
    ("sentence-transformers", "embedding", "cpu"): "minilm-cpu",
    ("sentence-transformers", "embedding", "gpu"): "minilm-h100",
    ("vllm-cpu", "embedding"): "minilm-cpu",
    ("vllm", "embedding"): "minilm-h100",
    ("openai", "embedding"): "minilm-h100",
    ("sim", "embedding"): "minilm-h100",
}


@dataclass(frozen=True, slots=True)
class LLMModel:
    """The step-cost terms and vLLM limits a prediction needs."""

    beta0: float
    beta1: float
    beta2: float
    beta3: float
    alpha: float
    frontend: float
    max_seqs: int
    max_batched_tokens: int
    kv_capacity: int | None  # tokens; None when unknown (live engine without a preset)
    priority_scheduling: bool  # `--scheduling-policy priority` among its vLLM flags
    # The preset's own step time (prefill, decode, kv_read) where it is not the linear
    # sum above (an overlapped GPU step: the larger of memory- and compute-bound time);
    # None for a linear preset, whose step the predictions compute inline.
    step: Callable[..., float] | None = None


@dataclass(frozen=True, slots=True)
class EmbedModel:
    a: float
    b: float


class Correction:
    """EWMA of observed / predicted, clamped to [1/8, 8]: a live engine's real speed
    replaces the prior's within a few observations, and one outlier cannot make a
    backend look free or dead."""

    __slots__ = ("alpha", "factor")

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.factor = 1.0

    def observe(self, observed: float, predicted: float) -> None:
        if predicted <= 0 or observed < 0:
            return
        r = observed / predicted
        if r > 8.0:  # clamped to [1/8, 8] (compared inline: one per LLM request)
            r = 8.0
        elif r < 0.125:
            r = 0.125
        self.factor += self.alpha * (r - self.factor)


def _preset_for(spec: BackendSpec, group: str):
    from engine.sim.presets import get_preset

    name = spec.preset
    if not name:
        name = (_KIND_PRIORS.get((spec.kind, group, spec.device))
                or _KIND_PRIORS.get((spec.kind, group)) or "")
    try:
        return get_preset(name) if name else None
    except (KeyError, ValueError):
        return None


def llm_model(spec: BackendSpec) -> LLMModel:
    """The backend's LLM cost model: its preset's, with its vLLM flags applied."""
    from engine.sim.cost import LLMPreset
    from engine.sim.factory import sim_flags

    p = _preset_for(spec, "llm")
    if not isinstance(p, LLMPreset):
        from engine.sim.presets import get_preset

        p = get_preset("7b-h100")
    try:
        kw, _ = sim_flags(spec.extra_args)
    except ValueError:
        kw = {}
    c = p.cost
    known_kv = spec.kind == "sim" or bool(spec.preset)
    return LLMModel(c.beta0, c.beta1, c.beta2, c.beta3, c.alpha, c.frontend,
                    kw.get("max_num_seqs", p.max_num_seqs),
                    kw.get("max_num_batched_tokens", p.max_num_batched_tokens),
                    p.kv_capacity_tokens if known_kv else None,
                    kw.get("priority_scheduling", False),
                    c.step_time if getattr(c, "mem_s", 0.0) else None)


def embed_model(spec: BackendSpec) -> EmbedModel:
    from engine.sim.cost import EmbedPreset

    p = _preset_for(spec, "embedding")
    if isinstance(p, EmbedPreset):
        return EmbedModel(p.cost.a, p.cost.b)
    if p is not None and hasattr(p.cost, "beta1"):
        return EmbedModel(p.cost.beta0, p.cost.beta1)  # a pooling LLM engine: one prefill
    return EmbedModel(2e-3, 1e-6)


def llm_tpot(m: LLMModel, n_decoding: int, kv_read: float) -> float:
    """Seconds per output token in a decode batch of `n_decoding` sequences."""
    if m.step is not None:
        return m.step(0, n_decoding, kv_read)
    return m.beta0 + m.beta2 * n_decoding + m.beta3 * kv_read
