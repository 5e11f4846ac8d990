"""The fair-baseline check: refuse comparisons across machines, engine versions or engine settings.

Rules (docs/exports.md): every run compared must share
- the hardware fingerprint of the machine that ran it;
- per engine kind, the engine version (and software versions of vLLM, torch, CUDA); a
  version's trailing "(device, dtype)" note (serve-embed's) is compared per device kind
  only, so one release on a GPU and on a CPU pool is the same engine;
- per (engine kind, model — or simulator preset — and device kind), the engine
  parameters and launch arguments (less the host and port the engine listened on).
Backends that differ on purpose (GPU vs CPU pools, 1 vs 8 backends) pass: only
the same engine on the same device must be set up the same way.

Across suite parts (the configurations a table compares) the hardware budget must
match too (`budget_mismatches`): USD per hour within 1 %, or, where no backend has a
price, the same GPU and CPU-node counts. Within a part the budget may vary (a sweep
over backends), and tables whose subject is the hardware (`HARDWARE_TABLES`) compare
budgets on purpose and report them; so do the figures of the parts such a table of the
suite's manifest compares.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from exports.errors import ExportError
from exports.manifest import entries
from exports.model import RunView

_SOFTWARE_KEYS = ("vllm", "vllm_dist", "torch", "cuda", "sentence-transformers",
                  "sentence_transformers", "transformers")
# Where a launched engine listens: a free port is taken at each launch, so two runs of
# the same engine set up the same way differ here and nowhere that matters.
_ADDRESS_FLAGS = ("--host", "--port")


# Budgets within this fraction of the dearer one's USD/h are the same budget.
BUDGET_TOLERANCE = 0.01
# Tables and figures whose subject is the hardware (pools of different cost, 1 vs 8
# backends): their configurations differ in budget by design and show it.
HARDWARE_TABLES = frozenset({"heterogeneous", "cost_performance", "scalability",
                             "throughput_vs_backends"})


@dataclass(frozen=True, order=True)
class Budget:
    """What a configuration's hardware costs: a fair comparison gives every
    configuration the same, so no baseline wins by having more machines."""

    usd_per_hour: float
    gpus: int
    cpu_nodes: int

    def __str__(self) -> str:
        parts = [f"{n} {what}" for n, what in ((self.gpus, "GPU"), (self.cpu_nodes, "CPU")) if n]
        return f"${self.usd_per_hour:.2f}/h: {' + '.join(parts) or 'no hardware'}"


def budget_gap(a: Budget, b: Budget) -> str:
    """How two budgets differ ("" = the same): USD/h within BUDGET_TOLERANCE, or, when
    neither is priced (live engines without price_per_hour), the device counts."""
    if a.usd_per_hour or b.usd_per_hour:
        diff = abs(a.usd_per_hour - b.usd_per_hour)
        if diff <= BUDGET_TOLERANCE * max(a.usd_per_hour, b.usd_per_hour):
            return ""
        return f"differ in budget by ${diff:.2f}/h"
    if (a.gpus, a.cpu_nodes) == (b.gpus, b.cpu_nodes):
        return ""
    return "differ in hardware (no price_per_hour to compare)"


def _budgets_text(budgets: list[Budget]) -> str:
    return "; ".join(map(str, budgets))


def part_budget_gaps(budgets: dict[str, list[Budget]],
                     hardware: Iterable[set[str]] = ()) -> list[str]:
    """Each pair of parts whose budgets differ, said for people. A part with several
    budgets (a sweep over backends) matches another only budget for budget. Parts that
    a hardware table compares together (`hardware`: their part sets) differ on purpose."""
    names, found, hardware = list(budgets), [], list(hardware)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if any(a in s and b in s for s in hardware):
                continue
            gap = _sets_gap(budgets[a], budgets[b])
            if gap:
                found.append(f"parts {a!r} ({_budgets_text(budgets[a])}) and {b!r} "
                             f"({_budgets_text(budgets[b])}) {gap}")
    return found


def _sets_gap(xs: list[Budget], ys: list[Budget]) -> str:
    """The gap of the first budget of either part that none of the other's matches,
    to the closest of those ("" when every budget has a match)."""
    for one, other in ((xs, ys), (ys, xs)):
        for x in one:
            if all(budget_gap(x, y) for y in other):
                near = min(other, key=lambda y: (abs(y.usd_per_hour - x.usd_per_hour),
                                                 abs(y.gpus - x.gpus) + abs(y.cpu_nodes - x.cpu_nodes)))
                return budget_gap(x, near)
    return ""


def machines_budget(backends: Iterable[tuple[str, str, float, int]]) -> Budget:
    """The budget of backends given as (host, device, USD per hour, GPUs): backends
    that name one host ("" = a machine of its own) are one machine — an LLM and an
    embedding model colocated on one GPU — counted once, at its dearest backend."""
    machines: dict[str, list[tuple[str, float, int]]] = {}
    for i, (host, device, usd, gpus) in enumerate(backends):
        machines.setdefault(host or f"\0{i}", []).append((device, usd, gpus))
    usd_total, gpu_total, cpus = 0.0, 0, 0
    for group in machines.values():
        usd_total += max(u for _, u, _ in group)
        on_gpu = [g for d, _, g in group if d == "gpu"]
        if on_gpu:
            gpu_total += max(on_gpu)
        else:
            cpus += 1
    return Budget(round(usd_total, 6), gpu_total, cpus)


def run_budget(run: RunView) -> Budget:
    """A stored run's budget from its backend rows (their price includes the simulator
    preset's when the config gave none) and the config's `gpus` and `host` per backend."""
    cfg = {b.get("name"): b for b in run.config.get("backends", []) if isinstance(b, dict)}

    def item(b):
        spec = cfg.get(b.name, {})
        gpus = max(int(spec.get("gpus", 1)), int(spec.get("tensor_parallel", 1)))
        return str(spec.get("host", "") or ""), b.device, b.price_per_hour, gpus

    return machines_budget(item(b) for b in run.backends)


def hardware_part_sets(spec: str, experiment: str) -> list[set[str]]:
    """The part sets a suite's manifest compares in hardware tables."""
    return [set(e.parts) for e in entries(spec, experiment) if e.name in HARDWARE_TABLES]


def budget_mismatches(runs: Iterable[RunView]) -> list[str]:
    """Parts (configurations) of one experiment compared on different budgets; runs
    outside a suite part are one configuration and never compared with each other."""
    by_exp: dict[str, dict[str, set[Budget]]] = defaultdict(lambda: defaultdict(set))
    specs: dict[str, str] = {}
    for r in runs:
        if r.part:
            by_exp[r.experiment][r.part].add(run_budget(r))
            specs[r.experiment] = r.experiment_spec
    found: list[str] = []
    for exp, parts in sorted(by_exp.items()):
        gaps = part_budget_gaps({p: sorted(bs) for p, bs in parts.items()},
                                hardware_part_sets(specs[exp], exp))
        found += [f"budget of {exp}: {g}" for g in gaps]
    return found


def _setting_args(launch_args: str) -> str:
    """The stored launch arguments without the listening address (the store keeps all)."""
    try:
        data = json.loads(launch_args)
    except ValueError:
        return launch_args
    if not (isinstance(data, dict) and isinstance(data.get("argv"), list)):
        return launch_args
    argv, kept, skip = data["argv"], [], False
    for a in argv:
        if skip:
            skip = False
        elif a in _ADDRESS_FLAGS:
            skip = True  # the flag and its value
        elif not (isinstance(a, str) and a.startswith(tuple(f + "=" for f in _ADDRESS_FLAGS))):
            kept.append(a)
    return json.dumps({**data, "argv": kept}, sort_keys=True)


def _release(kind: str, version: str) -> tuple[str, str]:
    """(release, note): serve-embed reports e.g. `sentence-transformers 6.0.1 (cuda, float32)`;
    the note says where and how it computes, which differs between GPU and CPU pools on purpose.
    serve-sim reports `sagetui-sim PRESET`: the preset is the engine's model (its parameters are
    compared per slot below), so a chat and an embedding preset in one run are no mismatch."""
    if kind == "sim" and version.startswith("sagetui-sim "):
        return "sagetui-sim", ""
    head, sep, tail = version.rpartition(" (")
    if sep and head and tail.endswith(")"):
        return head, tail[:-1]
    return version, ""


def find_mismatches(runs: Iterable[RunView]) -> list[str]:
    """Human-readable differences that make these runs an unfair comparison (empty = fair)."""
    runs = list(runs)
    found: list[str] = []

    def check(what: str, values: dict[str, list[int]]) -> None:
        if len(values) > 1:
            listed = "; ".join(f"{v} (runs {_ids(ids)})" for v, ids in values.items())
            found.append(f"{what} differs: {listed}")

    hw: dict[str, list[int]] = defaultdict(list)
    for r in runs:
        hw[r.hardware.fingerprint[:12] if r.hardware else "unknown"].append(r.id)
    check("hardware fingerprint", hw)
    for key in _SOFTWARE_KEYS:
        vals: dict[str, list[int]] = defaultdict(list)
        for r in runs:
            if key in r.software:
                vals[str(r.software[key])].append(r.id)
        check(f"software version {key}", vals)
    versions: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    builds: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    params: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        seen_v: set[tuple[str, str]] = set()
        seen_n: set[tuple[str, str, str]] = set()
        seen_p = set()
        for b in r.backends:
            device = b.device_kind or b.device
            release, note = _release(b.engine_kind, b.engine_version)
            if b.engine_version and (b.engine_kind, release) not in seen_v:
                seen_v.add((b.engine_kind, release))
                versions[b.engine_kind][release].append(r.id)
            if note and (device, b.engine_kind, note) not in seen_n:
                seen_n.add((device, b.engine_kind, note))
                builds[f"{b.engine_kind} on {device}"][f"({note})"].append(r.id)
            setting = f"params {b.params} args {_setting_args(b.launch_args)}"
            model = b.model or (f"preset {b.preset}" if b.preset else "(model not recorded)")
            slot = f"{b.engine_kind} {model} on {device}"
            if (slot, setting) not in seen_p:
                seen_p.add((slot, setting))
                params[slot][setting].append(r.id)
    for kind, vals in sorted(versions.items()):
        check(f"engine version of {kind}", vals)
    for slot, vals in sorted(builds.items()):
        check(f"engine setup (device, dtype) of {slot}", vals)
    for slot, vals in sorted(params.items()):
        check(f"engine parameters of {slot}", vals)
    return found


def _ids(ids: list[int]) -> str:
    return ",".join(map(str, sorted(set(ids))))


def enforce(runs: Iterable[RunView], what: str, allow_mismatch: bool) -> list[str]:
    """Footnotes for `what` when mismatches are allowed; ExportError listing them otherwise.
    Budgets are compared unless `what` is a hardware table."""
    runs = list(runs)
    found = find_mismatches(runs)
    if what not in HARDWARE_TABLES:
        found += budget_mismatches(runs)
    if found and not allow_mismatch:
        raise ExportError(
            f"{what}: refusing an unfair comparison (pass --allow-mismatch to export anyway "
            "with a footnote):\n  - " + "\n  - ".join(found)
        )
    return [f"Unfair comparison allowed with --allow-mismatch: {m}." for m in found]
