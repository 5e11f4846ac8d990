"""WorkloadSpec: what arrives when, and how big it is.

Why pydantic: the `[workload]` table of a run config is validated once, every
default is filled in, and the resolved model is what the run stores. Errors
name the field (and the file and line for trace / empirical files).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from . import dag
from .dag import PipelineSpec
from .dists import Dist, _dist, _Strict, read_empirical  # noqa: F401  (re-exported)

CLASSES = ("chat", "completion", "embedding", "pipeline")
PRIORITIES = (0, 1, 2, 3, 4)
DEFAULT_PRIORITY = 2


class ClassSizes(_Strict):
    """Sizes of one class. prompt/output for chat, completion and pipeline;
    n_texts and text_tokens (tokens per text) for embedding. For pipeline,
    prompt_tokens is the question (also the embedded query)."""

    prompt_tokens: Dist = _dist(64)
    output_tokens: Dist = _dist(32)
    n_texts: Dist = _dist(1)
    text_tokens: Dist = _dist(64)


class PriorityDist(_Strict):
    """Weights over priorities 0 (critical) .. 4 (background)."""

    weights: list[float] = [0.0, 0.0, 1.0, 0.0, 0.0]

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, int) and not isinstance(data, bool):
            if data not in PRIORITIES:
                raise ValueError(f"priority must be 0..4, got {data}")
            w = [0.0] * 5
            w[data] = 1.0
            return {"weights": w}
        return data

    @field_validator("weights")
    @classmethod
    def _weights(cls, w: list[float]) -> list[float]:
        if len(w) != 5:
            raise ValueError("needs 5 weights, for priorities 0..4")
        if any((not math.isfinite(x)) or x < 0 for x in w) or sum(w) <= 0:
            raise ValueError("weights must be >= 0 and not all zero")
        return w


SHARE_TOLERANCE = 1e-6


class Tier(_Strict):
    """One SLO tier of a class: a share of its requests with bounds of their own.

    Why: a service promises different latencies to different customers of
    the same class; a tier's bound overrides the class-level one, an unset
    bound falls back to it. The name ends up in keys (`chat.tight`) and in a
    header, hence letters, digits, `_` and `-` only.
    """

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    share: float = Field(gt=0, le=1)
    ttft_ms: float | None = Field(default=None, gt=0)
    tpot_ms: float | None = Field(default=None, gt=0)
    e2e_ms: float | None = Field(default=None, gt=0)


class SLO(_Strict):
    """Latency objectives in ms; None = no objective of that kind.

    tpot_ms bounds the time per output token after the first (LLM classes).
    `tiers` split the class's requests by share; each request draws one.
    """

    ttft_ms: float | None = Field(default=None, gt=0)
    tpot_ms: float | None = Field(default=None, gt=0)
    e2e_ms: float | None = Field(default=None, gt=0)
    tiers: list[Tier] = []

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, tiers: list[Tier]) -> list[Tier]:
        """Shares must add up to 1 and names must tell the tiers apart."""
        if not tiers:
            return tiers
        seen: dict[str, int] = {}
        for i, t in enumerate(tiers):
            if t.name in seen:
                raise ValueError(f"duplicate tier name {t.name!r} (tiers[{seen[t.name]}] and tiers[{i}])")
            seen[t.name] = i
        total = math.fsum(t.share for t in tiers)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            raise ValueError(f"shares must sum to 1, got {total:g}")
        return tiers

    def bounds(self, tier: str = "") -> tuple[float | None, float | None, float | None]:
        """(ttft_ms, tpot_ms, e2e_ms) for a request of `tier` ("" = the class's own)."""
        for t in self.tiers:
            if t.name == tier:
                return (_first(t.ttft_ms, self.ttft_ms), _first(t.tpot_ms, self.tpot_ms),
                        _first(t.e2e_ms, self.e2e_ms))
        return self.ttft_ms, self.tpot_ms, self.e2e_ms


def _first(a: float | None, b: float | None) -> float | None:
    return a if a is not None else b


PREFIX_CLASSES = ("chat", "completion")


class Prefix(_Strict):
    """Prompt prefixes a class's requests share, which vLLM's prefix caching reuses.

    shared — `groups` prefixes (system prompts, RAG templates) of `tokens` each
      (drawn once per group); a request picks one uniformly and its prompt is that
      prefix followed by its own drawn prompt.
    conversation — `groups` conversations; a request picks one and its prompt is the
      conversation's history so far (the earlier turns' prompts and outputs) followed
      by its own drawn prompt; a history past `max_history` tokens starts over.
    `share` of the class's requests carry one, the others none. Draws come from a
    stream of their own: a workload without prefixes keeps its schedule.
    """

    kind: Literal["shared", "conversation"] = "shared"
    groups: int = Field(default=1, ge=1)
    tokens: Dist = _dist(1024)
    share: float = Field(default=1.0, gt=0, le=1)
    max_history: int = Field(default=8192, ge=1)


# ---------------------------------------------------------------- arrivals


class Constant(_Strict):
    kind: Literal["constant"] = "constant"


class Poisson(_Strict):
    kind: Literal["poisson"] = "poisson"


class Gamma(_Strict):
    """Gamma inter-arrivals with coefficient of variation `cv` (burstiness =
    1/cv², vLLM's name; give either). cv = 1 is Poisson, > 1 burstier."""

    kind: Literal["gamma"] = "gamma"
    cv: float | None = Field(default=None, gt=0)
    burstiness: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _resolve(self) -> Gamma:
        cv, burstiness = self.cv, self.burstiness
        if cv is None:
            if burstiness is None:
                raise ValueError("gamma needs `cv` or `burstiness`")
            object.__setattr__(self, "cv", 1 / math.sqrt(burstiness))
        elif burstiness is None:
            object.__setattr__(self, "burstiness", 1 / cv**2)
        elif not math.isclose(burstiness, 1 / cv**2, rel_tol=1e-9):
            raise ValueError("`cv` and `burstiness` disagree (burstiness = 1/cv²)")
        return self


class OnOff(_Strict):
    """Poisson at rate × factor for `on_s`, then at `rate` for `off_s`, repeated."""

    kind: Literal["onoff"] = "onoff"
    factor: float = Field(default=4.0, gt=0)
    on_s: float = Field(default=5.0, gt=0)
    off_s: float = Field(default=5.0, gt=0)


class Ramp(_Strict):
    """Poisson whose rate goes linearly from `start` to `end` req/s over the run."""

    kind: Literal["ramp"] = "ramp"
    start: float = Field(ge=0)
    end: float = Field(ge=0)

    @model_validator(mode="after")
    def _positive(self) -> Ramp:
        if self.start + self.end <= 0:
            raise ValueError("ramp `start` and `end` cannot both be 0")
        return self


class TraceRow(_Strict):
    t: float
    cls: str
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    n_texts: int | None = None
    text_tokens: int | None = None
    priority: int | None = None
    client_id: str | None = None


_TRACE_INT_FIELDS = ("prompt_tokens", "output_tokens", "n_texts", "text_tokens", "priority")


def _trace_row(raw: dict, where: str) -> TraceRow:
    t = raw.get("t", raw.get("timestamp"))
    cls = raw.get("cls", raw.get("class"))
    if t is None or t == "":
        raise ValueError(f"{where}: missing `timestamp` (or `t`)")
    if cls is None or cls == "":
        raise ValueError(f"{where}: missing `class` (or `cls`)")
    try:
        tv = float(t)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: timestamp {t!r} is not a number") from None
    if not math.isfinite(tv):
        raise ValueError(f"{where}: timestamp {t!r} is not finite")
    if cls not in CLASSES:
        raise ValueError(f"{where}: unknown class {cls!r} (one of {', '.join(CLASSES)})")
    row: dict[str, Any] = {"t": tv, "cls": cls}
    for name in _TRACE_INT_FIELDS:
        v = raw.get(name)
        if v is None or v == "":
            continue
        try:
            iv = int(float(v))
        except (TypeError, ValueError):
            raise ValueError(f"{where}: `{name}` {v!r} is not a number") from None
        if iv < 0 or (name == "priority" and iv not in PRIORITIES):
            raise ValueError(f"{where}: `{name}` {v!r} out of range")
        row[name] = iv
    if raw.get("client_id") not in (None, ""):
        row["client_id"] = str(raw["client_id"])
    return TraceRow(**row)


def read_trace(path: str) -> list[TraceRow]:
    """Rows of a CSV (header line) or JSONL trace; errors name file and line."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"trace file {path}: not found")
    text = p.read_text()
    rows: list[TraceRow] = []
    if p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"trace file {path}, line {lineno}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: malformed JSON ({e.msg})") from None
            if not isinstance(raw, dict):
                raise ValueError(f"{where}: expected a JSON object")
            rows.append(_trace_row(raw, where))
    else:
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames:
            raise ValueError(f"trace file {path}: empty")
        for i, raw in enumerate(reader, start=2):
            if None in raw:
                raise ValueError(f"trace file {path}, line {i}: more fields than the header")
            rows.append(_trace_row(raw, f"trace file {path}, line {i}"))
    if not rows:
        raise ValueError(f"trace file {path}: no requests")
    return rows


class Trace(_Strict):
    """Replay a CSV/JSONL trace (timestamp, class, optional sizes/priority/client_id).

    Intended time = (timestamp − first timestamp) × time_scale (0.5 replays
    twice as fast). Missing sizes come from `sizes`; rows past the run end are dropped.
    """

    kind: Literal["trace"] = "trace"
    path: str
    time_scale: float = Field(default=1.0, gt=0)

    @field_validator("path")
    @classmethod
    def _readable(cls, path: str) -> str:
        read_trace(path)
        return path


class Adversarial(_Strict):
    """Poisson at `rate` plus an attack:

    spike — every `period_s`, `burst` extra requests at the same instant;
    long_prompt_flood — from `start_s` for `length_s`, extra requests at
      rate × factor with `long_prompt_tokens`-token prompts;
    priority_inversion — from `start_s` for `length_s`, a priority-4 flood at
      rate × factor, then a priority-0 trickle at `trickle_rps` to the end.
    """

    kind: Literal["adversarial"] = "adversarial"
    attack: Literal["spike", "long_prompt_flood", "priority_inversion"] = "spike"
    period_s: float = Field(default=5.0, gt=0)
    burst: int = Field(default=50, ge=1)
    start_s: float = Field(default=0.0, ge=0)
    length_s: float = Field(default=5.0, gt=0)
    factor: float = Field(default=5.0, gt=0)
    long_prompt_tokens: int = Field(default=2048, ge=1)
    trickle_rps: float = Field(default=1.0, gt=0)


Arrival = Annotated[
    Constant | Poisson | Gamma | OnOff | Ramp | Trace | Adversarial,
    Field(discriminator="kind"),
]


class Clients(_Strict):
    """Closed loop: `n` clients, each sends, waits for the answer, thinks, sends again."""

    n: int = Field(ge=1)
    think_time_s: float = Field(default=0.0, ge=0)


class Pipeline(_Strict):
    """The corpus the pipelines' retrieve stages search, and the RAG shape that runs
    when no pipeline is declared (embed the query, top-k, chat with the passages)."""

    top_k: int = Field(default=3, ge=1)
    corpus_size: int = Field(default=256, ge=1)  # synthetic passages, when no file is given
    passage_tokens: int = Field(default=64, ge=1)
    # a real corpus (JSON lines with `text`, or one passage a line); its passages replace
    # the synthetic ones (read and checked with the run config: sagetui.config)
    corpus_file: str | None = None

    @model_validator(mode="after")
    def _k(self) -> Pipeline:
        if self.top_k > self.corpus_size:
            raise ValueError("`top_k` must be <= `corpus_size`")
        return self


def _default_sizes() -> dict[str, ClassSizes]:
    return {c: ClassSizes() for c in CLASSES}


def _default_priorities() -> dict[str, PriorityDist]:
    return {c: PriorityDist() for c in CLASSES}


def _default_slos() -> dict[str, SLO]:
    return {c: SLO() for c in CLASSES}


def _embedding_has_only_e2e(slo: SLO) -> None:
    """Embeddings stream nothing: a TTFT or TPOT bound on them could never be judged."""
    for where, obj in [("embedding", slo)] + [(f"embedding.tiers[{i}]", t)
                                             for i, t in enumerate(slo.tiers)]:
        for name in ("ttft_ms", "tpot_ms"):
            if getattr(obj, name) is not None:
                raise ValueError(f"{where}.{name}: embedding has no TTFT or TPOT; "
                                 "set only `e2e_ms` for embedding")


class WorkloadSpec(_Strict):
    """The `[workload]` table. Times in seconds, rates in requests per second.

    The run lasts warmup_s + duration_s; t = 0 is the first intended send.
    """

    arrival: Arrival = Poisson()
    rate: float = Field(default=10.0, gt=0)
    duration_s: float = Field(default=60.0, gt=0)
    warmup_s: float = Field(default=0.0, ge=0)
    seed: int = 0
    clients: Clients | None = None
    client_ids: int = Field(default=1, ge=1)  # open loop: ids c000.. assigned round-robin
    mix: dict[str, float] = {"chat": 1.0, "completion": 0.0, "embedding": 0.0, "pipeline": 0.0}
    sizes: dict[str, ClassSizes] = Field(default_factory=_default_sizes)
    priorities: dict[str, PriorityDist] = Field(default_factory=_default_priorities)
    slos: dict[str, SLO] = Field(default_factory=_default_slos)
    model: str = ""  # chat/completion model name; "" = filled in by the orchestrator
    embedding_model: str = ""
    pipeline: Pipeline = Pipeline()
    # The pipeline kinds a `pipeline` arrival draws from, by weight (docs/pipelines.md);
    # none declared: the RAG shape of `pipeline` above (pipeline_kinds()).
    pipelines: list[PipelineSpec] = []
    prefixes: dict[str, Prefix] = {}  # per LLM class (chat, completion): shared prefixes

    @model_validator(mode="before")
    @classmethod
    def _arrival_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("arrival"), str):
            data = {**data, "arrival": {"kind": data["arrival"]}}
        return data

    @field_validator("mix")
    @classmethod
    def _mix(cls, mix: dict[str, float]) -> dict[str, float]:
        for k, w in mix.items():
            if k not in CLASSES:
                raise ValueError(f"unknown class {k!r} (one of {', '.join(CLASSES)})")
            if not math.isfinite(w) or w < 0:
                raise ValueError(f"weight of {k!r} must be >= 0")
        if sum(mix.values()) <= 0:
            raise ValueError("weights are all zero")
        return {c: float(mix.get(c, 0.0)) for c in CLASSES}

    @field_validator("sizes", "priorities", "slos", mode="before")
    @classmethod
    def _classes(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for k in v:
                if k not in CLASSES:
                    raise ValueError(f"unknown class {k!r} (one of {', '.join(CLASSES)})")
        return v

    @field_validator("prefixes", mode="before")
    @classmethod
    def _prefix_classes(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for k in v:
                if k not in PREFIX_CLASSES:
                    raise ValueError(f"unknown class {k!r}: prefixes are for "
                                     f"{' and '.join(PREFIX_CLASSES)}")
        return v

    @field_validator("sizes")
    @classmethod
    def _fill_sizes(cls, v: dict[str, ClassSizes]) -> dict[str, ClassSizes]:
        return {c: v.get(c, ClassSizes()) for c in CLASSES}

    @field_validator("priorities")
    @classmethod
    def _fill_prio(cls, v: dict[str, PriorityDist]) -> dict[str, PriorityDist]:
        return {c: v.get(c, PriorityDist()) for c in CLASSES}

    @field_validator("slos")
    @classmethod
    def _fill_slos(cls, v: dict[str, SLO]) -> dict[str, SLO]:
        out = {c: v.get(c, SLO()) for c in CLASSES}
        _embedding_has_only_e2e(out["embedding"])
        return out

    @field_validator("pipelines")
    @classmethod
    def _pipeline_names(cls, v: list[PipelineSpec]) -> list[PipelineSpec]:
        names = [p.name for p in v]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f"two pipelines are named {dup!r}")
        return v

    @model_validator(mode="after")
    def _closed_loop_has_no_arrivals(self) -> WorkloadSpec:
        if self.clients is not None and not isinstance(self.arrival, Poisson):
            raise ValueError(f"arrival: {self.arrival.kind!r} is unused by a closed loop "
                             "(clients); remove one of them")
        return self

    @property
    def end_s(self) -> float:
        """Intended sends happen in [0, end_s)."""
        return self.warmup_s + self.duration_s

    def target_rate(self) -> float | None:
        """Mean offered rate the arrival process aims at (None for closed loop,
        trace and adversarial: their offered rate is read from the schedule)."""
        a = self.arrival
        if self.clients is not None or isinstance(a, Trace | Adversarial):
            return None
        if isinstance(a, OnOff):
            return self.rate * (a.factor * a.on_s + a.off_s) / (a.on_s + a.off_s)
        if isinstance(a, Ramp):
            return (a.start + a.end) / 2
        return self.rate

    def pipeline_kinds(self) -> list[PipelineSpec]:
        """The declared pipelines, or the RAG shape of `[workload.pipeline]` as one
        declaration (embed the question, retrieve `top_k`, generate from both): one
        way to run a pipeline, whichever table describes it."""
        if self.pipelines:
            return list(self.pipelines)
        # Its jobs' deadlines are the `pipeline` class's SLOs (tiers included), drawn
        # as before declarations existed, so an old config keeps its schedule.
        p = self.pipeline
        rag = dag.Pipeline("rag")
        rag.embed("embed", tokens=self.sizes["pipeline"].prompt_tokens)
        rag.retrieve("search", after="embed", k=p.top_k)
        rag.generate("chat", after=["search", "embed"], tokens=1,
                     output_tokens=self.sizes["pipeline"].output_tokens,
                     template="{search} {embed}")
        return [rag.spec()]

    def resolved(self) -> dict:
        """Every default filled in, JSON-ready (what the run stores)."""
        return self.model_dump(mode="json")
