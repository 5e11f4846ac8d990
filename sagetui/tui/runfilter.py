"""The Runs table's filter language and sort keys (pure functions, no textual).

Why a small language: researchers find runs by what they configured.
A filter is whitespace-separated terms, all of which must match:

- `word` — case-insensitive substring of name, experiment, mode, policy,
  baseline, status or a tag;
- `key=value` (also `!=`, `<`, `<=`, `>`, `>=`) — `key` is a column of the
  table (`status`, `mode`, `policy`, `tag`, ...) or a dotted path into the
  resolved config (`workload.rate`, `backends.0.kind`); a bare config key such
  as `rate` matches that key at any depth.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sagetui.tui.data import RunRow, config_get

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "!=": operator.ne, "<=": operator.le, ">=": operator.ge,
    "=": operator.eq, "<": operator.lt, ">": operator.gt,
}
_TERM = re.compile(r"^([A-Za-z_][\w.\-]*)(!=|<=|>=|=|<|>)(.*)$")

# Table columns: (RunRow attribute, header, width). Fixed widths: the table
# never measures cells, which keeps a page of runs cheap to draw.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("id", "id", 5), ("name", "name", 20), ("status", "status", 11), ("policy", "policy", 9),
    ("baseline", "baseline", 8), ("offered_rps", "offered", 7), ("throughput_rps", "thr r/s", 7),
    ("chat_ttft_p99_ms", "chatTTFT99", 10), ("slo_attainment", "SLO", 6), ("mode", "mode", 4),
    ("experiment", "exp/suite", 12), ("backends", "be", 2), ("started", "started", 11),
    ("tags", "tags", 12),
)
_COLUMN_KEYS = {key for key, _, _ in COLUMNS} | {"tag"}
_TEXT_FIELDS = ("name", "experiment", "mode", "policy", "baseline", "status")


class FilterError(ValueError):
    """A filter term that cannot be understood; the message names it."""


@dataclass(frozen=True, slots=True)
class Term:
    key: str | None  # None: free text
    op: str
    value: str


def parse(text: str) -> list[Term]:
    terms = []
    for raw in text.split():
        m = _TERM.match(raw)
        if m is None:
            if any(op in raw for op in ("=", "<", ">")):
                raise FilterError(f"filter term {raw!r}: expected key=value")
            terms.append(Term(None, "~", raw.lower()))
            continue
        key, op, value = m.groups()
        if value == "":
            raise FilterError(f"filter term {raw!r}: missing value after {op!r}")
        terms.append(Term(key, op, value))
    return terms


def _coerce(actual: Any, wanted: str) -> tuple[Any, Any]:
    """Compare numbers as numbers and everything else as lower-case text."""
    if isinstance(actual, bool):
        return str(actual).lower(), wanted.lower()
    if isinstance(actual, int | float):
        try:
            return float(actual), float(wanted)
        except ValueError:
            pass
    return str(actual).lower(), wanted.lower()


def _find_key(node: Any, key: str) -> list[Any]:
    found: list[Any] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                found.append(v)
            found.extend(_find_key(v, key))
    elif isinstance(node, list):
        for v in node:
            found.extend(_find_key(v, key))
    return found


def _values(row: RunRow, key: str) -> list[Any]:
    if key in ("tag", "tags"):
        return list(row.tags)
    if key in _COLUMN_KEYS:
        return [getattr(row, key)]
    if "." in key:
        value = config_get(row.config, key)
        return [] if value is None else [value]
    return _find_key(row.config, key)


def _matches(row: RunRow, term: Term) -> bool:
    if term.key is None:
        hay = [str(getattr(row, f)).lower() for f in _TEXT_FIELDS] + [t.lower() for t in row.tags]
        return any(term.value in h for h in hay)
    op = _OPS[term.op]
    for actual in _values(row, term.key):
        if actual is None or isinstance(actual, dict | list):
            continue
        a, w = _coerce(actual, term.value)
        try:
            if op(a, w):
                return True
        except TypeError:
            continue
    return term.op == "!=" and not _values(row, term.key)


def apply(rows: Iterable[RunRow], terms: list[Term]) -> list[RunRow]:
    return [r for r in rows if all(_matches(r, t) for t in terms)]


def sort_rows(rows: list[RunRow], key: str, reverse: bool) -> list[RunRow]:
    """Sort by a column; missing values always go last."""
    present = [r for r in rows if getattr(r, key) not in (None, "", ())]
    missing = [r for r in rows if getattr(r, key) in (None, "", ())]
    present.sort(key=lambda r: getattr(r, key), reverse=reverse)
    return present + missing
