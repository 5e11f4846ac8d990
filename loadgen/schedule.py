"""Spec → the requests to send and when: deterministic and clock-free.

Why clock-free: the live runner and the simulator replay the very same list
(or the same closed-loop `Source`), so a policy sees the same workload in both.
Each concern draws from its own named random stream, derived from the seed,
so changing the mix does not move the arrival times and vice versa.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterable

import numpy as np

from vocab import Request

from . import arrivals
from .jobs import assign_kinds
from .sizes import sample, sample_priorities
from .spec import CLASSES, Adversarial, Prefix, Trace, WorkloadSpec, read_trace


def stream(seed: int, name: str) -> np.random.Generator:
    """An independent generator per (seed, concern name)."""
    return np.random.default_rng([seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, zlib.crc32(name.encode())])


def _draw_classes(spec: WorkloadSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    w = np.array([spec.mix[c] for c in CLASSES], dtype=float)
    return np.array(CLASSES, dtype=object)[rng.choice(len(CLASSES), size=n, p=w / w.sum())]


def _draw_tiers(spec: WorkloadSpec, rng: np.random.Generator, classes: np.ndarray) -> np.ndarray:
    """A tier name per request, by its class's shares ("" where the class has none).

    Why its own stream, drawn from only for classes with tiers: adding tiers
    must not move any other draw, and a workload without tiers must give
    exactly the schedule it gave before tiers existed.
    """
    tiers = np.full(len(classes), "", dtype=object)
    for c in CLASSES:
        choices = spec.slos[c].tiers
        idx = np.flatnonzero(classes == c) if choices else np.empty(0, np.int64)
        if idx.size == 0:
            continue
        p = np.array([t.share for t in choices], dtype=float)
        names = np.array([t.name for t in choices], dtype=object)
        tiers[idx] = names[rng.choice(len(choices), size=idx.size, p=p / p.sum())]
    return tiers


def _requests(
    spec: WorkloadSpec,
    rng: np.random.Generator,
    tier_rng: np.random.Generator,
    times: np.ndarray,
    classes: np.ndarray,
    ids: list[str],
    clients: list[str],
    *,
    prompt_override: np.ndarray | None = None,
    prio_override: np.ndarray | None = None,
    fixed: list[dict] | None = None,
) -> list[Request]:
    """Fill sizes, priority, SLO tier and bounds, and model for given times and classes.

    One function on purpose (it runs past a screen): the draws must happen in
    this exact order on these streams, or every recorded schedule moves; split
    into helpers, that order would be spread over several places.

    Overrides (value ≥ 0 wins) serve the adversarial patterns; `fixed` holds
    per-request sizes given by a trace.
    """
    n = len(times)
    prompt = np.zeros(n, np.int64)
    output = np.zeros(n, np.int64)
    n_texts = np.zeros(n, np.int64)
    text_tok = np.zeros(n, np.int64)
    prio = np.zeros(n, np.int64)
    for c in CLASSES:
        idx = np.flatnonzero(classes == c)
        if idx.size == 0:
            continue
        sz = spec.sizes[c]
        k = idx.size
        if c == "embedding":
            n_texts[idx] = sample(sz.n_texts, rng, k)
            text_tok[idx] = sample(sz.text_tokens, rng, k)
        else:
            prompt[idx] = sample(sz.prompt_tokens, rng, k)
            output[idx] = sample(sz.output_tokens, rng, k)
        prio[idx] = sample_priorities(spec.priorities[c], rng, k)
    if fixed is not None:
        for i, row in enumerate(fixed):
            for name, arr in (("prompt_tokens", prompt), ("output_tokens", output),
                              ("n_texts", n_texts), ("text_tokens", text_tok), ("priority", prio)):
                if row.get(name) is not None:
                    arr[i] = row[name]
    if prompt_override is not None:
        prompt = np.where(prompt_override >= 0, prompt_override, prompt)
    if prio_override is not None:
        prio = np.where(prio_override >= 0, prio_override, prio)
    tiers = _draw_tiers(spec, tier_rng, classes)
    out = []
    for i in range(n):
        c = str(classes[i])
        ttft_ms, tpot_ms, e2e_ms = spec.slos[c].bounds(tiers[i])
        if c == "embedding":
            p = tt = int(n_texts[i] * text_tok[i])  # all the request's texts together
            nt, o = int(n_texts[i]), 0
            model = spec.embedding_model
        else:
            p, o = int(prompt[i]), int(output[i])
            nt, tt = (1, p) if c == "pipeline" else (0, 0)
            model = spec.model
        out.append(Request(
            id=ids[i], t_intended=float(times[i]), cls=c, client_id=clients[i], priority=int(prio[i]),
            prompt_tokens=p, output_tokens=o, n_texts=nt, text_tokens=tt,
            slo_ttft_ms=None if c == "embedding" else ttft_ms, slo_e2e_ms=e2e_ms,
            model=model, slo_tpot_ms=None if c == "embedding" else tpot_ms,
            slo_tier=str(tiers[i]),
        ))
    return out


class _Prefixes:
    """Shared prefixes and conversation histories, put on requests in the order sent.

    Why its own stream (`prefixes`): declaring prefixes must not move any other draw,
    and a workload without them gets exactly the schedule it got before they existed.
    """

    def __init__(self, spec: WorkloadSpec, rng: np.random.Generator):
        self.spec = spec
        self.rng = rng
        self.lengths: dict[str, np.ndarray] = {}
        self.history: dict[tuple[str, int], list[int]] = {}  # (class, conversation) -> [tokens, gen]
        for c, p in spec.prefixes.items():
            if p.kind == "shared":
                self.lengths[c] = sample(p.tokens, rng, p.groups)

    def apply(self, r: Request, group: int | None = None) -> Request:
        """r with its prefix (and its prompt grown by it); `group` fixes the conversation."""
        p: Prefix | None = self.spec.prefixes.get(r.cls)
        if p is None or (p.share < 1 and self.rng.random() >= p.share):
            return r
        g = int(self.rng.integers(p.groups)) if group is None else group % p.groups
        if p.kind == "shared":
            n = int(self.lengths[r.cls][g])
            return dataclasses.replace(r, prompt_tokens=n + r.prompt_tokens,
                                       prefix_id=f"{r.cls}/shared/{g}", prefix_tokens=n)
        h = self.history.setdefault((r.cls, g), [0, 0])
        if h[0] + r.prompt_tokens + r.output_tokens > p.max_history:
            h[0], h[1] = 0, h[1] + 1  # a new conversation in this slot
        out = dataclasses.replace(r, prompt_tokens=h[0] + r.prompt_tokens,
                                  prefix_id=f"{r.cls}/conversation/{g}.{h[1]}",
                                  prefix_tokens=h[0], prefix_extend=True)
        h[0] = out.prompt_tokens + r.output_tokens
        return out


def _llm_class(spec: WorkloadSpec) -> str:
    return "completion" if spec.mix["chat"] == 0 and spec.mix["completion"] > 0 else "chat"


def _adversarial(spec: WorkloadSpec, a: Adversarial):
    """Times, forced classes, prompt and priority overrides for an attack."""
    end = spec.end_s
    base = arrivals.poisson(stream(spec.seed, "arrivals"), spec.rate, end)
    classes = _draw_classes(spec, stream(spec.seed, "classes"), base.size)
    arng = stream(spec.seed, "attack")
    extra_t: list[np.ndarray] = []
    extra_prompt: list[np.ndarray] = []
    extra_prio: list[np.ndarray] = []
    llm = _llm_class(spec)

    def window(rate: float, t0: float, t1: float) -> np.ndarray:
        t1 = min(t1, end)
        return t0 + arrivals.poisson(arng, rate, t1 - t0) if t1 > t0 else np.empty(0)

    if a.attack == "spike":
        spikes = np.arange(a.start_s if a.start_s > 0 else a.period_s, end, a.period_s)
        t = np.repeat(spikes, a.burst)
        extra_t.append(t)
        extra_prompt.append(np.full(t.size, -1))
        extra_prio.append(np.full(t.size, -1))
    elif a.attack == "long_prompt_flood":
        t = window(spec.rate * a.factor, a.start_s, a.start_s + a.length_s)
        extra_t.append(t)
        extra_prompt.append(np.full(t.size, a.long_prompt_tokens))
        extra_prio.append(np.full(t.size, -1))
    else:  # priority_inversion
        flood = window(spec.rate * a.factor, a.start_s, a.start_s + a.length_s)
        trickle = window(a.trickle_rps, a.start_s + a.length_s, end)
        extra_t += [flood, trickle]
        extra_prompt += [np.full(flood.size, -1), np.full(trickle.size, -1)]
        extra_prio += [np.full(flood.size, 4), np.full(trickle.size, 0)]
    et = np.concatenate(extra_t)
    times = np.concatenate([base, et])
    classes = np.concatenate([classes, np.full(et.size, llm, dtype=object)])
    prompt = np.concatenate([np.full(base.size, -1), *extra_prompt])
    prio = np.concatenate([np.full(base.size, -1), *extra_prio])
    return times, classes, prompt, prio


def build_schedule(spec: WorkloadSpec, seed: int | None = None) -> list[Request]:
    """The open-loop schedule, sorted by intended time; ids r0000000.. in that order.

    `seed` overrides spec.seed (repetitions of one config). Closed-loop specs
    use `Source` instead.
    """
    if spec.clients is not None:
        raise ValueError("clients: a closed-loop workload has no fixed schedule; use Source")
    if seed is not None and seed != spec.seed:
        spec = spec.model_copy(update={"seed": seed})
    a = spec.arrival
    prompt_o = prio_o = None
    fixed = None
    client_col = None
    if isinstance(a, Trace):
        rows = read_trace(a.path)
        t0 = min(r.t for r in rows)
        times = np.array([(r.t - t0) * a.time_scale for r in rows])
        classes = np.array([r.cls for r in rows], dtype=object)
        fixed = [r.model_dump() for r in rows]
        client_col = [r.client_id for r in rows]
    elif isinstance(a, Adversarial):
        times, classes, prompt_o, prio_o = _adversarial(spec, a)
    else:
        times = arrivals.times_for(a, stream(spec.seed, "arrivals"), spec.rate, spec.end_s)
        classes = _draw_classes(spec, stream(spec.seed, "classes"), times.size)
    order = np.argsort(times, kind="stable")
    keep = order[times[order] < spec.end_s]
    times, classes = times[keep], classes[keep]
    if prompt_o is not None and prio_o is not None:  # adversarial: both or neither
        prompt_o, prio_o = prompt_o[keep], prio_o[keep]
    if fixed is not None and client_col is not None:  # a trace: both or neither
        fixed = [fixed[i] for i in keep]
        client_col = [client_col[i] for i in keep]
    n = times.size
    ids = [f"r{i:07d}" for i in range(n)]
    clients = [f"c{i % spec.client_ids:03d}" for i in range(n)]
    if client_col is not None:
        clients = [c if c is not None else d for c, d in zip(client_col, clients, strict=True)]
    out = _requests(spec, stream(spec.seed, "sizes"), stream(spec.seed, "tiers"), times, classes,
                    ids, clients,
                    prompt_override=prompt_o, prio_override=prio_o, fixed=fixed)
    if spec.prefixes:
        pre = _Prefixes(spec, stream(spec.seed, "prefixes"))
        out = [pre.apply(r) for r in out]
    _pipeline_kinds(spec, out, "pipelines")
    return out


def _pipeline_kinds(spec: WorkloadSpec, reqs: list[Request], name: str) -> None:
    """Pipeline arrivals draw their kind and deadline tier from a stream of their own
    (`name`), so declaring pipelines moves no other draw."""
    jobs = [r for r in reqs if r.cls == "pipeline"]
    if jobs:
        assign_kinds(spec.pipeline_kinds(), jobs, stream(spec.seed, name), bool(spec.pipelines))


class Source:
    """Requests as the run unfolds, for either clock.

    Open loop: initial() is the whole schedule, on_done() adds nothing.
    Closed loop: each of N clients starts at t = 0; when a request of client c
    finishes at t, its next request is intended at t + think_time_s if that is
    before the end. Each client draws from its own stream (and its SLO tiers
    from one more, `tiers/client/<i>`), so its k-th request is the same
    whatever order completions come in.
    """

    def __init__(self, spec: WorkloadSpec, seed: int | None = None):
        if seed is not None and seed != spec.seed:
            spec = spec.model_copy(update={"seed": seed})
        self.spec = spec
        self.closed = spec.clients is not None
        self._think_s = 0.0  # closed loop: a client's pause between its requests
        if spec.clients is not None:
            self._think_s = spec.clients.think_time_s
            n = spec.clients.n
            self._names = [f"c{i:03d}" for i in range(n)]
            self._index = {name: i for i, name in enumerate(self._names)}
            self._rngs = [stream(spec.seed, f"client/{i}") for i in range(n)]
            self._tier_rngs = [stream(spec.seed, f"tiers/client/{i}") for i in range(n)]
            self._count = [0] * n
            # each client holds its own conversation (its slot), drawn from its own stream
            self._prefixes = [_Prefixes(spec, stream(spec.seed, f"prefixes/client/{i}"))
                              for i in range(n)] if spec.prefixes else None

    def _next(self, i: int, t: float) -> Request:
        rng = self._rngs[i]
        cls = _draw_classes(self.spec, rng, 1)
        k = self._count[i]
        self._count[i] += 1
        rid = f"{self._names[i]}-{k:06d}"
        r = _requests(self.spec, rng, self._tier_rngs[i], np.array([t]), cls, [rid],
                      [self._names[i]])[0]
        if self._prefixes is not None:
            r = self._prefixes[i].apply(r, group=i)
        _pipeline_kinds(self.spec, [r], f"pipelines/client/{i}/{k}")
        return r

    def initial(self) -> list[Request]:
        if not self.closed:
            return build_schedule(self.spec)
        return [self._next(i, 0.0) for i in range(len(self._names))]

    def on_done(self, rec, t: float) -> list[Request]:
        """`rec` is the request that finished (its `client_id` is what is read)."""
        if not self.closed:
            return []
        i = self._index.get(rec.client_id)
        if i is None:
            raise ValueError(f"client_id {rec.client_id!r} is not a client of this source")
        nt = t + self._think_s
        if nt >= self.spec.end_s:
            return []
        return [self._next(i, nt)]


def intended_requests(spec: WorkloadSpec, ids: Iterable[str]) -> dict[str, Request]:
    """The workload's requests with these ids, as the generator drew them.

    Why: a live record carries the server's token counts (its tokenizer, plus
    any chat template), while the simulator is fed the workload's intended
    sizes; calibration must fit in the units the simulator will see. Open loop:
    the schedule. Closed loop: each client's k-th request is the same whatever
    order completions came in, so it is redrawn from that client's stream.
    Unknown ids are left out.
    """
    wanted = set(ids)
    if spec.clients is None:
        return {r.id: r for r in build_schedule(spec) if r.id in wanted}
    src = Source(spec)
    last: dict[int, int] = {}
    for rid in wanted:
        name, _, k = rid.partition("-")
        if name in src._index and k.isdigit():
            last[src._index[name]] = max(last.get(src._index[name], -1), int(k))
    out = {}
    for i, k_max in last.items():
        for _ in range(k_max + 1):
            r = src._next(i, 0.0)
            if r.id in wanted:
                out[r.id] = r
    return out
