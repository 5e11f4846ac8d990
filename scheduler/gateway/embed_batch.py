"""One upstream /v1/embeddings call for a batch of client requests, split back.

Why: the hybrid policy batches small embedding requests (batching is worth
~4.6x on CPU, docs/setup.md); the gateway must send the batch as ONE engine call
and hand each client exactly its own vectors, indexed from 0, with its share of
the usage.
"""

from __future__ import annotations

import json
from typing import Any


class BatchError(Exception):
    """The engine's answer does not fit the batch (wrong count, malformed)."""


def as_inputs(inp: Any) -> list:
    """A request's `input` as a list of texts (or of token-id lists)."""
    if isinstance(inp, str):
        return [inp]
    if inp and all(isinstance(t, int) for t in inp):
        return [inp]
    return list(inp)


def group_key(body: dict[str, Any]) -> tuple:
    """Requests may share one call only when the call's options are the same."""
    return (body["model"], body.get("encoding_format", "float"), body.get("dimensions"),
            body.get("user"))


def merged_body(bodies: list[dict[str, Any]]) -> tuple[dict[str, Any], list[int]]:
    """The one engine request for `bodies` (same group_key) and each one's input count."""
    first = bodies[0]
    inputs: list = []
    counts: list[int] = []
    for b in bodies:
        part = as_inputs(b["input"])
        inputs.extend(part)
        counts.append(len(part))
    out = {"model": first["model"], "input": inputs}
    for key in ("encoding_format", "dimensions", "user"):
        if first.get(key) is not None:
            out[key] = first[key]
    return out, counts


def split_answer(raw: bytes, counts: list[int], weights: list[int]) -> list[bytes]:
    """Split the engine's answer into one OpenAI embeddings body per request.

    `weights` (estimated tokens per request) share out the engine's usage so the
    parts add up to the engine's totals.
    """
    try:
        obj = json.loads(raw)
        data = sorted(obj["data"], key=lambda d: d["index"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BatchError(f"malformed embeddings answer: {exc}") from None
    if len(data) != sum(counts):
        raise BatchError(f"engine returned {len(data)} embeddings for {sum(counts)} inputs")
    usage = obj.get("usage") or {}
    total_prompt = int(usage.get("prompt_tokens", 0) or 0)
    total_w = sum(weights) or 1
    parts: list[bytes] = []
    off = 0
    given = 0
    for i, n in enumerate(counts):
        items = []
        for j, d in enumerate(data[off:off + n]):
            d = dict(d)
            d["index"] = j
            items.append(d)
        off += n
        if i == len(counts) - 1:
            share = total_prompt - given
        else:
            share = total_prompt * weights[i] // total_w
            given += share
        body = {"object": "list", "data": items, "model": obj.get("model"),
                "usage": {"prompt_tokens": share, "total_tokens": share}}
        parts.append(json.dumps(body, separators=(",", ":")).encode())
    return parts
