"""Translations between the packages' own request types.

Why here: scheduler may not import loadgen (docs/architecture.md), so the
orchestrator — which sees both — converts the workload's `ScheduledRequest`
into the control plane's `Request`, and the simulator's `RequestOutcome` back
into loadgen's `RequestRecord`, which is what the one metric definition reads.
"""

from __future__ import annotations

import dataclasses

from loadgen.records import RequestRecord
from loadgen.schedule import ScheduledRequest
from scheduler.request import Request
from scheduler.simrt import RequestOutcome

_RECORD_FIELDS = {f.name for f in dataclasses.fields(RequestRecord)}


def to_request(s: ScheduledRequest, *, arrival: float | None = None, cls: str | None = None,
               **changes) -> Request:
    """A control-plane request for a scheduled one (pipelines pass their stage class).

    The workload's `text_tokens` is per text; the control plane's is the
    request's total over all its texts (what the gateway counts from a body and
    what batch costs scale with), hence n_texts × text_tokens.
    """
    fields = dict(
        id=s.id, cls=cls or s.cls, arrival=s.t if arrival is None else arrival, t=s.t,
        client_id=s.client_id, priority=s.priority, prompt_tokens=s.prompt_tokens,
        output_tokens=s.output_tokens, n_texts=s.n_texts,
        text_tokens=s.n_texts * s.text_tokens,
        slo_ttft_ms=s.slo_ttft_ms, slo_e2e_ms=s.slo_e2e_ms, slo_tpot_ms=s.slo_tpot_ms,
        slo_tier=s.slo_tier, model=s.model, parent_id=s.parent_id,
    )
    fields.update(changes)
    return Request(**fields)


def to_record(o: RequestOutcome) -> RequestRecord:
    """The simulator's outcome as the record the metric definitions read."""
    values = {f.name: getattr(o, f.name) for f in dataclasses.fields(o)
              if f.name in _RECORD_FIELDS}
    return RequestRecord(**values)
