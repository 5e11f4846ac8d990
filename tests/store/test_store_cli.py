"""`sagetui runs` through click's CliRunner: every subcommand and the bad inputs."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from store_helpers import make_run

from sagetui.cli import main
from store import open_store


@pytest.fixture
def db(db_path):
    with open_store(db_path) as s:
        exp = s.create_experiment("pol", kind="suite", suite="policies")
        make_run(s, name="h1", policy="hybrid", experiment_id=exp, tags=("paper",))
        make_run(s, name="f1", policy="fifo", experiment_id=exp, ttft_scale=2.0)
        w = s.create_run(experiment_id=None, name="live1", mode="live", config={}, seed=0,
                         repetition=0)
        w.start()
        w.add_event(1.5, "engine_down", "b0", "killed")
        w.finish("failed", "engine died")
    return str(db_path)


def run(db, *args, env=None):
    return CliRunner().invoke(main, ["--db", db, "runs", *args], env=env)


def test_list_table_and_filters(db):
    r = run(db, "list")
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert lines[0].split()[:4] == ["id", "name", "experiment", "status"]
    assert [ln.split()[1] for ln in lines[1:]] == ["h1", "f1", "live1"]
    r = run(db, "list", "--where", "control_plane.policy=fifo", "--status", "completed")
    assert [ln.split()[1] for ln in r.output.strip().splitlines()[1:]] == ["f1"]
    r = run(db, "list", "--tag", "paper", "--suite", "policies", "--since", "1d", "--last", "5")
    assert [ln.split()[1] for ln in r.output.strip().splitlines()[1:]] == ["h1"]


def test_list_json_shape(db):
    r = run(db, "list", "--format", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert [d["name"] for d in data] == ["h1", "f1", "live1"]
    h1 = data[0]
    assert {"id", "name", "experiment", "status", "mode", "started", "config",
            "summary"} <= set(h1)
    assert h1["experiment"] == "pol" and h1["config"]["control_plane"]["policy"] == "hybrid"
    chat = h1["summary"]["chat"]
    assert chat["throughput_rps"] == 10.0 and chat["metrics"]["ttft"]["p99"] > 0
    assert data[2]["summary"] == {} and data[2]["status"] == "failed"


def test_list_csv(db):
    r = run(db, "list", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert [x["name"] for x in rows] == ["h1", "f1", "live1"]
    assert float(rows[1]["chat.ttft.p99_ms"]) > float(rows[0]["chat.ttft.p99_ms"])


def test_db_from_env(db):
    r = CliRunner().invoke(main, ["runs", "list", "--last", "1"], env={"SAGETUI_DB": db})
    assert r.exit_code == 0 and "live1" in r.output


def test_show_text_and_json(db):
    r = run(db, "show", "3")
    assert r.exit_code == 0, r.output
    assert "live1" in r.output and "engine died" in r.output and "engine_down" in r.output
    assert "hardware" in r.output and "python" in r.output
    r = run(db, "show", "1", "--format", "json")
    d = json.loads(r.output)
    assert d["summary"]["chat"]["issued"] == 2000 and d["config"]["run"]["name"] == "h1"


def test_compare(db):
    r = run(db, "compare", "1", "2")
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if "ttft.p50" in ln)
    assert "+100" in line.replace(" ", "") and line.rstrip().endswith("+")
    d = json.loads(run(db, "compare", "1", "2", "--format", "json").output)
    assert d["groups"] == [[1], [2]]


def test_tag_untag_delete(db):
    assert "tags a,b" in run(db, "tag", "2", "a", "b").output
    assert "tags b" in run(db, "untag", "2", "a").output
    assert "f1" in run(db, "list", "--tag", "b").output
    assert run(db, "delete", "2").exit_code == 0
    assert "f1" not in run(db, "list").output
    assert run(db, "delete", "2", "--purge").exit_code == 0
    assert run(db, "show", "2").exit_code == 2


def test_sql(db):
    r = run(db, "sql", "SELECT name, status FROM run ORDER BY id", "--format", "json")
    assert json.loads(r.output)[0] == {"name": "h1", "status": "completed"}
    r = run(db, "sql", "SELECT count(*) AS n FROM run")
    assert r.output.split() == ["n", "3"]


@pytest.mark.parametrize("args, needle", [
    (["show", "99"], "run 99"),
    (["tag", "99", "x"], "run 99"),
    (["list", "--where", "policy"], "where"),
    (["list", "--since", "last tuesday"], "since"),
    (["sql", "DELETE FROM run"], "refused"),
    (["sql", "DROP TABLE run"], "refused"),
    (["list", "--status", "weird"], "status"),
    (["compare", "1"], "two"),
])
def test_bad_input_one_line_exit_2(db, args, needle):
    r = run(db, *args)
    assert r.exit_code == 2, r.output
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.output


def test_corrupt_store_exit_2_untouched(tmp_path):
    p = tmp_path / "junk.db"
    p.write_bytes(b"not sqlite at all" * 10)
    for args in (["list"], ["sql", "SELECT 1"]):
        r = CliRunner().invoke(main, ["--db", str(p), "runs", *args])
        assert r.exit_code == 2 and "junk.db" in r.stderr
    assert p.read_bytes() == b"not sqlite at all" * 10
