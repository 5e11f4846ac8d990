"""The LLM strategy's request and answer: an OpenAI chat body, a JSON reply.

The model is shown a shortlist of functions (from the retrieval fusion) and the
user's request, and answers `{"calls": [{"name": ..., "arguments": {...}}]}`,
an empty list when no function fits. With `structured` the body carries
OpenAI's `response_format` (a JSON schema whose `name` is an enum of the
shortlist), which vLLM enforces by guided decoding, so even a small model
answers in the format; without it the first JSON object of the reply is read.
One format for every category: selection reads the first call, timing whether
there is any, planning the list of names.
"""

from __future__ import annotations

import json
import re

from .items import Item, Tool

SYSTEM = ("You are a function-calling assistant. You get a list of functions and a user "
          "request. Reply with JSON only, in the form "
          '{"calls": [{"name": "<function name>", "arguments": {"<parameter>": <value>}}]}. '
          "List every call the request needs, in order. If no function fits the request, "
          'reply {"calls": []}.')
DESCRIPTION_CHARS = 240


def _signature(tool: Tool) -> str:
    props = (tool.schema or {}).get("properties") or {}
    required = set((tool.schema or {}).get("required") or [])
    parts = []
    for name, spec in props.items():
        kind = spec.get("type", "any") if isinstance(spec, dict) else "any"
        parts.append(f"{name}: {kind}" + ("" if name in required else "?"))
    desc = " ".join(tool.description.split())
    if len(desc) > DESCRIPTION_CHARS:
        desc = desc[:DESCRIPTION_CHARS].rstrip() + "..."
    return f"- {tool.name}({', '.join(parts)}): {desc}"


def messages(item: Item, shortlist: list[Tool]) -> list[dict]:
    system = SYSTEM + (f"\n\n{item.system}" if item.system else "")
    listing = "\n".join(_signature(t) for t in shortlist)
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Functions:\n{listing}\n\nRequest: {item.query}"}]


_TYPES = {"dict": "object", "object": "object", "float": "number", "number": "number",
          "integer": "integer", "int": "integer", "string": "string", "str": "string",
          "boolean": "boolean", "bool": "boolean", "array": "array", "list": "array",
          "tuple": "array"}


def _param_schema(spec) -> dict:
    kind = _TYPES.get(spec.get("type")) if isinstance(spec, dict) else None
    out: dict = {"type": kind} if kind else {}
    if isinstance(spec, dict) and isinstance(spec.get("enum"), list) and kind == "string":
        out["enum"] = [str(v) for v in spec["enum"]]
    return out


def arguments_schema(tool: Tool) -> dict:
    """The tool's parameters as a JSON schema: each one's type (BFCL's `dict`, `float`,
    `tuple` mapped to JSON's), its required ones, nothing else."""
    props = (tool.schema or {}).get("properties") or {}
    required = [r for r in (tool.schema or {}).get("required") or [] if r in props]
    return {"type": "object", "additionalProperties": False, "required": required,
            "properties": {k: _param_schema(v) for k, v in props.items()}}


def schema(tools: list[Tool]) -> dict:
    """`{"calls": [...]}` where each call is one of `tools` with that tool's arguments."""
    one_of = [{"type": "object", "required": ["name", "arguments"], "additionalProperties": False,
               "properties": {"name": {"const": t.name}, "arguments": arguments_schema(t)}}
              for t in tools]
    return {"type": "object", "required": ["calls"], "additionalProperties": False,
            "properties": {"calls": {"type": "array", "maxItems": 8, "items": {"anyOf": one_of}}}}


def body(model: str, item: Item, shortlist: list[Tool], *, max_tokens: int,
         structured: bool) -> dict:
    b: dict = {"model": model, "messages": messages(item, shortlist), "max_tokens": max_tokens,
               "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    if structured:
        b["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "calls", "schema": schema(shortlist)}}
    return b


_NAME = re.compile(r'"name"\s*:\s*"([^"]+)"')


def parse(text: str) -> tuple[list[dict], bool]:
    """The calls in a reply, and whether the reply was well-formed JSON of that shape.
    A reply that is not falls back to the `"name": "..."` pairs found in it."""
    start = text.find("{")
    if start >= 0:
        try:
            obj, _ = json.JSONDecoder().raw_decode(text[start:])
        except ValueError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("calls"), list):
            calls = [c for c in obj["calls"] if isinstance(c, dict)
                     and isinstance(c.get("name"), str)]
            for c in calls:
                if not isinstance(c.get("arguments"), dict):
                    c["arguments"] = {}
            return calls, len(calls) == len(obj["calls"])
    return [{"name": n, "arguments": {}} for n in _NAME.findall(text)], False
