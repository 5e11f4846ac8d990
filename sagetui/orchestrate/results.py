"""From request records to the store: the one path both clocks use.

Aggregation is loadgen.metrics (the single place metrics are defined); this
module only decides what goes into which table, so a sim run and a live run
store exactly the same shapes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from loadgen.metrics import aggregate
from store import RunWriter
from store.schema import request_row
from vocab import Request


def write_results(writer: RunWriter, records: list[Request], *, warmup_s: float,
                  duration_s: float, target_rate_rps: float | None, raw: bool,
                  state_samples: Iterable[dict] = (), extra: dict | None = None,
                  samples_written: bool = False) -> dict:
    """Aggregate `records` and store histograms, summaries, samples and (raw) records.

    `state_samples` are the control plane's per-second snapshots (queue depth,
    per-backend engine state) keyed by `t_s`; they are merged into the
    per-second samples. A live run writes its samples while it goes
    (`samples_written=True`) and only the aggregates here.
    Returns the summaries (per class) for printing.
    """
    agg = aggregate(records, warmup_s=warmup_s, duration_s=duration_s,
                    target_rate_rps=target_rate_rps)
    if not samples_written:
        state = {round(s["t_s"]): s for s in state_samples}
        for sample in agg.samples:
            # A snapshot taken at the end of second k describes sample k.
            snap = state.get(round(sample["t_s"]) + 1)
            if snap is not None:
                sample["queue_depth_json"] = json.dumps(snap.get("queue_depth", {}),
                                                        sort_keys=True)
                sample["backends_json"] = json.dumps(snap.get("backends", {}), sort_keys=True)
            writer.add_sample(sample)
    writer.add_histograms(agg.histograms)
    summaries = agg.summaries
    if extra:
        for summary in summaries.values():
            summary.setdefault("extra", {}).update(extra)
    writer.add_summaries(summaries)
    if raw:
        writer.add_requests(request_row(r) for r in records)
    return summaries
