"""Pipelines as declarations: a named DAG of stages, from TOML or a Python builder.

Why declarations and not code: an application such as RAG or an agent is a
dataflow of operators (embed -> retrieve -> generate; an LLM called several
times with tools in between). Declared, the same pipeline runs on both clocks,
its shape is stored with the run, and a scheduler can see what is left of it.

Stage kinds (docs/loadgen.md, "Pipelines"):

* `embed`    texts from the request (no `after`) or from earlier stages;
* `retrieve` top-k over a real vector index (engine.retrieval);
* `rerank`   an embedding-similarity pass over the retrieved passages;
* `generate` one chat call whose prompt template reads earlier outputs;
* `tool`     a timed local function (`duration_ms`);
* `loop`     an agent: up to `max_calls` LLM calls, each after the previous.

`after` names the stages whose outputs a stage reads: fan-out (several stages
after one) and fan-in (one after several) are both allowed; a cycle, a name
no stage has, or a template that reads a stage not before it is an error
naming the pipeline, the stage and the field.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_serializer, model_validator

from .dists import Dist, _dist, _Strict

STAGE_KINDS = ("embed", "retrieve", "rerank", "generate", "tool", "loop")
INDEX_KINDS = ("flat", "hnsw", "ivf")
_LLM_KINDS = ("generate", "loop")
# The fields a kind reads; setting another one is a mistake the config names.
_KIND_FIELDS = {
    "embed": {"n_texts", "tokens"},
    "retrieve": {"k", "index"},
    "rerank": {"k"},
    "generate": {"tokens", "output_tokens", "template"},
    "tool": {"duration_ms"},
    "loop": {"tokens", "output_tokens", "max_calls", "template"},
}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_-]*)\}")


class StageSpec(_Strict):
    """One operator of a pipeline. Sizes are distributions (loadgen.spec.Dist)."""

    name: str = Field(min_length=1)
    kind: Literal["embed", "retrieve", "rerank", "generate", "tool", "loop"]
    after: list[str] = []
    n_texts: Dist = _dist(1)  # embed: texts of the request (ignored when `after` feeds it)
    tokens: Dist = _dist(32)  # embed: tokens per text; generate/loop: the stage's own prompt
    k: int = Field(4, ge=1, le=1000)  # retrieve / rerank: passages kept
    index: Literal["flat", "hnsw", "ivf"] = "flat"  # retrieve: exact or approximate
    output_tokens: Dist = _dist(64)  # generate / loop: tokens per LLM call
    template: str = ""  # generate / loop: "{stage}" reads that stage's output
    duration_ms: Dist = _dist(10)  # tool: its run time
    max_calls: int = Field(3, ge=1, le=64)  # loop: LLM calls at most

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        """A field the stage's kind does not read is refused (a typo or a wrong kind
        would otherwise be silently ignored)."""
        if isinstance(data, dict) and data.get("kind") in _KIND_FIELDS:
            stray = set(data) - _KIND_FIELDS[data["kind"]] - {"name", "kind", "after"}
            if stray:
                raise ValueError(f"stage {data.get('name', '?')!r} of kind {data['kind']!r}: "
                                 f"field `{sorted(stray)[0]}` does not apply to this kind")
        return data

    @model_serializer(mode="wrap")
    def _only_its_fields(self, handler: Any) -> dict:
        """Dumped with the fields its kind reads only, so a stored config (every default
        filled in) reads back: the fields of other kinds would be refused."""
        data = handler(self)
        keep = _KIND_FIELDS[self.kind] | {"name", "kind", "after"}
        return {k: v for k, v in data.items() if k in keep}

    def reads(self) -> set[str]:
        """The stage names its template reads."""
        return set(_PLACEHOLDER.findall(self.template))


class PipelineTier(_Strict):
    """A share of a pipeline kind's jobs with its own end-to-end deadline."""

    name: str = Field(min_length=1)
    share: float = Field(gt=0, le=1)
    deadline_ms: float = Field(gt=0)


class PipelineSpec(_Strict):
    """A named DAG of stages, its weight in the workload's pipeline mix and its
    end-to-end deadline (or tiers of deadlines)."""

    name: str = Field(min_length=1)
    stages: list[StageSpec] = Field(min_length=1)
    weight: float = Field(1.0, gt=0)
    deadline_ms: float | None = Field(None, gt=0)
    tiers: list[PipelineTier] = []

    @model_validator(mode="after")
    def _graph(self) -> PipelineSpec:
        where = f"pipeline {self.name!r}"
        names = [s.name for s in self.stages]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f"{where}: two stages are named {dup!r}")
        known = set(names)
        for s in self.stages:
            for a in s.after:
                if a not in known:
                    raise ValueError(f"{where}, stage {s.name!r}, field `after`: no stage "
                                     f"is named {a!r} (stages: {', '.join(names)})")
        order = topological_order(self)  # raises on a cycle
        _check_reads(self, order)
        if self.tiers:
            total = sum(t.share for t in self.tiers)
            if abs(total - 1.0) > 1e-6:
                raise ValueError(f"{where}, field `tiers`: shares sum to {total:g}, not 1")
            if self.deadline_ms is not None:
                raise ValueError(f"{where}: give `deadline_ms` or `tiers`, not both")
        return self

    def stage(self, name: str) -> StageSpec:
        return next(s for s in self.stages if s.name == name)

    def llm_calls_at_most(self) -> int:
        """LLM calls one job makes at most (a loop counts its max_calls)."""
        return sum(s.max_calls if s.kind == "loop" else 1
                   for s in self.stages if s.kind in _LLM_KINDS)


def topological_order(p: PipelineSpec) -> list[StageSpec]:
    """Stages in an order where each comes after every stage it reads (declaration
    order among independent ones, so the order is deterministic)."""
    pending = list(p.stages)
    placed: list[StageSpec] = []
    done: set[str] = set()
    while pending:
        ready = [s for s in pending if all(a in done for a in s.after)]
        if not ready:
            cycle = ", ".join(s.name for s in pending)
            raise ValueError(f"pipeline {p.name!r}, field `after`: the stages {cycle} "
                             f"depend on each other in a cycle")
        for s in ready:
            placed.append(s)
            done.add(s.name)
            pending.remove(s)
    return placed


def ancestors(p: PipelineSpec, name: str) -> set[str]:
    """Every stage `name` depends on, directly or through others."""
    by_name = {s.name: s for s in p.stages}
    seen: set[str] = set()
    todo = list(by_name[name].after)
    while todo:
        a = todo.pop()
        if a not in seen:
            seen.add(a)
            todo.extend(by_name[a].after)
    return seen


def _check_reads(p: PipelineSpec, order: list[StageSpec]) -> None:
    for s in order:
        before = ancestors(p, s.name)
        for r in sorted(s.reads()):
            if r not in before:
                raise ValueError(
                    f"pipeline {p.name!r}, stage {s.name!r}, field `template`: reads "
                    f"{{{r}}}, which no stage before it produces (list it in `after`)")
        if s.kind in ("retrieve", "rerank") and not s.after:
            raise ValueError(f"pipeline {p.name!r}, stage {s.name!r}, field `after`: a "
                             f"{s.kind} stage needs the stage whose vectors it searches with")


class Pipeline:
    """The Python form of a PipelineSpec, a few chained lines:

        Pipeline("rag", deadline_ms=2000).embed("q").retrieve("docs", after="q", k=4)
            .generate("answer", after="docs", template="{docs} {q}")

    `.spec()` is the validated PipelineSpec, equal to the one the same TOML gives.
    """

    def __init__(self, name: str, *, weight: float = 1.0, deadline_ms: float | None = None,
                 tiers: list[dict] | None = None) -> None:
        self._head = {"name": name, "weight": weight, "deadline_ms": deadline_ms,
                      "tiers": tiers or []}
        self._stages: list[dict] = []

    def _add(self, kind: str, name: str, after: str | list[str] | None, **fields: Any) -> Pipeline:
        after_list = [after] if isinstance(after, str) else list(after or [])
        self._stages.append({"name": name, "kind": kind, "after": after_list, **fields})
        return self

    def embed(self, name: str, after: str | list[str] | None = None, **f: Any) -> Pipeline:
        return self._add("embed", name, after, **f)

    def retrieve(self, name: str, after: str | list[str], **f: Any) -> Pipeline:
        return self._add("retrieve", name, after, **f)

    def rerank(self, name: str, after: str | list[str], **f: Any) -> Pipeline:
        return self._add("rerank", name, after, **f)

    def generate(self, name: str, after: str | list[str] | None = None, **f: Any) -> Pipeline:
        return self._add("generate", name, after, **f)

    def tool(self, name: str, after: str | list[str] | None = None, **f: Any) -> Pipeline:
        return self._add("tool", name, after, **f)

    def loop(self, name: str, after: str | list[str] | None = None, **f: Any) -> Pipeline:
        return self._add("loop", name, after, **f)

    def spec(self) -> PipelineSpec:
        return PipelineSpec.model_validate({**self._head, "stages": self._stages})


def to_toml_dict(p: PipelineSpec) -> dict:
    """The `[[workload.pipelines]]` table that gives back `p` (defaults left out)."""
    return p.model_dump(mode="json", exclude_defaults=True, exclude_none=True)
