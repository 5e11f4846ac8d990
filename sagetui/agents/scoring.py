"""Per-item scores: function names, and arguments where BFCL's answers allow.

The argument check is a simplified form of BFCL's AST checker: a call is right
when its function is the answer's and every parameter the answer lists is
either given with one of the allowed values or omitted where the answer allows
omitting it (`""` among the allowed values), and it gives no parameter the
answer does not list. Values compare after BFCL's normalisation: strings
lower-cased without spaces and punctuation (`,./-_*^`), numbers by value (an
int matches the same float), lists element by element, objects key by key.
"""

from __future__ import annotations

import re
from collections import Counter

_STRIP = re.compile(r"[ ,./\-_*^]")


def _norm_str(s: str) -> str:
    return _STRIP.sub("", s.lower()).replace("'", '"')


def value_matches(given, allowed) -> bool:
    """`given` equals the allowed value `allowed` (after normalisation)."""
    if isinstance(allowed, bool) or isinstance(given, bool):
        return isinstance(allowed, bool) and isinstance(given, bool) and given == allowed
    if isinstance(allowed, int | float):
        if isinstance(given, str):
            try:
                given = float(given)
            except ValueError:
                return False
        return isinstance(given, int | float) and abs(float(given) - float(allowed)) < 1e-9
    if isinstance(allowed, str):
        return isinstance(given, str) and _norm_str(given) == _norm_str(allowed)
    if isinstance(allowed, list):
        return (isinstance(given, list) and len(given) == len(allowed)
                and all(value_matches(g, a) for g, a in zip(given, allowed, strict=True)))
    if isinstance(allowed, dict):
        # a nested object: each key's value is itself a list of allowed values
        if not isinstance(given, dict):
            return False
        return args_match(given, allowed)
    return given == allowed


def args_match(given: dict, allowed: dict[str, list]) -> bool:
    """Every parameter of the answer given rightly or rightly omitted; none extra."""
    if not isinstance(given, dict):
        return False
    if set(given) - set(allowed):
        return False
    for param, values in allowed.items():
        values = values if isinstance(values, list) else [values]
        if param not in given:
            if "" not in values:
                return False
            continue
        if not any(value_matches(given[param], v) for v in values if v != ""):
            return False
    return True


def call_matches(call: dict, answer: list[dict]) -> bool:
    """A predicted call `{"name", "arguments"}` against a one-call BFCL answer."""
    if not answer or not isinstance(call, dict):
        return False
    (name, allowed), = answer[0].items()
    return call.get("name") == name and args_match(call.get("arguments") or {}, allowed)


def multiset_f1(predicted: list[str], gold: list[str]) -> float:
    """F1 of the names as multisets (a plan calling the same function twice counts twice)."""
    if not predicted and not gold:
        return 1.0
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    p, r = common / len(predicted), common / len(gold)
    return 2 * p * r / (p + r)


def plan_exact(predicted: list[str], gold: list[str], ordered: bool) -> bool:
    """The same calls; in the same order where the order is part of the answer."""
    return predicted == gold if ordered else Counter(predicted) == Counter(gold)


def example_args(allowed: dict) -> dict:
    """One right argument set for an answer: each parameter's first allowed value
    (objects inside filled the same way); optional parameters left out."""
    def concrete(v):
        if isinstance(v, dict):
            return example_args(v)
        if isinstance(v, list):
            return [concrete(e) for e in v]
        return v

    out = {}
    for k, alts in allowed.items():
        alts = alts if isinstance(alts, list) else [alts]
        if alts and alts[0] != "":
            out[k] = concrete(alts[0])
    return out
