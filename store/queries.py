"""The read side: what `sagetui runs`, the TUI and exports ask of the store.

Why plain SQL over raw connections: `runs list` over 10,000 runs must take
under 0.3 s and a run's full summary under 50 ms; ORM object construction
would eat that budget. Every function returns plain dicts/lists (JSON-ready).
"""

from __future__ import annotations

import csv
import json
import math
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from store import listing
from store.constants import RUN_STATUSES
from store.db import Store, _validate, connect
from store.errors import RunNotFound, StoreError

if TYPE_CHECKING:
    import numpy as np

# numpy and store.histograms (hdrh) are imported inside the functions that use
# them: `sagetui runs list` reads none of them and must start in well under 0.3 s.

_LIST_COLUMNS = ("r.id, r.name, e.name, r.experiment_id, e.suite, r.status, r.status_reason, "
                 "r.mode, r.created, r.started, r.ended, r.seed, r.repetition, r.tags, "
                 "r.config_hash, r.requests_done, r.requests_planned, r.duration_s, r.warmup_s")
_LIST_KEYS = ("id", "name", "experiment", "experiment_id", "suite", "status", "status_reason",
              "mode", "created", "started", "ended", "seed", "repetition", "tags", "config_hash",
              "requests_done", "requests_planned", "duration_s", "warmup_s")

# --- parsing user filters ------------------------------------------------------

_REL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_REL_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_WHERE = re.compile(r"^\s*([A-Za-z_][\w-]*(?:\.(?:[A-Za-z_][\w-]*|\d+))*)\s*"
                    r"(==|=|!=|<=|>=|<|>)\s*(.*?)\s*$")


def parse_since(text: str, now: datetime | None = None) -> str:
    """`2026-11-25`, `2026-11-25T10:00`, or a relative age `30m`/`2h`/`7d` -> UTC ISO text."""
    now = now or datetime.now(UTC)
    m = _REL.match(text)
    if m:
        moment = now - timedelta(**{_REL_UNITS[m.group(2)]: float(m.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise StoreError(f"since: {text!r} is not an ISO-8601 date/time "
                             "(2026-11-25, 2026-11-25T10:00) or an age like 30m, 2h, 7d") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_where(expr: str) -> tuple[str, str, object]:
    """`control_plane.policy=hybrid` -> (JSON path `$."control_plane"."policy"`, op, value).

    The value is read as JSON when it parses (numbers, true/false, null,
    "quoted text"), else as plain text. Operators: = == != < <= > >=.
    """
    m = _WHERE.match(expr)
    if not m or not m.group(3):
        raise StoreError(f"where: {expr!r} is not PATH=VALUE (e.g. control_plane.policy=hybrid; "
                         "operators = != < <= > >=)")
    path = "$"
    for seg in m.group(1).split("."):
        path += f"[{seg}]" if seg.isdigit() else f'."{seg}"'
    raw = m.group(3)
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    if isinstance(value, dict | list):
        raise StoreError(f"where: {expr!r}: compare against a scalar, not {type(value).__name__}")
    op = "=" if m.group(2) == "==" else m.group(2)
    if value is None and op not in ("=", "!="):
        raise StoreError(f"where: {expr!r}: null only works with = or !=")
    return path, op, value


def _where_sql(expr: str) -> tuple[str, list]:
    path, op, value = parse_where(expr)
    col = "json_extract(r.config_json, ?)"
    if value is None:
        return f"{col} IS {'NOT ' if op == '!=' else ''}NULL", [path]
    if isinstance(value, bool):
        value = int(value)
    if op == "=" and not isinstance(value, str):
        # A number also matches the same text ("8" in a TOML string field).
        return f"({col} = ? OR {col} = ?)", [path, value, path, str(value)]
    return f"{col} {op} ?", [path, value]


# --- listing ---------------------------------------------------------------------

def _selection(*, status: str | None = None, tag: str | None = None, suite: str | None = None,
               since: str | None = None, last: int | None = None,
               where: tuple[str, ...] | list[str] = (), experiment_id: int | None = None,
               include_deleted: bool = False) -> tuple[str, list]:
    """FROM .. WHERE .. ORDER BY id DESC [LIMIT] of the selected runs, and its parameters.

    Shared by list_runs, list_runs_json and flat_summaries so every view of
    `runs list` selects exactly the same runs.
    """
    clauses: list[str] = []
    params: list[object] = []
    if not include_deleted:
        clauses.append("r.deleted = 0")
    if status is not None:
        if status not in RUN_STATUSES:
            raise StoreError(f"status: {status!r} is not one of {', '.join(RUN_STATUSES)}")
        clauses.append("r.status = ?")
        params.append(status)
    if tag is not None:
        clauses.append("r.id IN (SELECT run_id FROM run_tag WHERE tag = ?)")
        params.append(tag)
    if suite is not None:
        clauses.append("e.suite = ?")
        params.append(suite)
    if since is not None:
        clauses.append("COALESCE(r.started, r.created) >= ?")
        params.append(parse_since(since))
    if experiment_id is not None:
        clauses.append("r.experiment_id = ?")
        params.append(experiment_id)
    for expr in where:
        sql, p = _where_sql(expr)
        clauses.append(sql)
        params.extend(p)
    if last is not None and last < 1:
        raise StoreError(f"last: must be a positive number of runs, got {last}")
    sql = (" FROM run r LEFT JOIN experiment e ON e.id = r.experiment_id"
           + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
           + " ORDER BY r.id DESC" + (" LIMIT ?" if last is not None else ""))
    if last is not None:
        params.append(last)
    return sql, params


def list_runs(store: Store, *, with_config: bool = False, **filters) -> list[dict]:
    """Runs matching every filter, oldest first (`last` keeps the newest N).

    Filters: status, tag, suite, since (ISO date/time or age like 2h), last,
    where (["a.b=v", ...] over the resolved config), experiment_id, include_deleted.
    """
    sel, params = _selection(**filters)
    cols = _LIST_COLUMNS + (", r.config_json" if with_config else "")
    with store.connection() as conn:
        rows = conn.execute(f"SELECT {cols}{sel}", params).fetchall()
    rows.reverse()
    out = []
    for row in rows:
        d = dict(zip(_LIST_KEYS, row, strict=False))
        d["tags"] = d["tags"].split(",") if d["tags"] else []
        if with_config:
            d["config"] = json.loads(row[-1])
        out.append(d)
    return out


_LIST_SQL = dict(zip(_LIST_KEYS, _LIST_COLUMNS.split(", "), strict=True))


def list_rows(store: Store, fields: tuple[str, ...], **filters) -> list[tuple]:
    """The same runs as list_runs, as tuples of only `fields` (keys of list_runs' dicts;
    `tags` stays comma-separated text): the table of `runs list` reads 7 of 19 columns,
    and over 10,000 runs the other 12 and the dicts cost more than the query."""
    unknown = [f for f in fields if f not in _LIST_SQL]
    if unknown:
        raise StoreError(f"fields: unknown {', '.join(unknown)}; known: {', '.join(_LIST_SQL)}")
    sel, params = _selection(**filters)
    with store.connection() as conn:
        rows = conn.execute(f"SELECT {', '.join(_LIST_SQL[f] for f in fields)}{sel}",
                            params).fetchall()
    rows.reverse()
    return rows


# One run as JSON, as UTF-8 bytes in three pieces: its fields quoted inside SQLite
# (json_quote: escaping, null) into one head, then the stored JSON text of its config
# and of its pre-rendered summary (run_listing) as they are — never parsed, re-encoded
# or concatenated, and handed over as BLOBs so Python neither decodes nor re-encodes
# ~60 MB for 10,000 runs. A run without a run_listing row gets its summary rendered
# here from its summary rows.
_RUN_FIELDS = (("id", "r.id"), ("name", "r.name"), ("experiment", "e.name"),
               ("suite", "e.suite"), ("status", "r.status"), ("status_reason", "r.status_reason"),
               ("mode", "r.mode"), ("created", "r.created"), ("started", "r.started"),
               ("ended", "r.ended"), ("seed", "r.seed"), ("repetition", "r.repetition"),
               ("config_hash", "r.config_hash"))
_RUN_JSON = (
    "SELECT CAST(printf('{" + ",".join(f'"{k}":%s' for k, _ in _RUN_FIELDS)
    + ",\"tags\":%s,\"config\":', " + ", ".join(f"json_quote({v})" for _, v in _RUN_FIELDS)
    + ", (SELECT json_group_array(tag) FROM (SELECT tag FROM run_tag t WHERE t.run_id = r.id "
      "ORDER BY tag))) AS BLOB), CAST(r.config_json AS BLOB), CAST(COALESCE((SELECT "
      "l.summary_json FROM run_listing l WHERE l.run_id = r.id), "
    + listing.summary_json_sql() + ") AS BLOB)")


def list_runs_json(store: Store, **filters) -> str:
    """The selected runs as JSON text: a list of objects with id, name, experiment, status,
    mode, started, ended, seed, repetition, tags, config (resolved) and summary per class
    ({cls: {issued, ..., slo_attainment, metrics: {metric: {p50, .., p999, mean, count}}}})."""
    return b"".join(iter_runs_json(store, **filters)).decode()


def iter_runs_json(store: Store, **filters) -> Iterator[bytes]:
    """list_runs_json's text as UTF-8 pieces, to be written as they come: joining them
    first would copy ~60 MB for 10,000 runs once more."""
    sel, params = _selection(**filters)
    with store.connection() as conn:
        rows = conn.execute(_RUN_JSON + sel, params).fetchall()
    if not rows:
        yield b"[]"
        return
    rows.reverse()
    yield b"[\n"
    for i, (head, config, summary) in enumerate(rows):
        if i:
            yield b",\n"
        yield from (head, config, b',"summary":', summary, b"}")
    yield b"\n]"


# `runs list --format csv`: these columns, then the flattened summary columns.
CSV_BASE = ("id", "name", "experiment", "status", "mode", "started", "tags", "ended",
            "config_hash")
_CSV_SQL = ("SELECT r.id, r.name, e.name, r.status, r.mode, r.started, r.tags, r.ended, "
            "r.config_hash, l.flat_keys_json, l.flat_csv")


def list_runs_csv(store: Store, **filters) -> str:
    """The selected runs as CSV text: CSV_BASE, then every flattened summary column any of
    them has ("chat.throughput_rps", "chat.ttft.p99_ms", ...), sorted; empty cells where
    a run has none. Rows splice each run's pre-rendered cells (run_listing)."""
    sel, params = _selection(**filters)
    with store.connection() as conn:
        rows = conn.execute(_CSV_SQL + sel.replace(
            " LEFT JOIN experiment e", " LEFT JOIN run_listing l ON l.run_id = r.id"
            " LEFT JOIN experiment e", 1), params).fetchall()
        missing = [r[0] for r in rows if r[9] is None]
        fallback = _flat_for(conn, missing)
    rows.reverse()
    key_lists = {k: json.loads(k) for k in {r[9] for r in rows if r[9] is not None}}
    keys = sorted({k for ks in key_lists.values() for k in ks} | {k for f in fallback.values()
                                                                   for k in f})
    lines = [listing.csv_line([*CSV_BASE, *keys])]
    for *base, flat_keys, flat_csv in rows:
        if flat_keys is not None and key_lists[flat_keys] == keys:
            cells = flat_csv
        else:
            flat = fallback.get(base[0]) if flat_keys is None else dict(zip(
                key_lists[flat_keys], next(csv.reader([flat_csv])) if flat_csv else (),
                strict=True))
            cells = listing.csv_line([(flat or {}).get(k) for k in keys])
        head = listing.csv_line(base)
        lines.append(f"{head},{cells}" if keys else head)
    return "\n".join(lines)


def _flat_for(conn: sqlite3.Connection, run_ids: list[int]) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for i in range(0, len(run_ids), 900):
        chunk = run_ids[i:i + 900]
        out.update(listing.flat_summaries(conn, f"IN ({','.join('?' * len(chunk))})", chunk))
    return out


def flat_summaries(store: Store, **filters) -> dict[int, dict[str, float | None]]:
    """{run_id: {"chat.throughput_rps": .., "chat.ttft.p99_ms": ..}} for the selected runs:
    the summary scalars plus p50/p99 of every latency metric, flattened for CSV."""
    sel, params = _selection(**filters)
    with store.connection() as conn:
        return listing.flat_summaries(conn, f"IN (SELECT r.id{sel})", params)


def summaries_for(store: Store, run_ids: list[int]) -> dict[int, dict[str, dict]]:
    """{run_id: {class: summary}} with metrics_json/extra_json parsed to `metrics`/`extra`."""
    out: dict[int, dict[str, dict]] = {rid: {} for rid in run_ids}
    if not run_ids:
        return out
    with store.connection() as conn:
        conn.row_factory = sqlite3.Row
        try:
            for chunk_start in range(0, len(run_ids), 900):
                chunk = run_ids[chunk_start:chunk_start + 900]
                q = f"SELECT * FROM summary WHERE run_id IN ({','.join('?' * len(chunk))})"
                for row in conn.execute(q, chunk):
                    d = dict(row)
                    d["metrics"] = json.loads(d.pop("metrics_json"))
                    d["extra"] = json.loads(d.pop("extra_json"))
                    del d["id"]
                    out[d.pop("run_id")][d["request_class"]] = d
        finally:
            conn.row_factory = None
    return out


# --- one run -----------------------------------------------------------------------

def _rows(conn: sqlite3.Connection, sql: str, params=()) -> list[dict]:
    cur = conn.execute(sql, params)
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _json_fields(d: dict) -> dict:
    for key in [k for k in d if k.endswith("_json")]:
        d[key[:-5]] = json.loads(d.pop(key)) if d[key] else None
    return d


def get_run(store: Store, run_id: int, *, include_deleted: bool = False) -> dict:
    """Everything about one run except raw samples/requests: config, hardware,
    software, tags, backends, per-class summary, events, histogram index, the run it
    reruns (`rerun_of`) and its reruns (`reruns`)."""
    with store.connection() as conn:
        rows = _rows(conn, "SELECT r.*, e.name AS experiment, e.suite AS suite FROM run r "
                           "LEFT JOIN experiment e ON e.id = r.experiment_id WHERE r.id = ?",
                     (run_id,))
        if not rows or (rows[0]["deleted"] and not include_deleted):
            raise RunNotFound(f"run {run_id}: not found in {store.path}")
        run = _json_fields(rows[0])
        run["tags"] = run["tags"].split(",") if run["tags"] else []
        hw = _rows(conn, "SELECT * FROM hardware WHERE id = ?", (run["hardware_id"],))
        run["hardware"] = _json_fields(hw[0]) if hw else None
        run["backends"] = [_json_fields(b) for b in _rows(
            conn, "SELECT * FROM backend WHERE run_id = ? ORDER BY id", (run_id,))]
        run["events"] = [_json_fields(e) for e in _rows(
            conn, "SELECT t_s, kind, subject, message, data_json FROM event WHERE run_id = ? "
                  "ORDER BY t_s, id", (run_id,))]
        run["histograms"] = _rows(
            conn, "SELECT metric, request_class, COUNT(*) AS pieces, "
                  "SUM(window_start_s IS NULL) AS whole, MAX(CASE WHEN window_start_s IS NULL "
                  "THEN count END) AS count FROM histogram WHERE run_id = ? "
                  "GROUP BY metric, request_class ORDER BY metric, request_class", (run_id,))
        run["samples"] = conn.execute("SELECT COUNT(*) FROM sample WHERE run_id = ?",
                                      (run_id,)).fetchone()[0]
        run["requests"] = conn.execute("SELECT COUNT(*) FROM request WHERE run_id = ?",
                                       (run_id,)).fetchone()[0]
    run["summary"] = summaries_for(store, [run_id])[run_id]
    from store.reruns import reruns_of

    run["reruns"] = reruns_of(store, run_id)  # `rerun_of` (the original) comes with r.*
    return run


def samples(store: Store, run_id: int, *, after_t: float | None = None) -> list[dict]:
    """Per-second samples in time order (after_t: only newer ones, for live polling)."""
    with store.connection() as conn:
        rows = _rows(conn, "SELECT * FROM sample WHERE run_id = ? AND t_s > ? ORDER BY t_s, id",
                     (run_id, -1e18 if after_t is None else after_t))
    for r in rows:
        del r["id"], r["run_id"]
        _json_fields(r)
    return rows


def events(store: Store, run_id: int) -> list[dict]:
    with store.connection() as conn:
        return [_json_fields(e) for e in _rows(
            conn, "SELECT t_s, kind, subject, message, data_json FROM event WHERE run_id = ? "
                  "ORDER BY t_s, id", (run_id,))]


def histograms(store: Store, run_id: int, *, metric: str | None = None, cls: str | None = None,
               windows: bool = False) -> list[tuple]:
    """[(metric, cls, window_start_s, window_s, HdrHistogram)]; whole-run ones unless windows."""
    sql = ("SELECT metric, request_class, window_start_s, window_s, encoded FROM histogram "
           "WHERE run_id = ? AND window_start_s IS " + ("NOT NULL" if windows else "NULL"))
    params: list = [run_id]
    if metric is not None:
        sql += " AND metric = ?"
        params.append(metric)
    if cls is not None:
        sql += " AND request_class = ?"
        params.append(cls)
    from store import histograms as hg

    with store.connection() as conn:
        rows = conn.execute(sql + " ORDER BY metric, request_class, window_start_s",
                            params).fetchall()
    return [(m, c, s, w, hg.decode(b)) for m, c, s, w, b in rows]


def merged_histogram(store: Store, run_ids: list[int], metric: str, cls: str):
    """One HdrHistogram over the whole-run histograms of several runs (repetitions)."""
    from store import histograms as hg

    hs = [h for rid in run_ids for *_, h in histograms(store, rid, metric=metric, cls=cls)]
    return hg.merge(hs)


def suite_names(store: Store) -> list[str]:
    """Names of the suites whose experiments hold runs (for shell completion of --suite)."""
    with store.connection() as conn:
        return [r[0] for r in conn.execute(
            "SELECT DISTINCT e.suite FROM experiment e WHERE e.suite IS NOT NULL AND EXISTS "
            "(SELECT 1 FROM run r WHERE r.experiment_id = e.id AND r.deleted = 0) "
            "ORDER BY e.suite")]


def repetitions(store: Store, run_id: int) -> list[int]:
    """Ids of the run and its repetitions: same experiment and config hash, not deleted."""
    with store.connection() as conn:
        row = conn.execute("SELECT experiment_id, config_hash, deleted FROM run WHERE id = ?",
                           (run_id,)).fetchone()
        if row is None or row[2]:
            raise RunNotFound(f"run {run_id}: not found in {store.path}")
        return [r[0] for r in conn.execute(
            "SELECT id FROM run WHERE (experiment_id IS ? AND config_hash = ? AND deleted = 0 "
            "AND status = 'completed') OR id = ? ORDER BY id", (row[0], row[1], run_id))]


# --- tags, delete ------------------------------------------------------------------

def _require_run(conn: sqlite3.Connection, store: Store, run_id: int) -> None:
    if conn.execute("SELECT 1 FROM run WHERE id = ? AND deleted = 0",
                    (run_id,)).fetchone() is None:
        raise RunNotFound(f"run {run_id}: not found in {store.path}")


def _sync_tags(conn: sqlite3.Connection, run_id: int) -> list[str]:
    tags = [r[0] for r in conn.execute("SELECT tag FROM run_tag WHERE run_id = ? ORDER BY tag",
                                       (run_id,))]
    conn.execute("UPDATE run SET tags = ? WHERE id = ?", (",".join(tags), run_id))
    return tags


def tag_run(store: Store, run_id: int, tags: list[str]) -> list[str]:
    """Add tags; returns the run's tags afterwards."""
    for t in tags:
        if not t.strip() or "," in t:
            raise StoreError(f"tag: {t!r} is not a tag (non-empty text without commas)")
    with store.transaction() as conn:
        _require_run(conn, store, run_id)
        conn.executemany("INSERT OR IGNORE INTO run_tag(run_id, tag) VALUES (?, ?)",
                         [(run_id, t.strip()) for t in tags])
        return _sync_tags(conn, run_id)


def untag_run(store: Store, run_id: int, tags: list[str]) -> list[str]:
    with store.transaction() as conn:
        _require_run(conn, store, run_id)
        conn.executemany("DELETE FROM run_tag WHERE run_id = ? AND tag = ?",
                         [(run_id, t.strip()) for t in tags])
        return _sync_tags(conn, run_id)


_CHILD_TABLES = ("run_tag", "backend", "histogram", "summary", "sample", "event", "request",
                 "run_listing")


def delete_run(store: Store, run_id: int, *, purge: bool = False) -> None:
    """Soft delete (hidden from every query) or, with purge, remove every row of the run."""
    with store.transaction() as conn:
        row = conn.execute("SELECT status, deleted FROM run WHERE id = ?", (run_id,)).fetchone()
        if row is None or (row[1] and not purge):
            raise RunNotFound(f"run {run_id}: not found in {store.path}")
        if row[0] == "running":
            raise StoreError(f"run {run_id}: still running; stop it before deleting")
        if purge:
            for table in _CHILD_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            # Its reruns stay, no longer linked (the id they named is gone for good).
            conn.execute("UPDATE run SET rerun_of = NULL WHERE rerun_of = ?", (run_id,))
            conn.execute("DELETE FROM run WHERE id = ?", (run_id,))
        else:
            conn.execute("UPDATE run SET deleted = 1 WHERE id = ?", (run_id,))


# --- read-only SQL -----------------------------------------------------------------

_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
            sqlite3.SQLITE_RECURSIVE}
_READ_PRAGMAS = {"table_info", "table_xinfo", "table_list", "index_list", "index_info",
                 "foreign_key_list", "database_list", "user_version", "schema_version"}


def _authorize(action, arg1, arg2, _db, _trigger):
    if action in _ALLOWED:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and arg1 in _READ_PRAGMAS and arg2 is None:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def run_sql(path: str | Path, sql: str, params=()) -> tuple[list[str], list[tuple]]:
    """Run one read-only statement: (column names, rows).

    Three locks: the file is opened `mode=ro`, `PRAGMA query_only` is on, and an
    authorizer denies anything but reading — so INSERT/UPDATE/DELETE/DDL/ATTACH
    are refused before they run.
    """
    path = Path(path)
    version = _validate(path)
    if version is None:
        raise StoreError(f"{path}: no run store here (nothing to read)")
    conn = connect(path, readonly=True)
    try:
        conn.set_authorizer(_authorize)
        try:
            cur = conn.execute(sql, params)
            rows = cur.fetchall()
        except sqlite3.DatabaseError as exc:
            if "not authorized" in str(exc) or "readonly" in str(exc) or "read-only" in str(exc):
                raise StoreError(f"sql: refused, the store is read-only here (only SELECT); "
                                 f"{exc}") from None
            raise StoreError(f"sql: {exc}") from None
        except sqlite3.ProgrammingError as exc:
            raise StoreError(f"sql: {exc}") from None
        return [c[0] for c in cur.description or ()], rows
    finally:
        conn.close()


# --- compare -----------------------------------------------------------------------

# Summary columns compared per class (higher is better for all of them).
SCALAR_METRICS = ("throughput_rps", "throughput_tok_s", "goodput_rps", "slo_attainment")
LATENCY_STATS = ("p50", "p99")
ALPHA = 0.05
_MAX_RAW = 20_000  # histogram values expanded per side for Mann-Whitney U


def _groups(store: Store, run_ids: list[int]) -> list[list[int]]:
    """Each run with its repetitions; plain singletons when groups would overlap."""
    groups = [repetitions(store, rid) for rid in run_ids]
    seen: set[int] = set()
    for g in groups:
        if seen & set(g):
            return [[rid] for rid in run_ids]
        seen |= set(g)
    return groups


def _hist_sample(h) -> np.ndarray:
    """Values of a histogram (µs) expanded by count, thinned evenly to <= _MAX_RAW."""
    import numpy as np

    values, counts = [], []
    for item in h.get_recorded_iterator():
        values.append(item.value_iterated_to)
        counts.append(item.count_at_value_iterated_to)
    if not values:
        return np.empty(0)
    counts_arr = np.asarray(counts, dtype=float)
    total = counts_arr.sum()
    if total > _MAX_RAW:
        counts_arr = np.maximum(np.round(counts_arr * _MAX_RAW / total), 0)
    return np.repeat(np.asarray(values, dtype=float), counts_arr.astype(int))


def _mark(change: float | None, p: float | None) -> str:
    """asv-style: + significantly higher, - significantly lower, ~ no significant change,
    empty when there is nothing to test (one run per side and no raw distribution)."""
    if p is None or change is None or math.isnan(p):
        return ""
    if p < ALPHA and change > 0:
        return "+"
    if p < ALPHA and change < 0:
        return "-"
    return "~"


def compare(store: Store, run_ids: list[int], *, metrics: tuple[str, ...] | None = None) -> dict:
    """Per-class metric table of runs against the first (the baseline).

    Values are means over each run's repetitions. Significance: with >= 2
    repetitions per side, Welch's t-test on the per-repetition values; else,
    for latency metrics, Mann-Whitney U on the runs' whole-run HDR histograms
    (the raw distribution). Marks as asv: `+` higher, `-` lower, `~` no
    significant change, `` untestable.
    """
    import numpy as np

    if len(run_ids) < 2:
        raise StoreError("compare: give at least two runs")
    groups = _groups(store, list(run_ids))
    all_ids = sorted({r for g in groups for r in g})
    summ = summaries_for(store, all_ids)
    base_ids = groups[0]
    classes = sorted({c for rid in base_ids for c in summ[rid]})
    rows = []
    cache: dict = {}  # (cls, metric, group index) -> histogram sample, shared by p50/p99
    for cls in classes:
        keys: list[tuple[str, str | None]] = [(m, None) for m in SCALAR_METRICS]
        lat = sorted({m for rid in all_ids for m in summ[rid].get(cls, {}).get("metrics", {})})
        if metrics:
            lat = [m for m in lat if m in metrics]
            keys = [k for k in keys if k[0] in metrics]
        keys += [(m, s) for m in lat for s in LATENCY_STATS]
        for metric, stat in keys:
            found = [[_value(summ[rid].get(cls), metric, stat) for rid in g] for g in groups]
            per_group = [[v for v in vals if v is not None] for vals in found]
            means = [float(np.mean(v)) if v else None for v in per_group]
            changes, marks, tests = [], [], []
            for i in range(1, len(groups)):
                change = _rel(means[0], means[i])
                p, test = _test(store, per_group[0], per_group[i], groups, i, cls, metric,
                                stat, cache)
                changes.append(change)
                marks.append(_mark(change, p))
                tests.append(test)
            rows.append({"class": cls, "metric": metric if stat is None else f"{metric}.{stat}",
                         "values": means, "n": [len(v) for v in per_group], "changes": changes,
                         "marks": marks, "test": tests})
    return {"runs": list(run_ids), "groups": groups, "rows": rows,
            "warnings": _mix_warnings(store, all_ids)}


def _mix_warnings(store: Store, run_ids: list[int]) -> list[str]:
    """Say when compared runs come from different machines or software versions."""
    marks = ",".join("?" * len(run_ids))
    with store.connection() as conn:
        rows = conn.execute(f"SELECT id, hardware_id, software_json FROM run WHERE id IN ({marks})",
                            run_ids).fetchall()
    out = []
    if len({hw for _, hw, _ in rows}) > 1:
        out.append("runs come from different hardware (see `sagetui runs show`)")
    versions = [json.loads(sw or "{}") for _, _, sw in rows]
    keys = sorted({k for v in versions for k in v})
    differ = [k for k in keys if len({v.get(k) for v in versions}) > 1]
    if differ:
        out.append(f"runs differ in software versions: {', '.join(differ)}")
    return out


def _value(summary: dict | None, metric: str, stat: str | None) -> float | None:
    if summary is None:
        return None
    if stat is None:
        return summary.get(metric)
    return (summary.get("metrics", {}).get(metric) or {}).get(stat)


def _rel(base: float | None, value: float | None) -> float | None:
    if base is None or value is None or base == 0:
        return None
    return (value - base) / abs(base)


def _test(store, a_vals, b_vals, groups, i, cls, metric, stat,
          cache: dict) -> tuple[float | None, str]:
    """p-value of group 0 vs group i and the test's name; (None, "") when untestable."""
    import numpy as np
    from scipy import stats as sps  # imported here: scipy costs ~0.3 s at CLI start

    if len(a_vals) >= 2 and len(b_vals) >= 2:
        if np.std(a_vals) == 0 and np.std(b_vals) == 0:
            return (1.0 if a_vals[0] == b_vals[0] else 0.0), "welch"
        return float(sps.ttest_ind(a_vals, b_vals, equal_var=False).pvalue), "welch"
    if stat is None:
        return None, ""

    def sample(g: int) -> np.ndarray:
        key = (cls, metric, g)
        if key not in cache:
            cache[key] = _hist_sample(merged_histogram(store, groups[g], metric, cls))
        return cache[key]

    a, b = sample(0), sample(i)
    if len(a) < 2 or len(b) < 2:
        return None, ""
    return float(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue), "mann-whitney"
