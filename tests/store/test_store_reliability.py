"""Real processes: a writer killed with SIGKILL, and a reader beside two writers."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from store import open_store, queries
from store.db import recover_interrupted

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def _spawn(script: str, *args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(HERE / script), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _read_until(proc: subprocess.Popen, pred, timeout=60.0) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"writer ended early: {proc.stderr.read()}")
        lines.append(line.strip())
        if pred(lines):
            return lines
    raise AssertionError("timed out waiting for the writer")


@pytest.mark.slow
def test_sigkill_mid_run_loses_nothing_committed(db_path):
    open_store(db_path).close()
    proc = _spawn("writer_proc.py", db_path, "victim", 10_000, 0.02)
    try:
        lines = _read_until(proc, lambda ls: sum(ln.startswith("sample") for ln in ls) >= 25)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    run_id = int(lines[0].split()[1])
    acknowledged = [float(ln.split()[1]) for ln in lines if ln.startswith("sample")]
    with open_store(db_path) as store:
        r = queries.get_run(store, run_id)
        assert r["status"] == "interrupted"
        assert f"writer process {proc.pid}" in r["status_reason"] and r["ended"]
        ts = [s["t_s"] for s in queries.samples(store, run_id)]
    # Every acknowledged sample survived; at most the one in flight (< 1 s of data) is extra.
    assert ts[:len(acknowledged)] == acknowledged
    assert len(ts) - len(acknowledged) <= 1
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_stale_heartbeat_from_another_host_is_interrupted(store):
    fresh = store.create_run(experiment_id=None, name="fresh", mode="live", config={}, seed=0,
                             repetition=0)
    stale = store.create_run(experiment_id=None, name="stale", mode="live", config={}, seed=0,
                             repetition=0)
    now = time.time()
    with store.transaction() as c:
        c.execute("UPDATE run SET status='running', host='elsewhere', pid=1, heartbeat=? "
                  "WHERE id=?", (now - 5, fresh.run_id))
        c.execute("UPDATE run SET status='running', host='elsewhere', pid=1, heartbeat=? "
                  "WHERE id=?", (now - 120, stale.run_id))
    with store.connection() as c:
        assert recover_interrupted(c, now=now) == [stale.run_id]
    assert queries.get_run(store, stale.run_id)["status"] == "interrupted"
    assert "no heartbeat" in queries.get_run(store, stale.run_id)["status_reason"]
    assert queries.get_run(store, fresh.run_id)["status"] == "running"


def test_same_host_judged_by_pid_not_heartbeat(store):
    """A live writer here survives a stale heartbeat; a reused pid does not."""
    import socket

    from store.db import utc_now

    live = store.create_run(experiment_id=None, name="slow-start", mode="live", config={},
                            seed=0, repetition=0)
    reused = store.create_run(experiment_id=None, name="reused", mode="live", config={},
                              seed=0, repetition=0)
    now = time.time()
    with store.transaction() as c:
        c.execute("UPDATE run SET status='running', host=?, pid=?, heartbeat=?, started=? "
                  "WHERE id=?", (socket.gethostname(), os.getppid(), now - 600, utc_now(),
                                 live.run_id))
        c.execute("UPDATE run SET status='running', host=?, pid=?, heartbeat=?, started=? "
                  "WHERE id=?", (socket.gethostname(), os.getppid(), now,
                                 "2000-01-01T00:00:00.000+00:00", reused.run_id))
    with store.connection() as c:
        assert recover_interrupted(c, now=now) == [reused.run_id]
    assert queries.get_run(store, live.run_id)["status"] == "running"


def test_live_writer_is_not_interrupted_by_another_open(store, db_path):
    w = store.create_run(experiment_id=None, name="alive", mode="live", config={}, seed=0,
                         repetition=0)
    w.start()
    open_store(db_path).close()
    assert queries.get_run(store, w.run_id)["status"] == "running"
    w.finish()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_reader_never_locked_beside_two_writers(db_path, tmp_path):
    open_store(db_path).close()
    stop = tmp_path / "stop"
    reader = _spawn("reader_proc.py", db_path, stop)
    writers = [_spawn("writer_proc.py", db_path, f"w{i}", 50, 0.02, 20_000) for i in range(2)]
    try:
        outs = [w.communicate(timeout=90) for w in writers]
        for w, (out, err) in zip(writers, outs, strict=True):
            assert w.returncode == 0 and out.strip().endswith("done"), err
    finally:
        stop.touch()
        r_out, r_err = reader.communicate(timeout=30)
        for p in writers:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert reader.returncode == 0, r_out + r_err
    assert "locked" not in r_out + r_err
    assert int(r_out.split()[1]) >= 5  # it really polled while the writers wrote
    with open_store(db_path) as store:
        runs = queries.list_runs(store)
        assert [r["status"] for r in runs] == ["completed", "completed"]
        assert all(len(queries.samples(store, r["id"])) == 50 for r in runs)
        assert all(queries.get_run(store, r["id"])["requests"] == 20_000 for r in runs)


def test_reopening_keeps_the_wal_lock_of_a_store_already_open(db_path):
    """Opening the store again in a process that has it open must not drop that
    process's POSIX locks (any close() of the file does): else another process's
    last close deletes the WAL under the open store, whose next read finds
    "database disk image is malformed" (seen in CI beside two writers)."""
    with open_store(db_path) as store:
        queries.list_runs(store)  # a pooled connection holds the file open in WAL mode
        open_store(db_path).close()  # validation in the same process
        writer = _spawn("writer_proc.py", db_path, "other", 1, 0.0)
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
        # our connection is still open, so the writer was not the last one out
        assert Path(f"{db_path}-wal").exists(), "the writer's close deleted the WAL under us"
        assert [r["name"] for r in queries.list_runs(store)] == ["other"]
