"""What each engine reserves in the cluster, and whether the cluster has it.

Why pure functions over `ray.nodes()`-shaped dicts: the check must refuse a run
before anything starts, naming what is short ("needs 4 GPUs on one node, the
largest has 2"), and it is tested without a cluster. The placement group that
follows is Ray's own, final word; this check only makes its refusal readable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.cluster.spec import ClusterSpec, EnginePlacement
from engine.spec import BackendSpec

NODE_PIN = 0.001  # a sliver of the `node:<ip>` resource: only that node has any


@dataclass(frozen=True)
class Bundle:
    """One engine's placement-group bundle: the resources and the node it needs."""

    backend: str
    cpus: float
    gpus: int
    node: str = ""  # as the config names it (IP or node id); resolved by `pin`
    labels: dict[str, str] = field(default_factory=dict)

    def resources(self, node_ip: str = "") -> dict[str, float]:
        """Ray's bundle dict; `node_ip` adds the resource only that node has."""
        out = {"CPU": float(self.cpus)}
        if self.gpus:
            out["GPU"] = float(self.gpus)
        if node_ip:
            out[f"node:{node_ip}"] = NODE_PIN
        return out


def engine_gpus(spec: BackendSpec) -> int:
    """GPUs a launched engine gets, as the local launcher assigns them."""
    if spec.kind == "vllm" or (spec.kind == "sentence-transformers" and spec.device == "gpu"):
        return max(spec.gpus, spec.tensor_parallel)
    return 0


def bundles_for(specs: list[BackendSpec], cluster: ClusterSpec) -> list[Bundle]:
    """One bundle per engine sagetui launches (backends given by URL take none)."""
    out = []
    for spec in specs:
        if spec.url:
            continue
        place = cluster.engines.get(spec.name, EnginePlacement())
        cpus = place.cpus if place.cpus is not None else float(len(spec.cpus) or 1)
        gpus = place.gpus if place.gpus is not None else engine_gpus(spec)
        out.append(Bundle(spec.name, cpus, gpus, place.node, dict(place.labels)))
    return out


def alive_nodes(nodes: list[dict]) -> list[dict]:
    return [n for n in nodes if n.get("Alive", n.get("alive", False))]


def resolve_node(name: str, nodes: list[dict]) -> dict | None:
    """The alive node a config names by IP, Ray node id or node name."""
    for n in alive_nodes(nodes):
        if name in (n.get("NodeManagerAddress"), n.get("NodeID"), n.get("NodeName")):
            return n
    return None


def fits(bundle: Bundle, node: dict) -> bool:
    """The node's totals can hold the bundle and it has the bundle's labels."""
    res, labels = node.get("Resources", {}), node.get("Labels", {}) or {}
    return (res.get("CPU", 0.0) >= bundle.cpus and res.get("GPU", 0.0) >= bundle.gpus
            and all(labels.get(k) == v for k, v in bundle.labels.items()))


def shortfalls(bundles: list[Bundle], nodes: list[dict],
               available: dict[str, float]) -> list[str]:
    """Why the cluster cannot hold these bundles now; empty when it may."""
    live = alive_nodes(nodes)
    if not live:
        return ["the cluster has no alive node"]
    problems = [p for b in bundles if (p := _bundle_problem(b, live))]
    problems += _total_problems(bundles, available)
    return problems


def _bundle_problem(bundle: Bundle, live: list[dict]) -> str:
    """A bundle no single node could hold, whatever else runs."""
    where = live
    if bundle.node:
        node = resolve_node(bundle.node, live)
        if node is None:
            ips = ", ".join(sorted(str(n.get("NodeManagerAddress")) for n in live))
            return (f"backend {bundle.backend!r}: node {bundle.node!r} is not an alive node of "
                    f"the cluster (alive: {ips})")
        where = [node]
    if bundle.labels:
        where = [n for n in where if all((n.get("Labels") or {}).get(k) == v
                                         for k, v in bundle.labels.items())]
        if not where:
            return f"backend {bundle.backend!r}: no alive node has the labels {bundle.labels}"
    if any(fits(bundle, n) for n in where):
        return ""
    best_cpu = max(n.get("Resources", {}).get("CPU", 0.0) for n in where)
    best_gpu = max(n.get("Resources", {}).get("GPU", 0.0) for n in where)
    return (f"backend {bundle.backend!r} needs {_amount(bundle.cpus, 'CPU')} and "
            f"{_amount(bundle.gpus, 'GPU')} on one node; the largest suitable node has "
            f"{_amount(best_cpu, 'CPU')} and {_amount(best_gpu, 'GPU')}")


def _total_problems(bundles: list[Bundle], available: dict[str, float]) -> list[str]:
    """Resources the engines need together beyond what the cluster has free now."""
    out = []
    for key, need in (("CPU", sum(b.cpus for b in bundles)),
                      ("GPU", sum(b.gpus for b in bundles))):
        have = available.get(key, 0.0)
        if need > have + 1e-9:
            out.append(f"the engines need {_amount(need, key)} in all; the cluster has "
                       f"{_amount(have, key)} free (short of {_amount(need - have, key)})")
    return out


def _amount(n: float, unit: str) -> str:
    text = f"{n:g}"
    return f"{text} {unit}" + ("" if n == 1 else "s")
