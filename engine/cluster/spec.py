"""`[cluster]`: which launcher starts a live run's engines, and where.

    [cluster]
    launcher = "ray"              # "local" (default): child processes of sagetui
    address = "auto"              # the Ray cluster: auto | HOST:PORT | ray://HOST:PORT
    [cluster.engines.vllm0]       # optional, per backend name
    node = "10.0.0.5"             # run on this node (its IP or Ray node id)
    labels = {gpu = "H100"}       # or on a node carrying these Ray labels
    cpus = 4                      # CPUs to reserve (default: len(cpus) or 1)

Why pydantic and here: the run config composes each package's section, and a
bad value must fail when the config is read, naming the field (docs/config.md).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

LAUNCHERS = ("local", "ray")
STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
HOST_PORT = re.compile(r"^(ray://)?([A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})$")


class EnginePlacement(BaseModel):
    """Where one launched engine may run and what it reserves there."""

    model_config = ConfigDict(extra="forbid")

    node: str = ""  # node IP or Ray node id; empty: any node
    labels: dict[str, str] = Field(default_factory=dict)  # Ray node labels the node must have
    cpus: float | None = Field(default=None, gt=0)  # None: len(backend.cpus) or 1
    gpus: int | None = Field(default=None, ge=0)  # None: what the local launcher would give


class ClusterSpec(BaseModel):
    """How a live run's engines are started: locally, or in a Ray cluster."""

    model_config = ConfigDict(extra="forbid")

    launcher: str = "local"
    address: str = "auto"
    namespace: str = "sagetui"
    # Ray's placement strategy for the run's bundles (one per engine). PACK fills
    # few nodes, SPREAD puts engines on different nodes; STRICT_ refuses otherwise.
    strategy: str = "PACK"
    # How long the bundles may take to be reserved before the run is refused.
    reserve_timeout_s: float = Field(default=60.0, gt=0)
    engines: dict[str, EnginePlacement] = Field(default_factory=dict)

    @field_validator("launcher")
    @classmethod
    def _launcher(cls, v: str) -> str:
        if v not in LAUNCHERS:
            raise ValueError(f"launcher: {v!r} is not one of {', '.join(LAUNCHERS)}")
        return v

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v: str) -> str:
        if v not in STRATEGIES:
            raise ValueError(f"strategy: {v!r} is not one of {', '.join(STRATEGIES)}")
        return v

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        if v == "auto":
            return v
        m = HOST_PORT.match(v)
        if m is None or not 0 < int(m.group(3)) < 65536:
            raise ValueError(f"address: {v!r} is not 'auto', HOST:PORT (the head's GCS, "
                             "e.g. 10.0.0.1:6379) or ray://HOST:PORT (Ray Client)")
        return v

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("namespace: must not be empty")
        return v

    def check_backends(self, backends: list) -> None:
        """Every placement names a backend that sagetui launches (raises ValueError)."""
        by_name = {b.name: b for b in backends}
        for name in self.engines:
            if name not in by_name:
                raise ValueError(f"cluster.engines.{name}: no backend named {name!r}; "
                                 f"backends: {sorted(by_name)}")
            if by_name[name].url:
                raise ValueError(f"cluster.engines.{name}: backend {name!r} is given by url, "
                                 "so it is not launched and takes no placement")
