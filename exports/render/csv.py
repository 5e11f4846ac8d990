"""CSV: one column per value; an estimate spreads over mean, CI bounds and n columns."""

from __future__ import annotations

import csv as _csv
import io

from exports.stats import Estimate
from exports.table import Table


def render(table: Table) -> str:
    est = [any(isinstance(r.get(c.key), Estimate) for r in table.rows) for c in table.columns]
    header: list[str] = []
    for c, e in zip(table.columns, est, strict=True):
        header.append(c.header)
        if e:
            header += [f"{c.header} CI95 low", f"{c.header} CI95 high", f"{c.header} n"]
    buf = io.StringIO()
    w = _csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in table.rows:
        out: list[object] = []
        for c, e in zip(table.columns, est, strict=True):
            v = row.get(c.key)
            if isinstance(v, Estimate):
                out += [repr(v.mean), repr(v.low), repr(v.high), v.n]
            else:
                out.append("" if v is None else repr(v) if isinstance(v, float) else v)
                if e:
                    out += ["", "", ""]
        w.writerow(out)
    return buf.getvalue()
