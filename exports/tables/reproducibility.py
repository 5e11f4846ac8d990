"""Reproducibility checklist: what a reviewer needs to rerun the experiments."""

from __future__ import annotations

from exports.context import ExportContext
from exports.groups import group_runs
from exports.model import RunView
from exports.table import Column, Table
from exports.tables.agents import dataset_note, has_items

NAME = "reproducibility"
DESCRIPTION = "Reproducibility checklist: hardware, software versions, models, workload, warm-up, duration, repetitions"
_ALWAYS = ("python", "vllm", "cuda", "torch")  # listed even when not recorded
_SKIP = ("sagetui",)  # has its own row


def _distinct(values) -> str:
    out: list[str] = []
    for v in values:
        if v not in ("", None) and str(v) not in out:
            out.append(str(v))
    return "; ".join(out) if out else "not recorded"


def _hardware(r: RunView) -> str:
    h = r.hardware
    if h is None:
        return ""
    gpus = ", ".join(g.get("name", "?") for g in h.gpus) or "no GPU"
    return (f"{h.cpu_model} ({h.cpu_cores_physical} cores / {h.cpu_cores_logical} threads), "
            f"{h.memory_bytes / 2**30:.0f} GiB RAM, {gpus}, {h.os}")


def build(ctx: ExportContext) -> Table:
    runs = ctx.runs
    w = [r.section("workload") for r in runs]
    rows = [
        ("Hardware", _distinct(_hardware(r) for r in runs)),
        ("sagetui", _distinct(f"{r.sagetui_version} (git {r.git_sha[:10]})" for r in runs)),
    ]
    recorded = sorted({k for r in runs for k in r.software} - set(_ALWAYS) - set(_SKIP))
    for key in (*_ALWAYS, *recorded):
        rows.append((key, _distinct(r.software.get(key) for r in runs)))
    rows += [
        ("Engines", _distinct(f"{b.engine_kind} {b.engine_version}".strip() for r in runs for b in r.backends)),
        ("Models", _distinct(b.model or (f"preset {b.preset}" if b.preset else "")
                             for r in runs for b in r.backends)),
        ("Devices", _distinct("/".join(filter(None, (b.device, b.device_kind)))
                              for r in runs for b in r.backends)),
        ("Mode", _distinct(r.mode for r in runs)),
        ("Arrival process", _distinct(_dist(x.get("arrival")) for x in w)),
        ("Offered rates (req/s)", _distinct(sorted({r.offered_rate for r in runs if r.offered_rate is not None}))),
        ("Request mix", _distinct(_mix(x.get("mix")) for x in w)),
        ("Length distributions", _distinct(_sizes(x) for x in w)),
        ("Warm-up (s)", _distinct(f"{r.warmup_s:g}" for r in runs)),
        ("Measurement duration (s)", _distinct(f"{r.duration_s:g}" for r in runs)),
        ("Repetitions", _distinct(_repetitions(runs))),
        ("Seeds", _distinct(sorted({r.seed for r in runs}))),
        ("Runs", f"{len(runs)} (ids {min(r.id for r in runs)}–{max(r.id for r in runs)})"),
    ]
    agent_runs = [r for r in runs if has_items(r)]
    if agent_runs:  # suite E: which benchmark, version, split and tuning
        rows.append(("Agent dataset and split", dataset_note(agent_runs)))
    return Table(
        name=NAME,
        caption="Reproducibility checklist for the runs reported.",
        columns=[Column("item", "Item"), Column("value", "Value")],
        rows=[{"item": k, "value": v} for k, v in rows], run_ids=[r.id for r in runs],
        notes=["Values differing between runs are listed separated by semicolons."],
    )


def _mix(mix) -> str:
    if not isinstance(mix, dict):
        return _compact(mix)
    return ", ".join(f"{k}={v:g}" if isinstance(v, int | float) else f"{k}={v}"
                     for k, v in mix.items() if v)


def _dist(d) -> str:
    """`{"kind": "uniform", "low": 32, "high": 128, ...}` -> `uniform(low=32, high=128)`."""
    if not isinstance(d, dict) or "kind" not in d:
        return _compact(d)
    params = [f"{k}={v:g}" if isinstance(v, int | float) else f"{k}={v}" for k, v in d.items()
              if k not in ("kind", "min", "max") and v is not None]
    return f"{d['kind']}({', '.join(params)})" if params else str(d["kind"])


def _sizes(workload: dict) -> str:
    """Length distributions of the classes the mix issues (all when there is no mix)."""
    sizes, mix = workload.get("sizes"), workload.get("mix")
    if not isinstance(sizes, dict):
        return _compact(sizes)
    issued = {k for k, v in mix.items() if v} if isinstance(mix, dict) else set(sizes)
    parts = []
    for cls, fields in sizes.items():
        if cls not in issued and isinstance(fields, dict):
            continue
        if isinstance(fields, dict):
            parts.append(f"{cls}: " + ", ".join(f"{k} {_dist(v)}" for k, v in fields.items()))
        else:
            parts.append(f"{cls}: {_compact(fields)}")
    return "; ".join(parts)


def _compact(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_compact(v)}" for k, v in value.items())
    return "" if value is None else str(value)


def _repetitions(runs: list[RunView]):
    return sorted({len(g.runs) for g in group_runs(runs)})
