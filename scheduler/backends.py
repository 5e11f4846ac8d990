"""The control plane's view of one backend: slots in use and latency estimates.

Why separate from BackendSpec: the spec is configuration (pydantic, slow to
touch); this is the hot mutable state the core and routers read on every
decision, so it is a slotted class with plain attributes.
"""

from __future__ import annotations

from engine.spec import BackendSpec, EngineStats
from scheduler.predict import Correction, EmbedModel, LLMModel, embed_model, llm_model, llm_tpot

GROUPS = ("llm", "embedding")
_UNBOUNDED = float("inf")


def group_of(cls: str) -> str:
    """`embedding` or `llm` (chat and completion share LLM capacity)."""
    return "embedding" if cls == "embedding" else "llm"


_PRIOR, _RATIO, _LINE = range(3)  # how LinearEstimator.predict answers (see its _fit)


class LinearEstimator:
    """Online least squares y = a + b·x with exponential forgetting.

    Embedding batch time is a + b·tokens (the simulator's and the real
    engine's shape), so a batch's service time is predicted from its size.
    Before any observation it answers with the backend's prior (its preset's
    a + b·x), never 0: an unseen backend is not assumed free.

    The fit (means, slope) is worked out once per observation, not per
    prediction: admission, routing and each backlog ask for many predictions
    between two observations.
    """

    __slots__ = ("decay", "s0", "sx", "sy", "sxx", "sxy", "prior", "_mx", "_my", "_b", "_mode")

    def __init__(self, alpha: float, prior: EmbedModel | None = None) -> None:
        self.decay = 1.0 - alpha
        self.s0 = self.sx = self.sy = self.sxx = self.sxy = 0.0
        self.prior = prior
        self._mx = self._my = self._b = 0.0
        self._mode = _PRIOR

    def observe(self, x: float, y: float) -> None:
        d = self.decay
        self.s0 = self.s0 * d + 1.0
        self.sx = self.sx * d + x
        self.sy = self.sy * d + y
        self.sxx = self.sxx * d + x * x
        self.sxy = self.sxy * d + x * y
        self._fit()

    def _fit(self) -> None:
        """The means and slope predict() reads: a line through the means, or, when
        the sizes seen barely vary, y proportional to x (or the mean)."""
        if self.s0 == 0.0:
            self._mode = _PRIOR
            return
        mx, my = self.sx / self.s0, self.sy / self.s0
        self._mx, self._my = mx, my
        var = self.sxx / self.s0 - mx * mx
        if var <= 1e-9 * (1.0 + mx * mx):
            self._mode = _RATIO
            return
        b = (self.sxy / self.s0 - mx * my) / var
        self._b = max(b, 0.0)
        self._mode = _LINE

    def predict(self, x: float) -> float:
        mode = self._mode
        if mode is _LINE:  # the common case once observed; never below 0
            y = self._my + self._b * (x - self._mx)
            return y if y >= 0.0 else 0.0
        if mode is _PRIOR:
            p = self.prior
            return 0.0 if p is None else p.a + p.b * x
        mx = self._mx
        return self._my * (x / mx) if mx > 0 else self._my


class BackendState:
    """Mutable per-backend state owned by the ControlPlane: slots, the LLM work
    dispatched here (for predictions and the KV dispatch limit) and estimates."""

    __slots__ = (
        "spec", "name", "idx", "caps", "groups", "mixed", "dedicated_embedding", "device",
        "price", "max_conc", "up", "in_flight", "outstanding", "in_flight_group",
        "ttft_seen", "emb_est", "stats", "dispatched", "alpha", "pool_classes",
        "cost_rank", "flying", "e2e_est", "e2e_seen", "pool_free",
        "model", "kv_cap", "kv_reserved", "max_seqs", "n_llm", "n_prefilling",
        "prefill_ahead", "kv_read", "ttft_corr", "tpot_corr", "priority_scheduling",
        "room", "_ttft_prompt", "_ttft_model", "_tpot_n", "_tpot_kv", "_tpot_model",
    )

    def __init__(self, spec: BackendSpec, idx: int, alpha: float) -> None:
        self.spec = spec
        self.name = spec.name
        self.idx = idx
        self.caps = frozenset(spec.capabilities)
        self.groups = frozenset(group_of(c) for c in self.caps)
        self.mixed = len(self.groups) == 2
        self.dedicated_embedding = self.groups == {"embedding"}
        self.device = spec.device
        self.price = spec.price_per_hour
        self.max_conc = spec.max_concurrency
        self.alpha = alpha
        self.up = True
        self.in_flight = 0  # dispatches (slots) in use
        self.outstanding = 0  # requests in those dispatches
        self.in_flight_group = {"llm": 0, "embedding": 0}
        self.ttft_seen = False
        self.emb_est = LinearEstimator(alpha, embed_model(spec))
        self.e2e_est = 0.0  # EWMA of dispatch -> done (LLM)
        self.e2e_seen = False
        self.stats: EngineStats | None = None  # the engine's latest report (live runtimes)
        self.dispatched = 0  # total dispatches, for tests and samples
        self.pool_classes: tuple[str, ...] = ()  # classes whose pool holds it (set by the core)
        self.pool_free: tuple[list, ...] = ()  # the core's free lists of those classes
        self.cost_rank = idx  # position in routers.cost_order (set by the core)
        self.flying: dict = {}  # dispatch id -> in-flight embedding batch (for backlog)
        # The LLM work here, kept by the core on dispatch / first token / release.
        m = self.model = llm_model(spec) if "llm" in self.groups else None
        self.kv_cap = m.kv_capacity if m is not None else None
        self.max_seqs = m.max_seqs if m is not None else spec.max_concurrency
        self.kv_reserved = 0  # prompt + output tokens of the LLM requests here
        self.n_llm = 0  # LLM requests here
        self.n_prefilling = 0  # ... of which still without a first token
        self.prefill_ahead = 0  # their prompt tokens
        self.kv_read = 0.0  # KV tokens an attention pass reads (prompt + output/2 each)
        self.ttft_corr = Correction(alpha)
        self.tpot_corr = Correction(alpha)
        # The model's last answers: admission, the router and the dispatch ask one
        # backend the same question within one event, and the decode-time prediction
        # holds across the arrivals until the decode batch here changes. The first-token
        # one is forgotten when the LLM work here changes (llm_dispatched /
        # llm_first_token / llm_released); the decode one is kept with its inputs.
        self._ttft_prompt = -1  # the prompt of the last model_ttft; -1: none
        self._ttft_model = 0.0
        self._tpot_n, self._tpot_kv, self._tpot_model = -1, 0.0, 0.0  # llm_tpot's inputs, answer
        self.room: float = _UNBOUNDED  # the largest KV need fits() accepts now
        # vLLM runs its own priority scheduling here: the policy's rank goes with the
        # request in vLLM's `priority` field.
        self.priority_scheduling = m is not None and m.priority_scheduling

    @property
    def free(self) -> bool:
        return self.up and self.in_flight < self.max_conc

    @property
    def load(self) -> float:
        """Outstanding requests per slot: the least-outstanding routers' measure."""
        return self.outstanding / self.max_conc

    # -- the LLM work here ------------------------------------------------------
    def fits(self, need_tokens: int) -> bool:
        """Whether the engine can run one more request of this KV size at once:
        below vLLM's max_num_seqs and, where the KV capacity is known, with its
        prompt + output reserved. Dispatching more only moves the queue into the
        engine, where its FCFS order (not the policy's) decides. (`room`, kept by
        llm_dispatched / llm_released, is the largest size that fits: the core's
        hot path reads it.)"""
        return need_tokens <= self.room

    # The three changes of the LLM work here forget the kept first-token answer, and
    # dispatch and release keep `room` (what fits() accepts).
    def _keep_room(self) -> None:
        """fits()'s rule as one number: nothing at max_num_seqs; any size on an idle
        engine or without a known KV capacity; else the capacity not reserved."""
        n, cap = self.n_llm, self.kv_cap
        if n >= self.max_seqs:
            self.room = -_UNBOUNDED
        elif cap is None or n == 0:
            self.room = _UNBOUNDED
        else:
            self.room = cap - self.kv_reserved

    def llm_dispatched(self, prompt: int, output: int) -> None:
        self.n_llm += 1
        self.n_prefilling += 1
        self.prefill_ahead += prompt
        self.kv_reserved += prompt + output
        self.kv_read += prompt + output / 2
        self._keep_room()
        self._ttft_prompt = -1

    def llm_first_token(self, prompt: int) -> None:
        self.n_prefilling -= 1
        self.prefill_ahead -= prompt
        self._ttft_prompt = -1

    def llm_released(self, prompt: int, output: int, started: bool) -> None:
        if not started:
            self.n_prefilling -= 1
            self.prefill_ahead -= prompt
        self.n_llm -= 1
        self.kv_reserved -= prompt + output
        self.kv_read -= prompt + output / 2
        self._keep_room()
        self._ttft_prompt = -1

    def model_ttft(self, prompt: int) -> float:
        """The cost model's first-token time for a prompt dispatched here now: the
        chunked prefill of everything ahead and itself, `max_num_batched_tokens -
        decoders` tokens a step, each step also carrying the decode batch. Inline
        arithmetic for a linear preset: admission asks every backend on every arrival.
        The last answer is kept until the work here changes."""
        if prompt == self._ttft_prompt:
            return self._ttft_model
        m: LLMModel = self.model  # type: ignore[assignment]  # set on every LLM backend
        n_pre = self.n_prefilling
        n_dec = self.n_llm - n_pre
        work = self.prefill_ahead + prompt
        budget = m.max_batched_tokens - n_dec
        steps = -(-work // budget) if budget > 1 and work > 0 else max(work, 1)
        if m.step is not None:  # the preset's own (overlapped) step, chunks of equal size
            t = (m.frontend + steps * m.step(work / steps, n_dec, self.kv_read)
                 + m.alpha * (n_pre + 1))
        else:
            t = (m.frontend + steps * (m.beta0 + m.beta2 * n_dec + m.beta3 * self.kv_read)
                 + m.beta1 * work + m.alpha * (n_pre + 1))
        self._ttft_prompt, self._ttft_model = prompt, t
        return t

    def model_tpot(self, extra: int = 1) -> float:
        """The cost model's time per output token once `extra` more sequences decode
        (the last answer is kept with its inputs)."""
        n, kv = self.n_llm + extra, self.kv_read
        if n != self._tpot_n or kv != self._tpot_kv:
            self._tpot_model = llm_tpot(self.model, n, kv)  # type: ignore[arg-type]  # LLM backends only
            self._tpot_n, self._tpot_kv = n, kv
        return self._tpot_model

    def predict_ttft(self, prompt: int) -> float:
        """Seconds to the first token of a prompt dispatched here now: the model's,
        corrected by what was observed here."""
        return self.model_ttft(prompt) * self.ttft_corr.factor

    def predict_tpot(self, extra: int = 1) -> float:
        """Seconds per output token once `extra` more sequences decode here."""
        return self.model_tpot(extra) * self.tpot_corr.factor

    def departure_rate(self, mean_output: float) -> float:
        """LLM requests finishing per second here at the present batch (Little's
        law: requests here / their time here), for the wait of a queued request."""
        n = max(self.n_llm, 1)
        if self.e2e_seen:
            return n / max(self.e2e_est, 1e-6)
        return n / (self.predict_ttft(0) + mean_output * self.predict_tpot(0))

    def observe_e2e(self, seconds: float) -> None:
        if self.e2e_seen:
            self.e2e_est += self.alpha * (seconds - self.e2e_est)
        else:
            self.e2e_est, self.e2e_seen = seconds, True

    def free_at(self, now: float) -> float:
        """When a batch sent here now could start: after the batches in flight."""
        return now + self.backlog(now) if self.flying else now

    def backlog(self, now: float) -> float:
        """Estimated seconds until the embedding batches in flight here are done, if
        the engine runs them one after another (a CPU embedder does). A free slot is
        not an idle engine: with two slots, a new batch queues behind the running one."""
        if not self.flying:
            return 0.0
        end = now
        for d in self.flying.values():  # insertion order is dispatch order
            start = d.t
            end = (end if end >= start else start) + self.estimate(d.group, d.tokens)
        left = end - now
        return left if left > 0.0 else 0.0

    def estimate(self, group: str, tokens: float) -> float:
        """Predicted service time (s) of a dispatch of this group and size here:
        an embedding batch's time, or an LLM request's time to first token.

        When the engine's latest stats show requests waiting inside it (other
        clients of a live engine), a new dispatch queues behind them too.
        """
        if group == "embedding":
            svc = self.emb_est.predict(tokens)
        else:  # predict_ttft, one call fewer (routers ask this of every free backend)
            svc = self.model_ttft(int(tokens)) * self.ttft_corr.factor
        st = self.stats
        if st is not None and st.waiting > 0:
            turnover = self.e2e_est if group != "embedding" and self.e2e_seen else svc
            svc += st.waiting / max(st.running, 1) * turnover
        return svc
