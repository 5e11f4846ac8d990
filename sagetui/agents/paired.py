"""Each strategy's headline accuracy on the items one strategy was evaluated on.

Why: the LLM strategy runs on a subsample of the test split (`llm_limit`), so its
row in the table and the retrieval strategies' rows are over different items;
this prints every strategy on the same items (the LLM's by default), from the
per-item outcomes the runs stored. Runs that stored no item ids (`items.ids`)
have them rebuilt from the suite's dataset and config, which select them
deterministically.

    python -m sagetui.agents.paired --db agents.db [--on llm] [--experiment ID]
"""

from __future__ import annotations

import argparse

HEADLINE = {"selection": "top1", "selection_pool": "top1", "timing": "correct",
            "planning": "exact"}


def _runs(db: str, experiment: int | None) -> dict[str, dict]:
    """strategy -> its agent block (with `config`: the run's [agents]), newest suite run."""
    from store import open_store, queries

    store = open_store(db)
    try:
        runs = queries.list_runs(store, with_config=True, tag="agents", status="completed")
        if experiment is None and runs:
            experiment = max(r["experiment_id"] for r in runs)
        runs = [r for r in runs if r["experiment_id"] == experiment]
        sums = queries.summaries_for(store, [r["id"] for r in runs])
    finally:
        store.close()
    out = {}
    for r in runs:
        agent = (sums[r["id"]].get("all") or {}).get("extra", {}).get("agent")
        if agent and agent.get("items"):
            out[agent["strategy"]] = {**agent, "config": r["config"].get("agent", {})}
    return out


def _ids(agent: dict, category: str) -> list[str]:
    block = agent["items"][category]
    if "ids" in block:
        return block["ids"]
    from .runner import AgentConfig, load_dataset, test_items

    known = AgentConfig.__dataclass_fields__
    cfg = AgentConfig(**{k: tuple(v) if isinstance(v, list) else v
                         for k, v in agent.get("config", {}).items() if k in known})
    ds = load_dataset(cfg.dataset)
    return [i.id for i in test_items(ds, cfg, agent["strategy"])[category]]


def paired(agents: dict[str, dict], on: str) -> dict[str, dict[str, float]]:
    """strategy -> category -> accuracy % on `on`'s items (timing: balanced)."""
    table: dict[str, dict[str, float]] = {}
    for cat in agents[on]["items"]:
        ids = _ids(agents[on], cat)
        for strategy, agent in agents.items():
            block = agent["items"].get(cat)
            if block is None:
                continue
            pos = {i: k for k, i in enumerate(_ids(agent, cat))}
            if any(i not in pos for i in ids):
                continue
            vals = [block["outcomes"][HEADLINE[cat]][pos[i]] for i in ids]
            if cat == "timing":
                labels = [block["labels"][pos[i]] for i in ids]
                sides = [[v for v, y in zip(vals, labels, strict=True) if y == want]
                         for want in (1, 0)]
                acc = sum(sum(s) / len(s) for s in sides if s) / sum(1 for s in sides if s)
            else:
                acc = sum(vals) / len(vals)
            table.setdefault(strategy, {})[cat] = round(100 * acc, 1)
    return table


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--on", default="llm", help="the strategy whose items are compared")
    ap.add_argument("--experiment", type=int, default=None)
    args = ap.parse_args(argv)
    agents = _runs(args.db, args.experiment)
    if args.on not in agents:
        raise SystemExit(f"--on: no completed {args.on!r} run with items in {args.db}")
    table = paired(agents, args.on)
    from .items import CATEGORIES

    cats = [c for c in CATEGORIES if c in agents[args.on]["items"]]
    print("| strategy | " + " | ".join(cats) + " |")
    print("|---|" + "---:|" * len(cats))
    for strategy, row in sorted(table.items()):
        print(f"| {strategy} | " + " | ".join(f"{row.get(c, float('nan')):.1f}" for c in cats)
              + " |")


if __name__ == "__main__":
    main()
