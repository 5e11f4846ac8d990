"""Agent capability: strategy × metric, from summaries carrying `extra_json.agent`.

Shape (docs/exports.md): summary 'all' extra_json = {"agent": {"strategy": "react",
"metrics": {"task_success_pct": 81.0, "tool_calls_per_task": 3.2, ...}}}.
"""

from __future__ import annotations

from exports.baseline import enforce
from exports.context import ExportContext
from exports.errors import ExportError
from exports.groups import group_runs, keyed
from exports.model import RunView
from exports.table import Column, Table

NAME = "agents"
DESCRIPTION = "Agent strategies × metrics (success, tool calls, latency per task) from extra_json.agent"


def agent(run: RunView) -> dict:
    s = run.summary("all")
    block = s.extra.get("agent") if s else None
    if not isinstance(block, dict) or not isinstance(block.get("metrics"), dict) or "strategy" not in block:
        raise ExportError(f"run {run.id} ({run.name}): summary 'all' has no extra_json.agent "
                          "{strategy, metrics}")
    return block


def build(ctx: ExportContext) -> Table:
    footnotes = enforce(ctx.runs, NAME, ctx.allow_mismatch)
    by_strategy = keyed(group_runs(ctx.runs), lambda r: str(agent(r)["strategy"]), NAME)
    metrics = sorted({m for g in by_strategy.values() for r in g.runs for m in agent(r)["metrics"]})
    rows = []
    for strategy in sorted(by_strategy):
        g = by_strategy[strategy]
        row = {"strategy": strategy}
        for m in metrics:
            row[m] = g.estimate(lambda r, m=m: agent(r)["metrics"].get(m), f"agent metric {m}")
        rows.append(row)
    return Table(
        name=NAME,
        caption="Agent capability per strategy.",
        columns=[Column("strategy", "Strategy")] + [Column(m, m.replace("_", " "), 2) for m in metrics],
        rows=rows, run_ids=[r.id for r in ctx.runs], footnotes=footnotes,
        notes=["Metric units follow their name suffix (_pct percent, _ms milliseconds)."],
    )
