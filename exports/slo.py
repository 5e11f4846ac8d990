"""SLO columns the summary tables share: attainment per class and per tier, and refusals.

Why one place: a pooled attainment hides a policy that serves one class or
one tier at the expense of another, so every table that reports attainment
shows it per class (chat and embedding apart), per SLO tier when the runs
have tiers, and how many requests were turned away — with one caption text.
Numbers come from the summaries `loadgen.metrics.aggregate` wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from exports.accessors import need_summary, slo_pct
from exports.errors import ExportError
from exports.groups import Group
from exports.model import RunView
from exports.stats import Estimate
from exports.table import Cell, Column

GROUP = "SLO attainment (%)"
CLASS_ORDER = ("chat", "completion", "embedding", "pipeline")
ALWAYS = ("chat", "embedding")
NOTE = ("SLO attainment = the share of requests issued in the measurement window that met "
        "every SLO they carry (TTFT, TPOT and E2E, measured from the intended send time); "
        "failures, rejections and sheds count as misses. A tier column counts only the "
        "requests that drew that SLO tier. Rejected or shed = the share of issued requests "
        "refused at admission or dropped from the queue once their deadline was out of reach.")


def classes(runs: Sequence[RunView]) -> list[str]:
    """Chat and embedding always; completion and pipeline when some run issued them."""
    present = {c for r in runs for c in r.summaries}
    return [c for c in CLASS_ORDER if c in ALWAYS or c in present]


def _tiers_of(run: RunView) -> dict:
    s = run.summary("all")
    tiers = s.extra.get("slo_tiers") if s else None
    return tiers if isinstance(tiers, dict) else {}


def _config_position(run: RunView, key: str) -> int:
    """Where tier `cls.name` stands in the run's `workload.slos.<cls>.tiers` (config order)."""
    cls, _, name = key.partition(".")
    slo = run.section("workload").get("slos", {}).get(cls, {})
    names = [t.get("name") for t in slo.get("tiers", []) if isinstance(t, dict)] if isinstance(slo, dict) else []
    return names.index(name) if name in names else len(names)


def tiers(runs: Sequence[RunView]) -> list[str]:
    """Every `class.tier` key any run reports, by class, then as the config lists them."""
    first: dict[str, RunView] = {}
    for r in runs:
        for key in _tiers_of(r):
            first.setdefault(key, r)

    def order(key: str) -> tuple:
        cls = key.partition(".")[0]
        rank = CLASS_ORDER.index(cls) if cls in CLASS_ORDER else len(CLASS_ORDER)
        return (rank, cls, _config_position(first[key], key), key)

    return sorted(first, key=order)


def class_pct(run: RunView, cls: str) -> float | None:
    """Attainment of one class in %, None when the run issued none of it."""
    s = run.summary(cls)
    return None if s is None or s.slo_attainment is None else slo_pct(run, cls)


def tier_pct(run: RunView, key: str) -> float | None:
    """Attainment of tier `class.tier` in %, None when the run has no such tier or issued none."""
    value = _tiers_of(run).get(key, {})
    value = value.get("slo_attainment") if isinstance(value, dict) else None
    return None if value is None else 100.0 * float(value)


def rejected_or_shed_pct(run: RunView) -> float:
    """Requests refused at admission or shed from the queue, % of issued (class `all`).

    Runs stored before sheds were counted apart have only `rejected`; no
    policy shed requests then, so that count is the same quantity.
    """
    s = need_summary(run, "all")
    if s.issued <= 0:
        raise ExportError(f"run {run.id} ({run.name}): summary 'all' issued no requests")
    count = s.extra.get("rejected_or_shed")
    return 100.0 * (count if isinstance(count, int) else s.rejected) / s.issued


def _label(cls: str) -> str:
    return "Embed" if cls == "embedding" else cls.capitalize()


def columns(runs: Sequence[RunView]) -> list[Column]:
    """Pooled, per-class and per-tier attainment, then rejected or shed."""
    cols = [Column("slo", "SLO attainment, all classes (%)", group=GROUP, sub="all")]
    cols += [Column(f"slo_{c}", f"{_label(c)} SLO attainment (%)", group=GROUP, sub=c)
             for c in classes(runs)]
    for key in tiers(runs):
        cls, _, name = key.partition(".")
        cols.append(Column(f"slo_tier_{key}", f"{_label(cls)} tier {name} SLO attainment (%)",
                           group=GROUP, sub=f"{cls} {name}"))
    cols.append(Column("rejected_or_shed", "Rejected or shed (%)"))
    return cols


def _optional(g: Group, value: Callable[[RunView], float | None], what: str) -> Estimate | None:
    """A dash when the configuration has no such figure (e.g. no embeddings issued)."""
    if value(g.first) is None:
        return None
    return g.estimate(value, what)


def cells(g: Group, runs: Sequence[RunView]) -> dict[str, Cell]:
    """The values of `columns(runs)` for one configuration."""
    row: dict[str, Cell] = {"slo": g.estimate(slo_pct, "SLO attainment")}
    for c in classes(runs):
        row[f"slo_{c}"] = _optional(g, partial(class_pct, cls=c), f"{c} SLO attainment")
    for key in tiers(runs):
        row[f"slo_tier_{key}"] = _optional(g, partial(tier_pct, key=key), f"tier {key} SLO attainment")
    row["rejected_or_shed"] = g.estimate(rejected_or_shed_pct, "rejected or shed")
    return row
