"""The write side: experiments, runs and everything a run produces.

Why a RunWriter with its own connection: the run process writes a sample every
second and commits each one, so a SIGKILL loses at most the last second, while
readers (TUI, `sagetui runs`) keep reading through WAL without blocking.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable
from operator import itemgetter

from store import histograms as hg
from store import listing
from store.db import Store, connect, utc_now
from store.errors import StoreError
from store.fingerprint import git_state, hardware, software_versions
from store.schema import TABLES, TERMINAL_STATUSES, Backend, RequestRow, Sample, Summary

MODES = ("sim", "live")
EXPERIMENT_KINDS = ("sweep", "suite", "single")
_BULK_CHUNK = 100_000


def _columns(model) -> list[str]:
    table = getattr(model, "__table__", model)
    return [c.name for c in table.columns if c.name not in ("id", "run_id")]


def _defaults(model) -> dict:
    """Python-side column defaults (the schema has no SQL defaults), minus id/run_id."""
    out = {}
    for c in getattr(model, "__table__", model).columns:
        if c.name in ("id", "run_id"):
            continue
        arg = c.default.arg if c.default is not None else None
        out[c.name] = None if callable(arg) else arg
    return out


def _jsonify(value, what: str) -> str:
    """JSON text for a `*_json` column: dicts/lists are dumped, text must already parse
    (readers splice stored JSON text into their output as is)."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError as exc:
            raise StoreError(f"{what}: not valid JSON text ({exc})") from None
        return value
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what}: not JSON-serialisable ({exc})") from exc


def _row(model, data: dict, what: str) -> dict:
    """Validate keys against the model's columns; `x` may stand for `x_json` (dumped)."""
    cols = set(_columns(model))
    row = {}
    for key, value in data.items():
        if key in cols:
            row[key] = _jsonify(value, f"{what}.{key}") if key.endswith("_json") else value
        elif f"{key}_json" in cols:
            row[f"{key}_json"] = _jsonify(value, f"{what}.{key}")
        else:
            raise StoreError(f"{what}: unknown field {key!r} (columns: {', '.join(sorted(cols))})")
    return row


_TABLE_DEFAULTS = {t.name: _defaults(t) for t in TABLES}


def _insert(conn: sqlite3.Connection, table: str, row: dict) -> int:
    row = {**_TABLE_DEFAULTS[table], **row}
    names = ", ".join(row)
    marks = ", ".join("?" * len(row))
    cur = conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(row.values()))
    assert cur.lastrowid is not None  # set by every INSERT that returns
    return cur.lastrowid


def config_hash(config: dict) -> str:
    """sha256 of the canonical JSON config with every `seed`/`engine_seed`/`repetition`
    key removed.

    Runs that differ only by seed or repetition index share a hash: they are
    repetitions of one configuration (what `runs compare` groups on).
    """
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items()
                    if k not in ("seed", "engine_seed", "repetition")}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    canon = json.dumps(strip(config), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canon.encode()).hexdigest()


def create_experiment(store: Store, name: str, *, kind: str = "sweep", suite: str | None = None,
                      spec: str = "") -> int:
    if not name:
        raise StoreError("experiment.name: must not be empty")
    if kind not in EXPERIMENT_KINDS:
        raise StoreError(f"experiment.kind: {kind!r} is not one of {', '.join(EXPERIMENT_KINDS)}")
    with store.transaction() as conn:
        return _insert(conn, "experiment", {"name": name, "kind": kind, "suite": suite,
                                            "spec": spec, "created": utc_now(), "deleted": 0})


def _check_tags(tags: Iterable[str]) -> list[str]:
    out = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or "," in tag:
            raise StoreError(f"tags: {tag!r} is not a tag (non-empty text without commas)")
        out.append(tag.strip())
    return sorted(set(out))


def create_run(store: Store, *, experiment_id: int | None, name: str, mode: str, config: dict,
               seed: int, repetition: int, tags: Iterable[str] = (), duration_s: float = 0,
               warmup_s: float = 0, requests_planned: int = 0,
               rerun_of: int | None = None) -> RunWriter:
    """Insert a run in state `created` and return its writer. `rerun_of`: the stored run
    this one re-executes (`sagetui runs rerun`), which must exist."""
    if mode not in MODES:
        raise StoreError(f"run.mode: {mode!r} is not one of {', '.join(MODES)}")
    if not isinstance(config, dict):
        raise StoreError("run.config: must be a dict (the resolved config)")
    tag_list = _check_tags(tags)
    row = {
        "experiment_id": experiment_id, "name": name, "mode": mode, "status": "created",
        "config_json": _jsonify(config, "run.config"), "config_hash": config_hash(config),
        "seed": int(seed), "repetition": int(repetition), "tags": ",".join(tag_list),
        "created": utc_now(), "duration_s": float(duration_s), "warmup_s": float(warmup_s),
        "requests_planned": int(requests_planned), "rerun_of": rerun_of,
    }
    with store.transaction() as conn:
        if experiment_id is not None and conn.execute(
                "SELECT 1 FROM experiment WHERE id=?", (experiment_id,)).fetchone() is None:
            raise StoreError(f"run.experiment_id: experiment {experiment_id} not in {store.path}")
        if rerun_of is not None and conn.execute(
                "SELECT 1 FROM run WHERE id=? AND deleted=0", (rerun_of,)).fetchone() is None:
            raise StoreError(f"run.rerun_of: run {rerun_of} not in {store.path}")
        run_id = _insert(conn, "run", row)
        conn.executemany("INSERT INTO run_tag(run_id, tag) VALUES (?, ?)",
                         [(run_id, t) for t in tag_list])
    return RunWriter(store, run_id)


def _hardware_id(conn: sqlite3.Connection, hw: dict) -> int:
    """Insert this machine's fingerprint once; every later run reuses the row."""
    conn.execute(
        "INSERT OR IGNORE INTO hardware(fingerprint, hostname, os, cpu_model, cpu_cores_physical,"
        " cpu_cores_logical, memory_bytes, gpus_json, details_json) VALUES (?,?,?,?,?,?,?,?,?)",
        (hw["fingerprint"], hw["hostname"], hw["os"], hw["cpu_model"], hw["cpu_cores_physical"],
         hw["cpu_cores_logical"], hw["memory_bytes"], hw["gpus_json"], hw["details_json"]))
    return conn.execute("SELECT id FROM hardware WHERE fingerprint=?",
                        (hw["fingerprint"],)).fetchone()[0]


class RunWriter:
    """Writes one run. Each call is its own committed transaction."""

    def __init__(self, store: Store, run_id: int):
        self.store = store
        self.run_id = run_id
        self._conn: sqlite3.Connection | None = connect(store.path)
        self._conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: bulk request inserts
        self._sample_cols = _columns(Sample)
        self._request_cols = _columns(RequestRow)

    # -- plumbing -------------------------------------------------------------
    def _write(self, sql: str, params=()) -> sqlite3.Cursor:
        return self._tx(lambda c: c.execute(sql, params))

    def _tx(self, fn):
        conn = self._conn
        if conn is None:
            raise StoreError(f"run {self.run_id}: writer already closed")
        conn.execute("BEGIN IMMEDIATE")
        try:
            out = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return out

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._conn is not None and exc_type is not None:
            status = "cancelled" if exc_type is KeyboardInterrupt else "failed"
            self.finish(status, f"{exc_type.__name__}: {exc}")
        self.close()

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        """created -> running; records pid/host, heartbeat, versions and hardware."""
        hw = hardware()
        sha, dirty = git_state()
        software = software_versions()

        def do(conn):
            status = conn.execute("SELECT status FROM run WHERE id=?", (self.run_id,)).fetchone()
            if status is None or status[0] != "created":
                raise StoreError(f"run {self.run_id}: cannot start from status "
                                 f"{status[0] if status else 'missing'!r}")
            conn.execute(
                "UPDATE run SET status='running', pid=?, host=?, heartbeat=?, started=?, "
                "sagetui_version=?, git_sha=?, git_dirty=?, software_json=?, hardware_id=? "
                "WHERE id=?",
                (os.getpid(), socket.gethostname(), time.time(), utc_now(),
                 software.get("sagetui") or "", sha, int(dirty),
                 json.dumps(software, sort_keys=True), _hardware_id(conn, hw), self.run_id))
        self._tx(do)

    def heartbeat(self, requests_done: int | None = None) -> None:
        if requests_done is None:
            self._write("UPDATE run SET heartbeat=? WHERE id=?", (time.time(), self.run_id))
        else:
            self._write("UPDATE run SET heartbeat=?, requests_done=? WHERE id=?",
                        (time.time(), int(requests_done), self.run_id))

    def finish(self, status: str = "completed", reason: str = "") -> None:
        if status not in TERMINAL_STATUSES:
            raise StoreError(f"run.status: {status!r} is not terminal "
                             f"({', '.join(TERMINAL_STATUSES)})")
        self._write("UPDATE run SET status=?, status_reason=?, ended=?, heartbeat=? WHERE id=?",
                    (status, reason, utc_now(), time.time(), self.run_id))
        self.close()

    # -- data -----------------------------------------------------------------
    def add_backends(self, backends: list[dict]) -> list[int]:
        rows = [_row(Backend, b, f"backend[{i}]") for i, b in enumerate(backends)]
        return self._tx(lambda c: [_insert(c, "backend", {"run_id": self.run_id, **r})
                                   for r in rows])

    def add_sample(self, sample: dict) -> None:
        """One per-second sample; committed (with a heartbeat) before returning."""
        row = _row(Sample, sample, "sample")
        if "t_s" not in row:
            raise StoreError("sample.t_s: required (seconds since the run's start)")
        now = time.time()

        def do(conn):
            _insert(conn, "sample", {"run_id": self.run_id, **row})
            conn.execute("UPDATE run SET heartbeat=? WHERE id=?", (now, self.run_id))
        self._tx(do)

    def add_samples(self, samples: Iterable[dict]) -> int:
        """Many samples in one transaction: for runs whose samples are computed after
        the fact (sim mode), where a commit per second buys nothing."""
        rows = [_row(Sample, s, f"sample[{i}]") for i, s in enumerate(samples)]
        for i, row in enumerate(rows):
            if "t_s" not in row:
                raise StoreError(f"sample[{i}].t_s: required (seconds since the run's start)")
        now = time.time()

        def do(conn):
            for row in rows:
                _insert(conn, "sample", {"run_id": self.run_id, **row})
            conn.execute("UPDATE run SET heartbeat=? WHERE id=?", (now, self.run_id))
        self._tx(do)
        return len(rows)

    def add_event(self, t_s: float, kind: str, subject: str = "", message: str = "",
                  data: dict | None = None) -> None:
        row = {"run_id": self.run_id, "t_s": float(t_s), "kind": kind, "subject": subject,
               "message": message, "data_json": _jsonify(data or {}, "event.data")}
        self._tx(lambda c: _insert(c, "event", row))

    def add_histograms(self, items: Iterable[tuple]) -> None:
        """(metric, cls, window_start_s|None, window_s|None, HdrHistogram) -> V2 blobs."""
        rows = []
        for metric, cls, start, width, h in items:
            if not metric or not cls:
                raise StoreError(f"histogram: metric and class required, got {metric!r}/{cls!r}")
            n, lo, hi, mean = hg.stats(h)
            rows.append((self.run_id, metric, cls, start, width, hg.encode(h), n, lo, hi, mean))
        self._tx(lambda c: c.executemany(
            "INSERT INTO histogram(run_id, metric, request_class, window_start_s, window_s, "
            "encoded, count, min_us, max_us, mean_us) VALUES (?,?,?,?,?,?,?,?,?,?)", rows))

    def add_summaries(self, summaries: dict[str, dict]) -> None:
        """{cls: {Summary columns}}; `metrics`/`extra` may be dicts. Replaces earlier ones."""
        rows = []
        for cls, data in summaries.items():
            row = _row(Summary, {k: v for k, v in data.items() if k != "request_class"},
                       f"summary[{cls}]")
            rows.append({"run_id": self.run_id, "request_class": cls, **row})

        def do(conn):
            conn.execute("DELETE FROM summary WHERE run_id=?", (self.run_id,))
            for r in rows:
                _insert(conn, "summary", r)
            listing.render(conn, [self.run_id])  # what `runs list --format json|csv` prints
        self._tx(do)

    def add_requests(self, records: Iterable[dict]) -> int:
        """Bulk insert raw per-request records (keys = RequestRow columns, as store.schema.request_row gives); returns count.

        executemany on the raw connection, committed every 100,000 rows. Records
        carrying every column skip the defaults merge (the fast path).
        """
        cols = self._request_cols
        defaults = _defaults(RequestRow)
        ncols = len(cols)
        get = itemgetter(*cols)
        # run_id is an int we own, so it goes in as a literal: rows stay the tuples
        # itemgetter returns, with no per-row re-packing.
        sql = (f"INSERT INTO request({', '.join(cols)}, run_id) "
               f"VALUES ({', '.join('?' * ncols)}, {int(self.run_id)})")
        total = 0
        batch: list[tuple] = []
        for rec in records:
            if len(rec) == ncols:
                try:
                    batch.append(get(rec))
                except KeyError:
                    self._bad_request(rec, total + len(batch), cols)
            else:
                row = {**defaults, **rec}
                if len(row) != ncols:
                    self._bad_request(rec, total + len(batch), cols)
                batch.append(get(row))
            if len(batch) >= _BULK_CHUNK:
                self._tx(lambda c, b=batch: c.executemany(sql, b))
                total += len(batch)
                batch = []
        if batch:
            self._tx(lambda c, b=batch: c.executemany(sql, b))
            total += len(batch)
        return total

    @staticmethod
    def _bad_request(rec: dict, index: int, cols: list[str]) -> None:
        unknown = sorted(set(rec) - set(cols))
        raise StoreError(f"request record {index}: unknown field(s) "
                         f"{', '.join(map(repr, unknown))}")


__all__ = ["RunWriter", "config_hash", "create_experiment", "create_run"]
