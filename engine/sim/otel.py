"""Measured vLLM requests: OpenTelemetry request spans and their compact form.

vLLM started with `--otlp-traces-endpoint` exports one span per request
(`llm_request`), started at the request's arrival, with its token counts and
latencies as `gen_ai.*` attributes. Collectors write them as OTLP/JSON, one
export request (`{"resourceSpans": ...}`) per line or one per file. A trace is
what the simulator needs to replay them (arrivals, sizes) and to be judged
against them (TTFT, E2E, queue time), plus what the spans do not say: the
engine's settings, read from its log (`read_vllm_log`) or given by hand.

The compact form keeps only that: a header line with the settings and one line
per request. Published traces ship with the tests in it (tests/data/gpu_traces).
Errors name the file, the line and the missing attribute (`TraceError`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

COMPACT_FORMAT = "sagetui.gpu-trace"
SPAN_NAME = "llm_request"
# the span attributes a replay needs, and the optional one it also compares
ATTR_PROMPT = "gen_ai.usage.prompt_tokens"
ATTR_OUTPUT = "gen_ai.usage.completion_tokens"
ATTR_TTFT = "gen_ai.latency.time_to_first_token"
ATTR_E2E = "gen_ai.latency.e2e"
ATTR_QUEUE = "gen_ai.latency.time_in_queue"
ATTR_MODEL = ("gen_ai.response.model", "gen_ai.request.model")
REQUIRED = (ATTR_PROMPT, ATTR_OUTPUT, ATTR_TTFT, ATTR_E2E)
# the engine settings a trace may carry (header of the compact form)
SETTINGS = ("model", "vllm", "device", "tensor_parallel", "max_num_seqs",
            "max_num_batched_tokens", "kv_cache_tokens", "prefix_tokens",
            "prefix_hit_rate_logged")


class TraceError(ValueError):
    """A trace file that cannot be replayed; the message names file and line."""


@dataclass(frozen=True)
class TracedRequest:
    """One measured request: arrival (s after the trace's first), sizes, latencies (s)."""

    t: float
    prompt: int
    output: int
    ttft: float
    e2e: float
    queue: float | None = None


@dataclass
class GpuTrace:
    """Requests in arrival order plus the engine settings known for them."""

    path: str
    requests: list[TracedRequest]
    meta: dict = field(default_factory=dict)

    @property
    def model(self) -> str:
        return str(self.meta.get("model") or "")


def read_trace(path: str | Path) -> GpuTrace:
    """A compact trace or an OTLP/JSON span export (either layout)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise TraceError(f"{p}: cannot read: {e.strerror or e}") from None
    lines = text.splitlines()
    head = next(((i, ln) for i, ln in enumerate(lines, 1) if ln.strip()), None)
    if head is None:
        raise TraceError(f"{p}: empty")
    first = _json_or_none(head[1])
    if isinstance(first, dict) and first.get("format") == COMPACT_FORMAT:
        return _read_compact(p, lines)
    if first is None and head[1].lstrip().startswith(("{", "[")):
        doc = _json_or_none(text)
        if doc is not None:  # one pretty-printed export
            return _from_exports(p, [(head[0], d) for d in _as_list(doc)])
    docs = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        doc = _json_or_none(line)
        if doc is None:
            raise TraceError(f"{p}, line {lineno}: not JSON; expected an OTLP/JSON span "
                             f"export (resourceSpans) or a {COMPACT_FORMAT} header")
        docs += [(lineno, d) for d in _as_list(doc)]
    return _from_exports(p, docs)


def _json_or_none(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _as_list(doc) -> list:
    return doc if isinstance(doc, list) else [doc]


def _from_exports(p: Path, docs: list[tuple[int, object]]) -> GpuTrace:
    """Every `llm_request` span of the exports, as requests in arrival order."""
    rows: list[tuple[float, TracedRequest]] = []
    models: set[str] = set()
    for lineno, doc in docs:
        if not isinstance(doc, dict) or "resourceSpans" not in doc:
            raise TraceError(f"{p}, line {lineno}: not an OpenTelemetry span export "
                             f"(no resourceSpans)")
        for span in _spans(doc):
            if span.get("name") != SPAN_NAME:
                continue
            start, req, model = _span_request(p, lineno, span)
            rows.append((start, req))
            if model:
                models.add(model)
    if not rows:
        raise TraceError(f"{p}: no {SPAN_NAME!r} spans (vLLM's request spans)")
    rows.sort(key=lambda r: r[0])
    t0 = rows[0][0]
    reqs = [TracedRequest(round(s - t0, 6), r.prompt, r.output, r.ttft, r.e2e, r.queue)
            for s, r in rows]
    meta = {"model": models.pop()} if len(models) == 1 else {}
    return GpuTrace(str(p), reqs, meta)


def _spans(doc: dict):
    for rs in doc.get("resourceSpans") or ():
        for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or ():
            yield from ss.get("spans") or ()


def _attr_value(v: dict):
    for kind in ("doubleValue", "intValue", "stringValue", "boolValue"):
        if kind in v:
            return v[kind]
    return None


def _span_request(p: Path, lineno: int, span: dict) -> tuple[float, TracedRequest, str]:
    attrs = {a.get("key"): _attr_value(a.get("value") or {})
             for a in span.get("attributes") or () if isinstance(a, dict)}
    where = f"{p}, line {lineno}: span {SPAN_NAME} {span.get('spanId', '?')}"
    for name in REQUIRED:
        if attrs.get(name) is None:
            raise TraceError(f"{where}: missing attribute {name}")
    if span.get("startTimeUnixNano") is None:
        raise TraceError(f"{where}: missing startTimeUnixNano (the request's arrival)")
    try:
        start = int(span["startTimeUnixNano"]) / 1e9
        req = TracedRequest(0.0, int(attrs[ATTR_PROMPT]), int(attrs[ATTR_OUTPUT]),
                            float(attrs[ATTR_TTFT]), float(attrs[ATTR_E2E]),
                            None if attrs.get(ATTR_QUEUE) is None else float(attrs[ATTR_QUEUE]))
    except (TypeError, ValueError) as e:
        raise TraceError(f"{where}: a latency or token attribute is not a number ({e})") from None
    _check(where, req)
    model = next((str(attrs[m]) for m in ATTR_MODEL if attrs.get(m)), "")
    return start, req, model


def _check(where: str, r: TracedRequest) -> None:
    if r.prompt < 1 or r.output < 1:
        raise TraceError(f"{where}: token counts must be >= 1 (prompt {r.prompt}, "
                         f"output {r.output})")
    for name in ("ttft", "e2e"):
        v = getattr(r, name)
        if not math.isfinite(v) or v < 0:
            raise TraceError(f"{where}: {name} {v!r} is not a finite time >= 0")


def _read_compact(p: Path, lines: list[str]) -> GpuTrace:
    meta: dict | None = None
    reqs: list[TracedRequest] = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{p}, line {lineno}"
        raw = _json_or_none(line)
        if not isinstance(raw, dict):
            raise TraceError(f"{where}: expected a JSON object")
        if meta is None:
            meta = {k: v for k, v in raw.items() if k != "format"}
            continue
        missing = [k for k in ("t", "prompt", "output", "ttft", "e2e") if raw.get(k) is None]
        if missing:
            raise TraceError(f"{where}: missing field {missing[0]}")
        try:
            r = TracedRequest(float(raw["t"]), int(raw["prompt"]), int(raw["output"]),
                              float(raw["ttft"]), float(raw["e2e"]),
                              None if raw.get("queue") is None else float(raw["queue"]))
        except (TypeError, ValueError) as e:
            raise TraceError(f"{where}: a field is not a number ({e})") from None
        _check(where, r)
        reqs.append(r)
    if not reqs:
        raise TraceError(f"{p}: no requests after the header")
    reqs.sort(key=lambda r: r.t)
    return GpuTrace(str(p), reqs, meta or {})


def write_compact(trace: GpuTrace, path: str | Path, **meta) -> Path:
    """The trace in compact form: header (settings, source) and one line per request."""
    head = {"format": COMPACT_FORMAT, **trace.meta, **{k: v for k, v in meta.items()
                                                         if v is not None}}
    out = [json.dumps(head, sort_keys=True)]
    for r in trace.requests:
        d = asdict(r)
        d = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()
             if v is not None}
        out.append(json.dumps(d, sort_keys=True))
    p = Path(path)
    p.write_text("\n".join(out) + "\n")
    return p


_LOG_KV = re.compile(r"GPU KV cache size: ([\d,]+) tokens")
_LOG_VERSION = re.compile(r"vLLM API server version ([\w.+-]+)")
_LOG_HIT = re.compile(r"Prefix cache hit rate: ([\d.]+)%")
_LOG_ARGS = re.compile(r"non-default args: (\{.*\})")


def read_vllm_log(path: str | Path) -> dict:
    """Engine settings from a vLLM server log: version, KV cache size, the
    non-default scheduler limits and model, and the last prefix cache hit rate
    it logged. Only the last server start in the file counts."""
    p = Path(path)
    try:
        text = p.read_text(errors="replace")
    except OSError as e:
        raise TraceError(f"{p}: cannot read: {e.strerror or e}") from None
    starts = [m.start() for m in _LOG_VERSION.finditer(text)]
    if starts:
        text = text[starts[-1]:]
    out: dict = {}
    if m := _LOG_VERSION.search(text):
        out["vllm"] = m.group(1)
    if m := _LOG_KV.search(text):
        out["kv_cache_tokens"] = int(m.group(1).replace(",", ""))
    if hits := _LOG_HIT.findall(text):
        out["prefix_hit_rate_logged"] = float(hits[-1]) / 100
    if m := _LOG_ARGS.search(text):
        args = m.group(1)
        for key in ("max_num_seqs", "max_num_batched_tokens"):
            if v := re.search(rf"'{key}': (\d+)", args):
                out[key] = int(v.group(1))
        if v := re.search(r"'served_model_name': \['([^']+)'", args) or \
                re.search(r"'model': '([^']+)'", args):
            out["model"] = v.group(1).split("/models/")[-1]
    return out
