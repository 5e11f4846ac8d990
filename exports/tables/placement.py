"""Where embeddings go on one hardware budget: on the LLM's GPUs, on a GPU of their
own, or on CPU nodes bought with the same dollars — chat goodput is the verdict.

Why a table of its own: the case for CPU nodes is not that they embed cheaply
(an idle GPU embeds cheaper still) but that they absorb embedding load and leave
the GPUs to chat. So each row holds one chat rate and one embedding rate, and
reports what chat got on that budget: goodput and SLO attainment, beside the
embeddings' own attainment, cost per million requests and goodput per dollar-hour.
Where the chat rate was set as a fraction of a measured chat capacity
(`run.load_class = "chat"`, sagetui/suites/relative.py) the rows say it, so a
reader sees which placements still serve chat past the capacity they share.
Colocated rows name the co-host slowdown they assumed (docs/simulator.md).
"""

from __future__ import annotations

from exports.accessors import need_summary, slo_pct
from exports.baseline import enforce, run_budget
from exports.context import ExportContext
from exports.errors import ExportError
from exports.groups import group_runs, keyed
from exports.model import RunView
from exports.table import Column, Table

NAME = "placement"
DESCRIPTION = ("Embeddings on the LLM's GPUs, a GPU of their own or CPU nodes, one budget: "
               "chat goodput and attainment per embedding load and co-host slowdown")
PRESET_SLOWDOWN = "preset"  # the GPU presets' own figure (0.195)


def class_rate(run: RunView, cls: str) -> float:
    """Offered requests per second of one class: the rate times its share of the mix."""
    w = run.section("workload")
    mix = w.get("mix") or {}
    total = sum(float(v) for v in mix.values())
    rate = run.offered_rate
    if rate is None or total <= 0:
        raise ExportError(f"{NAME}: run {run.id} ({run.name}) has no rate or mix")
    return rate * float(mix.get(cls, 0.0)) / total


def embedding_rate(run: RunView) -> float:
    """Offered embedding requests per second."""
    return class_rate(run, "embedding")


def chat_load(run: RunView) -> float:
    """Chat's offered load as × the measured chat capacity; 0 when it was not set so."""
    if run.section("run").get("load_class") != "chat" or run.load_fraction is None:
        return 0.0
    return run.load_fraction


def slowdown(run: RunView) -> str:
    """The co-host slowdown its colocated LLM backends assumed; '-' when none shares a GPU."""
    backends = [b for b in run.config.get("backends", []) if isinstance(b, dict)]
    hosts = [b.get("host") for b in backends if b.get("host")]
    if len(hosts) == len(set(hosts)):
        return "-"
    given = {float(b["cohost_slowdown"]) for b in backends
             if b.get("host") and b.get("cohost_slowdown") is not None}
    return ", ".join(f"{x:g}" for x in sorted(given)) if given else PRESET_SLOWDOWN


def usd_per_hour(run: RunView) -> float:
    usd = run_budget(run).usd_per_hour
    if usd <= 0:
        raise ExportError(f"{NAME}: run {run.id} ({run.name}) has no price per hour")
    return usd


def cost_per_million(run: RunView) -> float:
    done = need_summary(run, "all").throughput_rps
    return usd_per_hour(run) / (done * 3600.0) * 1e6 if done > 0 else float("inf")


def _row(g, key) -> dict:
    rate, load, part, slow = key
    return {
        "embed_rate": rate, "chat_load": load, "config": part, "slowdown": slow,
        "chat_rate": round(class_rate(g.first, "chat"), 1),
        "chat_goodput": g.estimate(lambda r: need_summary(r, "chat").goodput_rps,
                                   "chat goodput"),
        "chat_slo": g.estimate(lambda r: slo_pct(r, "chat"), "chat SLO attainment"),
        "embed_slo": g.estimate(lambda r: slo_pct(r, "embedding"), "embedding SLO attainment"),
        "cost": g.estimate(cost_per_million, "cost per million requests"),
        "per_dollar": g.estimate(lambda r: need_summary(r, "all").goodput_rps
                                 / usd_per_hour(r), "goodput per dollar-hour"),
    }


def build(ctx: ExportContext) -> Table:
    footnotes = enforce(ctx.runs, NAME, ctx.allow_mismatch)
    by_key = keyed(group_runs(ctx.runs), lambda r: (round(embedding_rate(r), 3), chat_load(r),
                                                   r.part or r.name, slowdown(r)), NAME)
    rows = [_row(by_key[k], k) for k in sorted(by_key)]
    relative = any(k[1] for k in by_key)
    chat_cols = [Column("chat_load", "Chat load (× capacity)", 2)] if relative else []
    cols = [Column("embed_rate", "Embedding load (req/s)", 0), *chat_cols,
            Column("chat_rate", "Chat offered (req/s)", 1), Column("config", "Configuration"),
            Column("slowdown", "Co-host slowdown"),
            Column("chat_goodput", "Chat goodput (req/s)", 1),
            Column("chat_slo", "Chat SLO attainment (%)", 1),
            Column("embed_slo", "Embed SLO attainment (%)", 1),
            Column("cost", "Cost per 1M requests ($)", 2),
            Column("per_dollar", "Goodput per $/h (req/s)", 2)]
    return Table(
        name=NAME,
        caption="Embeddings on one hardware budget: on the LLM's GPUs, on a GPU of their own, "
                "or on CPU nodes bought with the same dollars, "
                + ("at chat loads set from a measured chat capacity." if relative
                   else "at a fixed chat rate."),
        columns=cols, rows=rows, run_ids=[r.id for r in ctx.runs], footnotes=footnotes,
        notes=[*_capacity_note(ctx.runs, relative), "Chat goodput = chat requests per second that met every SLO they carry. Cost per "
               "1M requests = the configuration's price per hour (a GPU shared by an LLM and an "
               "embedding model counted once) / (requests completed per hour) × 10⁶; goodput per "
               "$/h counts every class. Co-host slowdown: an LLM step that starts while the "
               "embedding model on its GPU works takes 1 + x times as long; an assumption "
               "(`preset` = 0.195, from a published MPS measurement of two vLLM processes on "
               "one A100; see docs/simulator.md), swept here for sensitivity."],
    )


def _capacity_note(runs: list[RunView], relative: bool) -> list[str]:
    """What the chat loads are fractions of: the probed capacities and how they were got."""
    if not relative:
        return []
    caps = sorted({c for r in runs if chat_load(r) and (c := r.capacity_rps) is not None})
    basis = sorted({str(r.section("run").get("capacity_basis") or "") for r in runs
                    if chat_load(r)} - {""})
    shown = " / ".join(f"{c:g}" for c in caps)
    return [f"Chat load = offered chat rate / the chat capacity {shown} req/s, "
            + (basis[0] if len(basis) == 1 else "; ".join(basis)) + "."]
