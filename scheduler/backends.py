"""The control plane's view of one backend: slots in use and latency estimates.

Why separate from BackendSpec: the spec is configuration (pydantic, slow to
touch); this is the hot mutable state the core and routers read on every
decision, so it is a slotted class with plain attributes.
"""

from __future__ import annotations

from engine.spec import BackendSpec, EngineStats

GROUPS = ("llm", "embedding")


def group_of(cls: str) -> str:
    """`embedding` or `llm` (chat and completion share LLM capacity)."""
    return "embedding" if cls == "embedding" else "llm"


class LinearEstimator:
    """Online least squares y = a + b·x with exponential forgetting.

    Embedding batch time is a + b·tokens (the simulator's and the real
    engine's shape), so a batch's service time is predicted from its size.
    """

    __slots__ = ("decay", "s0", "sx", "sy", "sxx", "sxy")

    def __init__(self, alpha: float) -> None:
        self.decay = 1.0 - alpha
        self.s0 = self.sx = self.sy = self.sxx = self.sxy = 0.0

    def observe(self, x: float, y: float) -> None:
        d = self.decay
        self.s0 = self.s0 * d + 1.0
        self.sx = self.sx * d + x
        self.sy = self.sy * d + y
        self.sxx = self.sxx * d + x * x
        self.sxy = self.sxy * d + x * y

    def predict(self, x: float) -> float:
        """0.0 before any observation: optimistic, so an unseen backend gets tried."""
        if self.s0 == 0.0:
            return 0.0
        mx, my = self.sx / self.s0, self.sy / self.s0
        var = self.sxx / self.s0 - mx * mx
        if var <= 1e-9 * (1.0 + mx * mx):
            return my * (x / mx) if mx > 0 else my
        b = (self.sxy / self.s0 - mx * my) / var
        b = max(b, 0.0)
        return max(my + b * (x - mx), 0.0)


class BackendState:
    """Mutable per-backend state owned by the ControlPlane."""

    __slots__ = (
        "spec", "name", "idx", "caps", "groups", "mixed", "dedicated_embedding", "device",
        "price", "max_conc", "up", "in_flight", "outstanding", "in_flight_group",
        "ttft_est", "ttft_seen", "emb_est", "stats", "dispatched", "alpha", "pool_classes", "cost_rank", "flying",
        "e2e_est", "e2e_seen", "pool_free",
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
        self.ttft_est = 0.0  # EWMA of dispatch -> first token (LLM)
        self.ttft_seen = False
        self.emb_est = LinearEstimator(alpha)
        self.e2e_est = 0.0  # EWMA of dispatch -> done (LLM), learnt while stats arrive
        self.e2e_seen = False
        self.stats: EngineStats | None = None  # the engine's latest report (live runtimes)
        self.dispatched = 0  # total dispatches, for tests and samples
        self.pool_classes: tuple[str, ...] = ()  # classes whose pool holds it (set by the core)
        self.pool_free: tuple[list, ...] = ()  # the core's free lists of those classes
        self.cost_rank = idx  # position in routers.cost_order (set by the core)
        self.flying: dict = {}  # dispatch id -> in-flight embedding batch (for backlog)

    @property
    def free(self) -> bool:
        return self.up and self.in_flight < self.max_conc

    @property
    def load(self) -> float:
        """Outstanding requests per slot: the least-outstanding routers' measure."""
        return self.outstanding / self.max_conc

    def observe_ttft(self, seconds: float) -> None:
        if self.ttft_seen:
            self.ttft_est += self.alpha * (seconds - self.ttft_est)
        else:
            self.ttft_est, self.ttft_seen = seconds, True

    def observe_e2e(self, seconds: float) -> None:
        if self.e2e_seen:
            self.e2e_est += self.alpha * (seconds - self.e2e_est)
        else:
            self.e2e_est, self.e2e_seen = seconds, True

    def backlog(self, now: float) -> float:
        """Estimated seconds until the embedding batches in flight here are done, if
        the engine runs them one after another (a CPU embedder does). A free slot is
        not an idle engine: with two slots, a new batch queues behind the running one."""
        if not self.flying:
            return 0.0
        end = now
        for d in self.flying.values():  # insertion order is dispatch order
            end = max(end, d.t) + self.estimate(d.group, d.tokens)
        return max(0.0, end - now)

    def estimate(self, group: str, tokens: float) -> float:
        """Predicted service time (s) of a dispatch of this group and size here.

        When the engine's latest stats show requests waiting inside it (other
        clients, or more dispatched than it runs at once), a new dispatch queues
        behind them: `waiting / running` turnovers of the running batch, each about
        one request's time there (LLM: dispatch -> done; embeddings: a batch).
        """
        if group == "embedding":
            svc = self.emb_est.predict(tokens)
            turnover = svc
        else:
            svc = turnover = self.ttft_est
            if self.e2e_seen:
                turnover = self.e2e_est
        st = self.stats
        if st is not None and st.waiting > 0:
            svc += st.waiting / max(st.running, 1) * turnover
        return svc
