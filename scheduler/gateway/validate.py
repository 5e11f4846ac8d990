"""Request validation for the gateway: every client mistake becomes a 4xx.

Why a module of its own: the gateway must never answer a client's mistake with
a 5xx or crash on it (a 5xx says the server failed, and clients retry it), and
the fuzz tests exercise exactly this code.
Each check names the offending field in `param`, as OpenAI's API does.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

ROLES = frozenset({"system", "user", "assistant", "tool", "developer", "function"})
MAX_ID_LEN = 128
MAX_TIER_LEN = 64  # an SLO tier is a short name ("interactive"), not free text


class ClientError(Exception):
    """A 4xx answer: `status`, and the OpenAI error body fields."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None, type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type_

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type,
                          "param": self.param, "code": self.code}}


def error_body(message: str, type_: str, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """The OpenAI-style error object, for errors that are not the client's (5xx)."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@dataclass(slots=True)
class Parsed:
    """What the control plane needs to know about one valid request."""

    cls: str  # chat | completion | embedding
    model: str
    body: dict[str, Any]
    stream: bool
    prompt_tokens: int  # an estimate (chars / 4): the core only needs sizes to schedule
    output_tokens: int
    n_texts: int
    text_tokens: int
    priority: int | None  # vLLM's body field, when given


@dataclass(slots=True)
class Meta:
    """What the client says about itself in X-* headers."""

    priority: int | None
    slo_ttft_ms: float | None
    slo_e2e_ms: float | None
    client_id: str
    request_id: str | None
    slo_tpot_ms: float | None = None
    slo_tier: str = ""  # the workload's SLO tier name, "" when not sent


def _bad(message: str, param: str | None, code: str = "invalid_value") -> ClientError:
    return ClientError(400, message, param, code)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool)
            and math.isfinite(v))


def parse_json(raw: bytes) -> dict[str, Any]:
    """Decode the body; it must be one JSON object."""
    if not raw:
        raise _bad("Request body is empty; expected a JSON object.", None, "invalid_json")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise _bad(f"Request body is not valid JSON: {str(exc)[:200]}", None,
                   "invalid_json") from None
    if not isinstance(body, dict):
        raise _bad(f"Request body must be a JSON object, not {type(body).__name__}.", None,
                   "invalid_type")
    return body


def _opt_int(body: dict, key: str, lo: int, hi: int | None = None) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if not _is_int(v):
        raise _bad(f"'{key}' must be an integer, got {type(v).__name__}.", key, "invalid_type")
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise _bad(f"'{key}' must be {rng}, got {v}.", key)
    return v


def _opt_num(body: dict, key: str, lo: float, hi: float) -> None:
    v = body.get(key)
    if v is None:
        return
    if not _is_num(v):
        raise _bad(f"'{key}' must be a number, got {type(v).__name__}.", key, "invalid_type")
    if not lo <= v <= hi:
        raise _bad(f"'{key}' must be between {lo} and {hi}, got {v}.", key)


def _opt_bool(body: dict, key: str) -> bool:
    v = body.get(key, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise _bad(f"'{key}' must be a boolean, got {type(v).__name__}.", key, "invalid_type")
    return v


def _model(body: dict, models: frozenset[str]) -> str:
    m = body.get("model")
    if m is None:
        raise _bad("Missing required field 'model'.", "model", "missing_field")
    if not isinstance(m, str):
        raise _bad(f"'model' must be a string, got {type(m).__name__}.", "model", "invalid_type")
    if m not in models:
        shown = m if len(m) <= 100 else m[:100] + "..."
        raise ClientError(404, f"The model '{shown}' does not exist or is not served "
                          f"for this endpoint. Served: {sorted(models)}.", "model",
                          "model_not_found")
    return m


def _common(body: dict) -> tuple[int | None, bool]:
    """Fields shared by chat and completions: sampling knobs, stream, priority."""
    _opt_num(body, "temperature", 0.0, 2.0)
    _opt_num(body, "top_p", 0.0, 1.0)
    _opt_num(body, "presence_penalty", -2.0, 2.0)
    _opt_num(body, "frequency_penalty", -2.0, 2.0)
    _opt_int(body, "n", 1, 1)  # one choice per request: sizes the core sees stay honest
    _opt_int(body, "seed", -(2**63), 2**63 - 1)
    priority = _opt_int(body, "priority", -(2**31), 2**31 - 1)
    stream = _opt_bool(body, "stream")
    so = body.get("stream_options")
    if so is not None and not isinstance(so, dict):
        raise _bad("'stream_options' must be an object.", "stream_options", "invalid_type")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise _bad("'stop' must be a string or a list of strings.", "stop", "invalid_type")
    return priority, stream


def _max_tokens(body: dict, default: int, *keys: str) -> int:
    for key in keys:
        v = _opt_int(body, key, 1, 10_000_000)
        if v is not None:
            return v
    return default


def _tokens_of_text(text: str) -> int:
    return max(1, len(text) // 4)


def _chat(body: dict, models: frozenset[str], default_max: int) -> Parsed:
    model = _model(body, models)
    msgs = body.get("messages")
    if msgs is None:
        raise _bad("Missing required field 'messages'.", "messages", "missing_field")
    if not isinstance(msgs, list):
        raise _bad("'messages' must be a list.", "messages", "invalid_type")
    if not msgs:
        raise _bad("'messages' must not be empty.", "messages", "empty_array")
    chars = 0
    for i, m in enumerate(msgs):
        p = f"messages[{i}]"
        if not isinstance(m, dict):
            raise _bad(f"'{p}' must be an object.", p, "invalid_type")
        role = m.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise _bad(f"'{p}.role' must be one of {sorted(ROLES)}.", f"{p}.role")
        content = m.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise _bad(f"'{p}.content[{j}]' must be an object with a 'type'.",
                               f"{p}.content[{j}]", "invalid_type")
                text = part.get("text")
                if text is not None and not isinstance(text, str):
                    raise _bad(f"'{p}.content[{j}].text' must be a string.",
                               f"{p}.content[{j}].text", "invalid_type")
                chars += len(text or "")
        elif content is None:
            if role != "assistant":
                raise _bad(f"'{p}.content' is required for role '{role}'.", f"{p}.content",
                           "missing_field")
        else:
            raise _bad(f"'{p}.content' must be a string or a list of parts.", f"{p}.content",
                       "invalid_type")
    priority, stream = _common(body)
    out = _max_tokens(body, default_max, "max_completion_tokens", "max_tokens")
    return Parsed("chat", model, body, stream, max(1, chars // 4), out, 0, 0, priority)


def _token_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(_is_int(t) and t >= 0 for t in v)


def _texts(v: Any, key: str) -> tuple[int, int]:
    """(number of texts, estimated tokens) of a prompt/input field."""
    if isinstance(v, str):
        return 1, _tokens_of_text(v)
    if not isinstance(v, list):
        raise _bad(f"'{key}' must be a string or a list.", key, "invalid_type")
    if not v:
        raise _bad(f"'{key}' must not be an empty list.", key, "empty_array")
    if all(isinstance(s, str) for s in v):
        return len(v), sum(_tokens_of_text(s) for s in v)
    if all(_is_int(t) for t in v):
        if not _token_list(v):
            raise _bad(f"'{key}' token ids must be non-negative integers.", key)
        return 1, len(v)
    if all(isinstance(t, list) for t in v):
        for i, t in enumerate(v):
            if not _token_list(t):
                raise _bad(f"'{key}[{i}]' must be a non-empty list of non-negative token ids.",
                           f"{key}[{i}]")
        return len(v), sum(len(t) for t in v)
    raise _bad(f"'{key}' must be a string, a list of strings, a list of token ids or a list "
               "of token-id lists.", key, "invalid_type")


def _completion(body: dict, models: frozenset[str], default_max: int) -> Parsed:
    model = _model(body, models)
    if "prompt" not in body or body["prompt"] is None:
        raise _bad("Missing required field 'prompt'.", "prompt", "missing_field")
    n, toks = _texts(body["prompt"], "prompt")
    if n != 1:
        raise _bad("'prompt' must hold exactly one prompt (batch it as separate requests so "
                   "the control plane schedules each).", "prompt")
    priority, stream = _common(body)
    out = _max_tokens(body, default_max, "max_tokens")
    _opt_int(body, "logprobs", 0, 20)
    return Parsed("completion", model, body, stream, toks, out, 0, 0, priority)


def _embedding(body: dict, models: frozenset[str]) -> Parsed:
    model = _model(body, models)
    if "input" not in body or body["input"] is None:
        raise _bad("Missing required field 'input'.", "input", "missing_field")
    n, toks = _texts(body["input"], "input")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise _bad("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    _opt_int(body, "dimensions", 1, 1_000_000)
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _bad("'user' must be a string.", "user", "invalid_type")
    priority = _opt_int(body, "priority", -(2**31), 2**31 - 1)
    return Parsed("embedding", model, body, False, toks, 0, n, toks, priority)


def parse_request(cls: str, raw: bytes, models: frozenset[str],
                  default_max_tokens: int = 256) -> Parsed:
    """Validate one OpenAI request body of class `cls` against the served `models`."""
    body = parse_json(raw)
    if cls == "chat":
        return _chat(body, models, default_max_tokens)
    if cls == "completion":
        return _completion(body, models, default_max_tokens)
    if cls == "embedding":
        return _embedding(body, models)
    raise ValueError(f"unknown request class {cls!r}")  # programming error, not a client's


def _header_num(headers: dict[str, str], name: str) -> float | None:
    v = headers.get(name.lower())
    if v is None:
        return None
    try:
        x = float(v)
    except ValueError:
        raise _bad(f"Header '{name}' must be a number of milliseconds, got {v[:40]!r}.",
                   name) from None
    if not math.isfinite(x) or x <= 0:
        raise _bad(f"Header '{name}' must be a positive number of milliseconds.", name)
    return x


def parse_meta(headers: Any, peer: str = "", lower: bool = False) -> Meta:
    """Read priority, SLOs (TTFT, E2E, TPOT, tier) and ids from the X-* headers the
    load generator sends; a malformed one is a 400 naming the header. `headers` is
    any mapping of names to values; `lower=True` says its names are lower-case
    already (the gateway's own), so lookups need no folding."""
    if not lower:
        headers = {k.lower(): v for k, v in headers.items()}
    pr = headers.get("x-priority")
    priority = None
    if pr is not None:
        try:
            priority = int(pr)
        except ValueError:
            raise _bad(f"Header 'X-Priority' must be an integer 0..4, got {pr[:40]!r}.",
                       "X-Priority") from None
        if not 0 <= priority <= 4:
            raise _bad(f"Header 'X-Priority' must be 0..4, got {priority}.", "X-Priority")
    client = headers.get("x-client-id")
    if client is not None and not 0 < len(client) <= MAX_ID_LEN:
        raise _bad(f"Header 'X-Client-Id' must be 1..{MAX_ID_LEN} characters.", "X-Client-Id")
    rid = headers.get("x-request-id")
    if rid is not None and not 0 < len(rid) <= MAX_ID_LEN:
        raise _bad(f"Header 'X-Request-Id' must be 1..{MAX_ID_LEN} characters.",
                   "X-Request-Id")
    tier = headers.get("x-slo-tier")
    if tier is not None and not 0 < len(tier) <= MAX_TIER_LEN:
        raise _bad(f"Header 'X-SLO-Tier' must be 1..{MAX_TIER_LEN} characters.", "X-SLO-Tier")
    return Meta(priority, _header_num(headers, "X-SLO-TTFT-Ms"),
                _header_num(headers, "X-SLO-E2E-Ms"), client or peer or "anonymous", rid,
                _header_num(headers, "X-SLO-TPOT-Ms"), tier or "")


def _pipeline_num(headers: Any, name: str) -> float:
    v = headers.get(name.lower())
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise _bad(f"Header '{name}' must be a number, got {str(v)[:40]!r}.", name) from None
    if not math.isfinite(x) or x < 0:
        raise _bad(f"Header '{name}' must be a number >= 0.", name)
    return x


def parse_pipeline(headers: Any, now: float, lower: bool = False) -> dict[str, Any]:
    """The pipeline job a call belongs to (docs/gateway.md, "Pipeline headers"), as
    `vocab.Request` fields; {} for a call outside pipelines. The job's deadline
    becomes a moment on the gateway's clock: now + deadline − elapsed. A malformed
    header is a 400 naming it. `lower` as for parse_meta."""
    if not lower:
        headers = {k.lower(): v for k, v in headers.items()}
    job = headers.get("x-pipeline-id")
    if job is None:
        return {}
    if not 0 < len(job) <= MAX_ID_LEN:
        raise _bad(f"Header 'X-Pipeline-Id' must be 1..{MAX_ID_LEN} characters.",
                   "X-Pipeline-Id")
    out: dict[str, Any] = {"parent_id": job, "pipeline": headers.get("x-pipeline-kind", ""),
                           "stage": headers.get("x-pipeline-stage", "")}
    elapsed = (_pipeline_num(headers, "X-Pipeline-Elapsed-Ms")
               if headers.get("x-pipeline-elapsed-ms") is not None else 0.0)
    out["pipeline_start"] = now - elapsed / 1000.0
    if headers.get("x-pipeline-deadline-ms") is not None:
        budget = _pipeline_num(headers, "X-Pipeline-Deadline-Ms")
        out["pipeline_deadline"] = now + (budget - elapsed) / 1000.0
    if headers.get("x-pipeline-attained-ms") is not None:
        out["attained_s"] = _pipeline_num(headers, "X-Pipeline-Attained-Ms") / 1000.0
    rest = headers.get("x-pipeline-rest")
    if rest is not None:
        parts = rest.split(",")
        try:
            p, o, ms = int(parts[0]), int(parts[1]), float(parts[2])
        except (ValueError, IndexError):
            p = o = -1
            ms = 0.0
        if len(parts) != 3 or p < 0 or o < 0 or not math.isfinite(ms) or ms < 0:
            raise _bad("Header 'X-Pipeline-Rest' must be 'prompt_tokens,output_tokens,"
                       f"local_ms' (numbers >= 0), got {rest[:40]!r}.", "X-Pipeline-Rest")
        out.update(rest_prompt_tokens=p, rest_output_tokens=o, rest_local_s=ms / 1000.0)
    return out


def effective_priority(meta: Meta, parsed: Parsed, default: int = 2) -> int:
    """Header wins; else vLLM's body `priority` clamped to 0..4; else the default."""
    if meta.priority is not None:
        return meta.priority
    if parsed.priority is not None:
        return min(4, max(0, parsed.priority))
    return default
