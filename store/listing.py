"""Each run's summaries rendered once, for `sagetui runs list --format json|csv`.

Why a rendered copy (table `run_listing`): 10,000 runs hold 40,000 summaries
with ~1,000,000 numbers; formatting them at every listing took 0.5 s (JSON,
SQLite's float printing) and 1.4 s (CSV, Python's json and csv modules), over
the 0.3 s a listing may take. A run's summaries are written once, by
RunWriter.add_summaries, which renders them here in the same transaction;
a listing then splices stored text. Runs whose summary rows were written
another way (direct SQL) have no row here and are rendered at listing time
from the summary rows, with the same functions, so both paths print the same.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3

SUMMARY_SCALARS = ("issued", "completed", "failed", "rejected", "throughput_rps",
                   "throughput_tok_s", "goodput_rps", "slo_attainment", "target_rate_rps",
                   "achieved_rate_rps", "lateness_p99_ms")


def _q(expr: str) -> str:
    return f"json_quote({expr})"


def summary_json_sql(run_id: str = "r.id") -> str:
    """SQL for the JSON object {class: {scalars.., metrics, extra}} of run `run_id`:
    scalars through json_quote, the stored metrics/extra JSON text spliced as is."""
    fields = " || ',' || ".join(f"'\"{c}\":' || {_q('s.' + c)}" for c in SUMMARY_SCALARS)
    return ("'{' || COALESCE((SELECT group_concat(" + _q("s.request_class") + " || ':{' || "
            + fields + " || ',\"metrics\":' || s.metrics_json || ',\"extra\":' || s.extra_json"
            f" || '}}', ',') FROM summary s WHERE s.run_id = {run_id}), '') || '}}'")


def flat_summaries(conn: sqlite3.Connection, run_filter: str, params=()) -> dict[int, dict]:
    """{run_id: {"chat.throughput_rps": .., "chat.ttft.p99_ms": ..}} for the runs whose ids
    `run_filter` (SQL: `IN (...)` or `= ?`) selects: the summary scalars plus p50/p99 of
    every latency metric."""
    out: dict[int, dict] = {}
    cols = ", ".join(f"s.{c}" for c in SUMMARY_SCALARS)
    rows = conn.execute(f"SELECT s.run_id, s.request_class, {cols}, s.metrics_json "
                        f"FROM summary s WHERE s.run_id {run_filter}", params)
    for run_id, cls, *vals, metrics in rows.fetchall():
        d = out.setdefault(run_id, {})
        for c, v in zip(SUMMARY_SCALARS, vals, strict=True):
            d[f"{cls}.{c}"] = v
        for metric, dist in json.loads(metrics or "{}").items():
            dist = dist or {}
            d[f"{cls}.{metric}.p50_ms"] = dist.get("p50")
            d[f"{cls}.{metric}.p99_ms"] = dist.get("p99")
    return out


def csv_line(values) -> str:
    """One CSV record without its line end (None is an empty cell, a list joins with ',')."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(
        ["" if v is None else ",".join(map(str, v)) if isinstance(v, list) else v
         for v in values])
    return buf.getvalue()


def flat_fragment(flat: dict) -> tuple[str, str]:
    """(keys as a JSON list, values as CSV cells in that order) of one run's flat summary."""
    keys = sorted(flat)
    return json.dumps(keys), csv_line([flat[k] for k in keys])


def render(conn: sqlite3.Connection, run_ids: list[int]) -> None:
    """(Re)write the listing rows of `run_ids` from their summary rows, inside the
    caller's transaction (one summary scan per 900 runs, one insert per run)."""
    sql = ("INSERT OR REPLACE INTO run_listing(run_id, summary_json, flat_keys_json, flat_csv) "
           f"SELECT r.id, {summary_json_sql()}, ?, ? FROM run r WHERE r.id = ?")
    for i in range(0, len(run_ids), 900):
        chunk = run_ids[i:i + 900]
        flat = flat_summaries(conn, f"IN ({','.join('?' * len(chunk))})", chunk)
        conn.executemany(sql, [(*flat_fragment(flat.get(rid, {})), rid) for rid in chunk])


def render_missing(conn: sqlite3.Connection) -> int:
    """Render every run that has summaries but no listing row (a store upgraded to
    schema 4); returns how many."""
    ids = [r[0] for r in conn.execute(
        "SELECT DISTINCT s.run_id FROM summary s WHERE s.run_id NOT IN "
        "(SELECT run_id FROM run_listing) AND s.run_id IN (SELECT id FROM run)")]
    render(conn, ids)
    return len(ids)
