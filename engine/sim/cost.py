"""Cost models of the simulated engines and the roofline that derives them.

LLM step time = β0 + β1·prefill_tokens + β2·decode_tokens + β3·kv_tokens_read
              + α·(requests scheduled for the first time in the step),
or, for a preset with `mem_s` (the part of β0 that streams weights, which the
step's matmuls overlap), β0 − mem_s + max(mem, comp) + u·min(mem, comp)
+ β2·decode + α·new with mem = mem_s + β3·kv and comp = β1·(prefill + decode):
the larger of its memory- and its compute-bound time, plus the share u
(`unhidden`) of the smaller that the overlap does not hide.
Embedding batch time = a + b·tokens_in_batch.
A request's fixed latency outside the engine loop (`frontend`) delays it without
occupying the engine (engine.sim.frontend).

The hardware and model numbers below (datasheets, model configs) and the
derivation are documented with sources in docs/simulator.md. The dataclasses
are frozen but not slotted, so encoders that read `__dict__` (the run's stored
backend parameters) see their fields; `to_dict()` is the explicit form.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

GIB = 1024**3


@dataclass(frozen=True)
class LLMCost:
    """Per-step linear cost model (seconds)."""

    beta0: float  # fixed per step: weight streaming + launch/scheduling
    beta1: float  # per prefill token
    beta2: float  # per decode token
    beta3: float = 0.0  # per KV-cache token read by attention
    alpha: float = 0.0  # per request, once, when first scheduled (tokenize, setup)
    # Per request, outside the engine loop: HTTP hops, the API server's request handling
    # and streaming. It delays the request (added before the engine sees it) but never
    # the engine's steps. 0 for roofline presets; calibration fits it (engine.sim.frontend).
    frontend: float = 0.0
    # Optional spread of that latency, as measured: its quantiles (seconds) at evenly
    # spaced probabilities 0 … 1. Each request then draws its own delay (seeded).
    frontend_quantiles: tuple[float, ...] = ()
    # Optional lateness of a request's last token beyond the step model, as measured:
    # quantiles (seconds, at probabilities 0 … 1) of the profile's decode-time residuals
    # above their upper quartile, the small ones (the streaming path's jitter; calibration
    # makes the large ones engine stalls, below). Each request draws its own and, like
    # the front end, it never lengthens an engine step (engine.sim.frontend).
    completion_quantiles: tuple[float, ...] = ()
    # Optional stalls of the engine itself: each step, with probability `step_stall_rate`
    # per sequence in it, lasts a drawn stall (quantiles, seconds, at probabilities 0 … 1)
    # longer. Unlike the completion lateness, a stall holds every request in the step and
    # every one waiting for the next (engine.sim.llm).
    step_stall_rate: float = 0.0
    step_stall_quantiles: tuple[float, ...] = ()
    # Extra per decode token in a step that starts while another engine on the same machine
    # is busy (engine.sim.host). 0 for an engine alone on its machine; calibration fits it.
    cohost_beta2: float = 0.0
    # A step that starts while another engine on the same GPU is working takes
    # (1 + cohost_slowdown) times as long: kernels of two processes on one GPU (MPS or
    # time-slicing) share its SMs and memory bandwidth. GPU presets: docs/simulator.md.
    cohost_slowdown: float = 0.0
    # The front-end delay of a request submitted while n sequences decode on this engine
    # is (1 + frontend_per_seq·n) times its draw: the streaming path (API server, gateway,
    # client) is busier with every sequence it streams (engine.sim.frontend).
    frontend_per_seq: float = 0.0
    # The memory-bound part of β0 (streaming the weights once per step) that the step's
    # matmuls overlap. With it, a step costs the larger of its memory-bound time
    # (mem_s + β3·kv read) and its compute-bound one (β1 per token, prefill and decode),
    # plus the rest of β0, β2 per decoding sequence and α per new request: a 64-token
    # chunk costs little more than a decode step, as on a GPU, instead of 64·β1 more.
    # 0 keeps the linear model (CPU presets, calibrated ones).
    mem_s: float = 0.0
    # With mem_s: the share of the smaller of the two times that still shows (0: they
    # overlap perfectly; 1: they add up, as in the linear model).
    unhidden: float = 0.0
    # Per token, prefill or decode, in the overlapped model: the memory-bound elementwise
    # work between the matmuls (norms, rotary, activation, residual adds), in kernels of
    # its own, so it adds to the step instead of overlapping. Relative to a token's FLOPs
    # it weighs more in a narrow model (bytes grow with the width, FLOPs with its square).
    beta5: float = 0.0
    # With mem_s: split-KV attention. FlashAttention-3 (vLLM's attention on Hopper) splits
    # each sequence's KV read across several thread blocks, and combines their partial
    # results in a second kernel, when a step's (sequence, KV head) tiles would fill under
    # `attn_split_tiles` (0.8 of the SMs). Split, attention reads KV at β3; with enough
    # tiles to fill the GPU, each streams its KV as the matmuls stream the weights, at
    # `beta3_whole`. Grouped-query models with few KV heads decode split (CodeLlama-34B:
    # 8 heads, under 14 sequences), multi-head ones mostly not (Llama-2-7B: 32 heads, from
    # 4 sequences). A prefill chunk's extra query blocks also stop the split, but they do
    # not stream anyone's KV faster, so only sequences count. 0: β3 always.
    attn_split_tiles: float = 0.0
    attn_kv_heads: int = 0  # KV heads per GPU
    beta3_whole: float = 0.0

    def kv_cost(self, seqs: int) -> float:
        """Seconds per KV token read in a step of `seqs` sequences: β3 while attention
        splits its reads, `beta3_whole` once the sequences' tiles fill the GPU."""
        if self.attn_split_tiles and seqs * self.attn_kv_heads >= self.attn_split_tiles:
            return self.beta3_whole
        return self.beta3

    def step_time(self, prefill: int, decode: int, kv_read: int, new_requests: int = 0,
                  chunks: int = 0) -> float:
        """Duration of one engine step with these token counts (`chunks` prefill chunks
        beside the `decode` sequences)."""
        if self.mem_s:
            mem = self.mem_s + self.kv_cost(decode + chunks) * kv_read
            comp = self.beta1 * (prefill + decode)
            hi, lo = (mem, comp) if mem > comp else (comp, mem)
            return (self.beta0 - self.mem_s + hi + self.unhidden * lo
                    + self.beta5 * (prefill + decode)
                    + self.beta2 * decode + self.alpha * new_requests)
        return (
            self.beta0
            + self.beta1 * prefill
            + self.beta2 * decode
            + self.beta3 * kv_read
            + self.alpha * new_requests
        )


@dataclass(frozen=True)
class Device:
    """One accelerator (datasheet figures, dense BF16)."""

    name: str
    mem_gb: float  # GB (1e9 bytes), as datasheets state HBM size
    hbm_tb_s: float  # TB/s
    bf16_tflops: float  # dense, no sparsity
    price_per_hour: float  # USD per device-hour, illustrative, configurable
    sms: int = 0  # streaming multiprocessors (split-KV attention's threshold); 0: unknown


@dataclass(frozen=True)
class ModelShape:
    """What the roofline needs to know about a decoder-only model."""

    name: str
    params: float  # total parameters
    compute_params: float  # parameters touched by matmuls per token (no input embedding)
    layers: int
    kv_heads: int
    head_dim: int
    dtype_bytes: int = 2
    hidden: int = 0  # model width and MLP width (elementwise traffic per token); 0: unknown
    intermediate: int = 0

    @property
    def act_bytes_per_token(self) -> int:
        """Bytes the elementwise kernels move per token, vLLM's fused ones counted once:
        two fused residual-add + RMSNorm (read and write the residual and the hidden
        state), rotary on q and k in place, SiLU-and-mul (read gate and up, write one)."""
        if not self.hidden:
            return 0
        d, i = self.hidden, self.intermediate
        kv = self.kv_heads * self.head_dim
        return (8 * d + 2 * (d + kv) + 3 * i) * self.layers * self.dtype_bytes

    @property
    def weight_bytes(self) -> float:
        return self.params * self.dtype_bytes

    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes


@dataclass(frozen=True)
class Roofline:
    """Efficiencies and the overheads the roofline alone does not see."""

    mem_eff: float = 0.7  # achieved / peak HBM bandwidth
    compute_eff: float = 0.7  # achieved / peak dense BF16 FLOP/s
    decode_overlap: float = 0.277  # decode GEMM share not hidden under weight streaming (fitted)
    step_overhead_s: float = 0.0005  # CPU scheduling + kernel launches per step
    tp_sync_s_per_layer: float = 0.000012  # two all-reduces per layer when TP > 1
    alpha_s: float = 0.0002  # per new request (input processing)
    # The overlapped step (LLMCost.mem_s): memory- and compute-bound work overlap, each
    # decoding sequence costs `decode_seq_s` beyond its FLOPs (sampling, its attention
    # call), and attention reads the KV cache at `kv_eff` of peak bandwidth.
    overlap: bool = False
    decode_seq_s: float = 0.0
    kv_eff: float | None = None  # None: mem_eff
    unhidden: float = 0.0
    elementwise: bool = False  # charge ModelShape.act_bytes_per_token per token (beta5)
    # Split-KV attention (LLMCost.attn_split_tiles): KV read at kv_eff when FlashAttention
    # splits it (tiles under 0.8 of the device's SMs), at mem_eff when it does not.
    kv_split: bool = False


def derive_llm_cost(model: ModelShape, dev: Device, tp: int, rf: Roofline = Roofline()) -> LLMCost:
    """β from a roofline: bytes ÷ bandwidth, FLOPs ÷ peak, each scaled by an efficiency."""
    bw = dev.hbm_tb_s * 1e12 * rf.mem_eff
    flops = dev.bf16_tflops * 1e12 * rf.compute_eff
    per_token_compute = 2.0 * model.compute_params / tp / flops
    beta0 = model.weight_bytes / tp / bw + rf.step_overhead_s
    if tp > 1:
        beta0 += rf.tp_sync_s_per_layer * model.layers
    if rf.overlap:
        kv_bw = dev.hbm_tb_s * 1e12 * (rf.kv_eff or rf.mem_eff)
        split = rf.kv_split and dev.sms > 0
        return LLMCost(
            beta0=beta0,
            beta1=per_token_compute,
            beta2=rf.decode_seq_s,
            beta3=model.kv_bytes_per_token / tp / kv_bw,
            alpha=rf.alpha_s,
            mem_s=model.weight_bytes / tp / bw,
            unhidden=rf.unhidden,
            beta5=model.act_bytes_per_token / tp / bw if rf.elementwise else 0.0,
            attn_split_tiles=0.8 * dev.sms if split else 0.0,
            attn_kv_heads=max(1, model.kv_heads // tp) if split else 0,
            beta3_whole=model.kv_bytes_per_token / tp / bw if split else 0.0,
        )
    return LLMCost(
        beta0=beta0,
        beta1=per_token_compute,
        beta2=per_token_compute * rf.decode_overlap,
        beta3=model.kv_bytes_per_token / tp / bw,
        alpha=rf.alpha_s,
    )


@dataclass(frozen=True)
class LLMPreset:
    """Everything SimLLMEngine needs: cost, KV capacity and vLLM scheduler limits."""

    name: str
    model: str
    device_kind: str
    device: str  # cpu | gpu
    cost: LLMCost
    kv_capacity_tokens: int  # total KV-cache tokens (multiple of block_size)
    block_size: int = 16
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    tensor_parallel: int = 1
    price_per_hour: float = 0.0  # whole instance (all TP devices)
    source: str = ""

    @property
    def num_blocks(self) -> int:
        return self.kv_capacity_tokens // self.block_size

    def to_dict(self) -> dict:
        d = asdict(self)
        d["type"] = "llm"
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LLMPreset:
        d = {k: v for k, v in d.items() if k != "type"}
        cost = d.pop("cost")
        if not isinstance(cost, dict):
            raise ValueError("cost: must be a table of beta0, beta1, beta2, beta3, alpha")
        cost = {**cost, "frontend_quantiles": tuple(cost.get("frontend_quantiles", ())),
                "completion_quantiles": tuple(cost.get("completion_quantiles", ())),
                "step_stall_quantiles": tuple(cost.get("step_stall_quantiles", ()))}
        return cls(cost=LLMCost(**cost), **d)


def kv_capacity_tokens(
    model: ModelShape, dev: Device, tp: int, gpu_memory_utilization: float = 0.9,
    block_size: int = 16,
) -> int:
    """vLLM's KV budget: memory × utilization − weights, per device, in whole blocks."""
    free = dev.mem_gb * 1e9 * gpu_memory_utilization - model.weight_bytes / tp
    if free <= 0:
        raise ValueError(f"{model.name} does not fit on {tp}x {dev.name}")
    blocks = int(free // (block_size * model.kv_bytes_per_token / tp))
    return blocks * block_size


@dataclass(frozen=True)
class EmbedCost:
    """Batch time = a + b·tokens (seconds)."""

    a: float
    b: float
    # Optional spread of a pass's time around a + b·tokens, as measured: quantiles (at
    # evenly spaced probabilities 0 … 1) of measured / fitted, scaled to mean 1. Each
    # simulated pass draws its own factor (seeded). Without it every pass of a size takes
    # the same time, and a percentile of a workload with a few distinct sizes snaps to one
    # of them: at 5 req/s the simulated embedding p50 sat on the 4-text pass time, 6-9 %
    # under a live p50 that fell between the 4- and 5-text times (docs/fidelity.md).
    spread_quantiles: tuple[float, ...] = ()
    # Optional co-host slowdown: a pass that starts while n sequences decode on an LLM
    # engine of the same machine (engine.sim.host) takes (1 + cohost_per_seq·n) times
    # as long. On this project's 2-core machine MiniLM's own core also carries part of
    # the streaming path (gateway, load generator, vLLM's API server), whose work grows
    # with the sequences streaming: lone passes took ~5 % longer per one (docs/fidelity.md).
    cohost_per_seq: float = 0.0

    def batch_time(self, tokens: int) -> float:
        return self.a + self.b * tokens


@dataclass(frozen=True)
class EmbedPreset:
    """Everything SimEmbeddingEngine needs."""

    name: str
    model: str
    device_kind: str
    device: str
    cost: EmbedCost
    parallelism: int = 1  # batches processed at the same time
    max_batch_texts: int = 256
    price_per_hour: float = 0.0
    source: str = ""
    extra: dict = field(default_factory=dict)
    # Dynamic batching in the server (serve-embed's --max-batch, TEI's, vLLM pooling's):
    # batches waiting behind a running one are merged into the next pass until it
    # holds this many texts. 0 serves submitted batches one by one.
    dynamic_batch_texts: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["type"] = "embedding"
        return d

    @classmethod
    def from_dict(cls, d: dict) -> EmbedPreset:
        d = {k: v for k, v in d.items() if k != "type"}
        cost = d.pop("cost")
        if not isinstance(cost, dict):
            raise ValueError("cost: must be a table of a, b")
        cost = {**cost, "spread_quantiles": tuple(cost.get("spread_quantiles", ()))}
        return cls(cost=EmbedCost(**cost), **d)
