"""What the simulator-fidelity suite reads and writes around its runs.

Why here: the suite fits the simulator's cost models from raw request records
and files the fit and the comparison into run summaries after the runs end;
both touch tables directly, so they live behind the store's door with the
rest of the SQL. Every function takes an open Store.
"""

from __future__ import annotations

import json
from typing import Any

from store.db import Store

_REQUEST_COLUMNS = ("request_id", "request_class", "status", "backend", "prompt_tokens",
                    "output_tokens", "n_texts", "t_sent", "t_dispatched", "t_first_token",
                    "t_done")


def completed_requests(store: Store, run_id: int) -> list[dict[str, Any]]:
    """The run's completed raw request records, one dict each (keys: _REQUEST_COLUMNS)."""
    sql = (f"SELECT {', '.join(_REQUEST_COLUMNS)} FROM request "
           "WHERE run_id=? AND status='completed'")
    with store.connection() as conn:
        rows = conn.execute(sql, (run_id,)).fetchall()
    return [dict(zip(_REQUEST_COLUMNS, r, strict=True)) for r in rows]


def merge_summary_extra(store: Store, run_id: int, extra: dict[str, Any]) -> None:
    """Merge `extra` into the `extra_json` of every class row of the run's summary.

    Why merge, not replace: the suite adds its results (calibration, fidelity)
    beside what the run itself stored there, in one transaction.
    """
    with store.transaction() as conn:
        for sid, text in conn.execute("SELECT id, extra_json FROM summary WHERE run_id=?",
                                      (run_id,)).fetchall():
            merged = {**json.loads(text or "{}"), **extra}
            conn.execute("UPDATE summary SET extra_json=? WHERE id=?",
                         (json.dumps(merged, sort_keys=True, default=str), sid))
