"""Opening stores: fresh schema, pragmas, migrations, refusals that leave files untouched."""

from __future__ import annotations

import sqlite3

import pytest

from store import StoreError, open_store
from store.migrations import current_version
from store.schema import SCHEMA_VERSION, TABLES


def test_fresh_store_has_every_table_version_and_pragmas(store, db_path):
    conn = sqlite3.connect(db_path)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {t.name for t in TABLES} <= names
    assert current_version(conn, str(db_path)) == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with store.connection() as c:
        assert c.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert c.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert c.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_foreign_keys_enforced(store):
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as c:
        c.execute("INSERT INTO sample(run_id, t_s, offered_rps, achieved_rps, in_flight, errors,"
                  " queue_depth_json, backends_json, latency_json, slo_met, done)"
                  " VALUES (999, 0, 0, 0, 0, 0, '{}', '{}', '{}', 0, 0)")


def _v0_database(path):
    """A pre-versioning draft database: no meta table, a run table lacking later columns."""
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE experiment (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL,
            kind VARCHAR NOT NULL, suite VARCHAR, spec VARCHAR NOT NULL, created VARCHAR NOT NULL,
            deleted BOOLEAN NOT NULL);
        CREATE TABLE run (id INTEGER PRIMARY KEY, experiment_id INTEGER REFERENCES experiment(id),
            name VARCHAR NOT NULL, mode VARCHAR NOT NULL, status VARCHAR NOT NULL,
            config_json VARCHAR NOT NULL, seed INTEGER NOT NULL, tags VARCHAR NOT NULL);
        INSERT INTO experiment VALUES (1, 'old', 'sweep', NULL, '', '2026-01-01', 0);
        INSERT INTO run VALUES (7, 1, 'legacy', 'sim', 'completed', '{"a": 1}', 3, 'x,y');
    """)
    conn.commit()
    conn.close()


def test_v0_database_is_upgraded_keeping_rows(db_path):
    _v0_database(db_path)
    with open_store(db_path) as s:
        with s.connection() as c:
            assert current_version(c, str(db_path)) == SCHEMA_VERSION
            row = c.execute("SELECT name, seed, status_reason, requests_done, deleted, git_dirty "
                            "FROM run WHERE id = 7").fetchone()
            assert row == ("legacy", 3, "", 0, 0, 0)
            assert [r[0] for r in c.execute("SELECT tag FROM run_tag ORDER BY tag")] == ["x", "y"]
        from store import queries

        assert queries.list_runs(s, tag="y")[0]["id"] == 7
        # The upgraded store takes new runs.
        w = s.create_run(experiment_id=1, name="new", mode="sim", config={}, seed=0,
                         repetition=0)
        w.finish("cancelled")


def test_failed_migration_rolls_back(db_path, monkeypatch):
    _v0_database(db_path)
    from store import migrations

    def boom(conn):
        migrations.create_missing(conn)
        raise RuntimeError("midway")

    monkeypatch.setattr(migrations, "MIGRATIONS", [(1, "broken", boom)])
    with pytest.raises(RuntimeError):
        open_store(db_path)
    conn = sqlite3.connect(db_path)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == {"experiment", "run"}  # nothing half-applied


def test_newer_schema_refused_file_untouched(db_path):
    open_store(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                 (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = db_path.read_bytes()
    with pytest.raises(StoreError, match=rf"{db_path.name}.*newer"):
        open_store(db_path)
    assert db_path.read_bytes() == before


@pytest.mark.parametrize("content", [b"hello, not a database\n" * 50,
                                     b"SQLite format 3\x00" + b"\xff" * 4000])
def test_corrupt_or_foreign_file_refused_untouched(db_path, content):
    db_path.write_bytes(content)
    with pytest.raises(StoreError) as err:
        open_store(db_path)
    assert str(db_path) in str(err.value)
    assert db_path.read_bytes() == content
    assert not db_path.with_name(db_path.name + "-wal").exists()


def test_readonly_open_of_missing_store_is_an_error(db_path):
    with pytest.raises(StoreError, match="no run store"):
        open_store(db_path, readonly=True)
    assert not db_path.exists()


def test_readonly_store_refuses_writes(store, db_path):
    ro = open_store(db_path, readonly=True)
    with pytest.raises(StoreError, match="read-only"):
        ro.create_experiment("x")
    ro.close()


def test_sqlmodel_session_reads_through_the_engine(store):
    from sqlmodel import Session, select

    from store.schema import Run

    w = store.create_run(experiment_id=None, name="orm", mode="sim", config={"a": 1}, seed=4,
                         repetition=1)
    with Session(store.engine) as session:
        [run] = session.exec(select(Run)).all()
    assert (run.id, run.name, run.seed, run.status) == (w.run_id, "orm", 4, "created")


def test_v1_database_gains_the_v2_request_columns(db_path):
    """A v1 store (request without parent_id/queue_wait_ms) is upgraded in place."""
    with open_store(db_path) as s, s.transaction() as c:
        c.execute("ALTER TABLE request DROP COLUMN parent_id")
        c.execute("ALTER TABLE request DROP COLUMN queue_wait_ms")
        c.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with open_store(db_path) as s, s.connection() as c:
        assert current_version(c, str(db_path)) == SCHEMA_VERSION
        cols = {r[1] for r in c.execute("PRAGMA table_info(request)")}
        assert {"parent_id", "queue_wait_ms"} <= cols


def test_v2_database_gains_the_v3_slo_columns_and_keeps_its_rows(db_path):
    """A v2 store (request without slo_tpot_ms/slo_tier, one raw row) opens, is
    upgraded in place, keeps the row with NULL / '' in the new columns, and
    takes rows of the new shape."""
    with open_store(db_path) as s:
        w = s.create_run(experiment_id=None, name="old", mode="sim", config={}, seed=0, repetition=0)
        with s.transaction() as c:
            c.execute("ALTER TABLE request DROP COLUMN slo_tpot_ms")
            c.execute("ALTER TABLE request DROP COLUMN slo_tier")
            c.execute("ALTER TABLE request DROP COLUMN pipeline")  # v5's columns
            c.execute("ALTER TABLE request DROP COLUMN stage")
            c.execute("INSERT INTO request(run_id, request_id, request_class, client_id, priority, "
                      "status, reason, backend, t_intended, prompt_tokens, output_tokens, n_texts) "
                      "VALUES (?, 'r1', 'chat', 'c000', 2, 'completed', '', '', 0.5, 10, 5, 0)",
                      (w.run_id,))
            c.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with open_store(db_path) as s, s.connection() as c:
        assert current_version(c, str(db_path)) == SCHEMA_VERSION
        row = c.execute("SELECT request_id, slo_tpot_ms, slo_tier, pipeline, stage "
                        "FROM request").fetchall()
        assert row == [("r1", None, "", "", "")]
    with open_store(db_path) as s:
        w2 = s.create_run(experiment_id=None, name="new", mode="sim", config={}, seed=0, repetition=0)
        w2.add_requests([{"request_id": "r2", "request_class": "chat", "slo_tpot_ms": 40.0,
                          "slo_tier": "tight"}])
        with s.connection() as c:
            got = c.execute("SELECT slo_tpot_ms, slo_tier FROM request WHERE request_id='r2'").fetchall()
        assert got == [(40.0, "tight")]
