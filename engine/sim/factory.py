"""Build the simulated engine for a `kind = "sim"` backend, honouring vLLM flags.

A sim backend can carry the same scheduler flags as the live `vllm serve` it
stands for (`extra_args`), so a sim run and a live run of one config schedule
alike: `--max-num-seqs N`, `--max-num-batched-tokens N`,
`--scheduling-policy fcfs|priority`, `--enable-prefix-caching` /
`--no-enable-prefix-caching` (on by default, as in vLLM V1). Other flags
(`--dtype`, ...) do not change the model; `sim_flags` returns them as ignored so
the caller can say so.
"""

from __future__ import annotations

import zlib
from dataclasses import replace

from engine.sim.cost import EmbedPreset
from engine.sim.embed import SimEmbeddingEngine
from engine.sim.frontend import Frontend
from engine.sim.host import SharedHost
from engine.sim.llm import SimLLMEngine
from engine.sim.presets import get_preset
from engine.spec import BackendSpec

_INT_FLAGS = {"--max-num-seqs": "max_num_seqs", "--max-num-batched-tokens":
              "max_num_batched_tokens"}
_POLICIES = ("fcfs", "priority")


def sim_flags(extra_args: list[str]) -> tuple[dict, list[str]]:
    """(SimLLMEngine keyword arguments, flags that do not affect the model)."""
    kw: dict = {}
    ignored: list[str] = []
    args = list(extra_args)
    i = 0
    while i < len(args):
        a = args[i]
        name, eq, val = a.partition("=")
        if a in ("--enable-prefix-caching", "--no-enable-prefix-caching"):
            kw["prefix_caching"] = a == "--enable-prefix-caching"
        elif name in _INT_FLAGS or name == "--scheduling-policy":
            if not eq:
                if i + 1 >= len(args):
                    raise ValueError(f"extra_args: {name} needs a value")
                val = args[i + 1]
                i += 1
            if name == "--scheduling-policy":
                if val not in _POLICIES:
                    raise ValueError(f"extra_args: --scheduling-policy {val!r} is not one of "
                                     f"{', '.join(_POLICIES)}")
                kw["priority_scheduling"] = val == "priority"
            else:
                try:
                    n = int(val)
                except ValueError:
                    raise ValueError(f"extra_args: {name} needs an integer, got {val!r}") from None
                if n < 1:
                    raise ValueError(f"extra_args: {name} must be >= 1, got {n}")
                kw[_INT_FLAGS[name]] = n
        else:
            ignored.append(a)
        i += 1
    return kw, ignored


def make_engine(spec: BackendSpec, *, token_events: bool = False,
                hosts: dict[str, SharedHost] | None = None, seed: int = 0):
    """The simulated engine for a sim backend: its preset, plus its vLLM flags.

    `hosts` (one dict per simulation) collects the machines named by the specs'
    `host`, so engines on one machine see each other (engine.sim.host). `seed` (the
    run's) and the backend's name seed its noise draws: replicas of one calibrated
    preset must not stall in lockstep, and a new seed draws new noise."""
    if spec.kind != "sim":
        raise ValueError(f"kind: backend {spec.name!r} is {spec.kind!r}, not 'sim'")
    preset = get_preset(spec.preset)
    host = hosts.setdefault(spec.host, SharedHost()) if spec.host and hosts is not None else None
    noise = zlib.crc32(f"{seed}/{spec.name}".encode())
    if isinstance(preset, EmbedPreset):
        embedder = SimEmbeddingEngine(preset, seed=noise, host=host)
        if host is not None:
            host.join(spec.name, embedder)
        return embedder
    kw, _ = sim_flags(spec.extra_args)
    if spec.cohost_slowdown is not None:
        preset = replace(preset, cost=replace(preset.cost, cohost_slowdown=spec.cohost_slowdown))
    engine = SimLLMEngine(preset, token_events=token_events, host=host, seed=noise, **kw)
    if host is not None:
        host.join(spec.name, engine)
    c = preset.cost
    if c.frontend > 0 or c.frontend_quantiles or c.completion_quantiles:
        return Frontend(engine, c.frontend, c.frontend_quantiles, noise,
                        completion_quantiles=c.completion_quantiles, per_seq=c.frontend_per_seq)
    return engine
