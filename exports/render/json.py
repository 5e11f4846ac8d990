"""JSON: the table with full-precision values, caption, footnotes and the run ids behind it."""

from __future__ import annotations

import json as _json

from exports.table import Table, plain


def render(table: Table) -> str:
    doc = {
        "table": table.name,
        "caption": table.full_caption(),
        "columns": [{"key": c.key, "header": c.header} for c in table.columns],
        "rows": [{c.key: plain(r.get(c.key)) for c in table.columns} for r in table.rows],
        "footnotes": table.footnotes,
        "runs": table.run_ids,
    }
    return _json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
