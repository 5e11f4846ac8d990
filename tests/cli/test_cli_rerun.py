"""`sagetui runs config` and `runs rerun`: a stored run made again, linked and compared."""

from __future__ import annotations

import json
import tomllib

from cli_helpers import SIM_CONFIG, sagetui

from sagetui.rerun import HOST_MEASURED_METRICS, HOST_MEASURED_PATHS
from store import open_store, queries
from store.reruns import differences


def run_count(db) -> int:
    with open_store(db) as s:
        return len(queries.list_runs(s, include_deleted=True))


def same(db, a: int, b: int) -> list:
    with open_store(db) as s:
        return differences(s, a, b, ignore_paths=HOST_MEASURED_PATHS,
                           ignore_metrics=HOST_MEASURED_METRICS)["differences"]


def test_runs_config_is_toml_that_run_takes_unchanged_and_makes_the_same_run(sim_store,
                                                                                tmp_path):
    result = sagetui(sim_store, "runs", "config", "2")  # repetition 1: seed 8
    assert result.exit_code == 0, result.output
    cfg = tomllib.loads(result.stdout)
    assert cfg["run"]["seed"] == 8 and cfg["run"]["repetitions"] == 1
    assert "repetition" not in cfg
    path = tmp_path / "again.toml"
    path.write_text(result.stdout)
    made = sagetui(sim_store, "run", str(path), "--quiet")
    assert made.exit_code == 0, made.output
    assert made.stdout.split() == ["3"]
    assert same(sim_store, 2, 3) == []
    assert same(sim_store, 1, 3) != []  # the check can tell runs apart: seed 7 vs 8


def test_rerun_in_simulation_is_identical_and_linked(sim_store):
    result = sagetui(sim_store, "runs", "rerun", "2")
    assert result.exit_code == 0, result.output
    assert "run 3: rerun of run 2 [completed]" in result.stdout
    assert "identical: run 3 matches run 2" in result.stdout
    assert same(sim_store, 2, 3) == []
    shown = sagetui(sim_store, "runs", "show", "3").stdout
    assert "rerun of run 2" in shown
    assert "reruns 3" in sagetui(sim_store, "runs", "show", "2").stdout
    detail = json.loads(sagetui(sim_store, "runs", "show", "3", "--format", "json").stdout)
    assert detail["rerun_of"] == 2 and detail["seed"] == 8


def test_rerun_with_one_value_changed_names_the_difference(sim_store):
    result = sagetui(sim_store, "runs", "rerun", "1", "--set", "workload.rate=60")
    assert result.exit_code == 0, result.output
    assert "config differs from run 1: workload.rate: 40.0 -> 60.0" in result.stderr
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("differs:"))
    assert "first difference summary " in line and "in run 1" in line and "in run 3" in line
    first = same(sim_store, 1, 3)[0]
    assert first[0] in line and repr(first[1]) in line


def test_another_seed_is_asked_for_explicitly(sim_store):
    result = sagetui(sim_store, "runs", "rerun", "1", "--seed", "8")
    assert result.exit_code == 0, result.output
    assert "run.seed: 7 -> 8" in result.stderr
    assert same(sim_store, 2, 3) == []  # seed 8 is repetition 1's run


def test_unchanged_simulated_rerun_that_differs_exits_1_naming_it(sim_store, monkeypatch):
    with open_store(sim_store) as s, s.transaction() as conn:  # as if the code had changed
        conn.execute("UPDATE summary SET issued = issued + 1 WHERE run_id = 1 "
                     "AND request_class = 'chat'")
        sha, dirty = conn.execute("SELECT git_sha, git_dirty FROM run WHERE id = 1").fetchone()
    # The same commit as run 1's, even if the tree's HEAD moved since it ran.
    monkeypatch.setattr("store.fingerprint.git_state", lambda repo=None: (sha, bool(dirty)))
    result = sagetui(sim_store, "runs", "rerun", "1")
    assert result.exit_code == 1
    assert "first difference summary chat.issued" in result.stdout


def test_different_code_engines_and_hardware_are_said_before_running(sim_store):
    with open_store(sim_store) as s, s.transaction() as conn:
        conn.execute("UPDATE run SET git_sha = 'a1b2c3d4e5f6a7b8', git_dirty = 0, "
                     "software_json = json_set(software_json, '$.vllm', '0.0.1') WHERE id = 1")
        conn.execute("INSERT INTO hardware(fingerprint, hostname, os, cpu_model, "
                     "cpu_cores_physical, cpu_cores_logical, memory_bytes, gpus_json, "
                     "details_json) VALUES ('f00dfeed', 'elsewhere', 'Linux', 'Other CPU', "
                     "1, 1, 1, '[]', '{}')")
        conn.execute("UPDATE run SET hardware_id = (SELECT id FROM hardware "
                     "WHERE fingerprint = 'f00dfeed') WHERE id = 1")
    result = sagetui(sim_store, "runs", "rerun", "1")
    assert result.exit_code == 0, result.output
    err = result.stderr
    code = next(ln for ln in err.splitlines() if "code differs" in ln)
    assert "a1b2c3d4e5f6" in code
    assert "vllm 0.0.1 ->" in next(ln for ln in err.splitlines() if "versions differ" in ln)
    assert "elsewhere" in next(ln for ln in err.splitlines() if "hardware differs" in ln)
    started = err.index("[1/1]")
    assert max(err.index(w) for w in ("code differs", "versions differ", "hardware")) < started


def test_pipeline_search_time_is_host_measured(tmp_path):
    cfg = tmp_path / "pipe.toml"
    cfg.write_text(SIM_CONFIG.replace("mix = { chat = 0.7, embedding = 0.3 }",
                                      "mix = { chat = 0.5, embedding = 0.2, pipeline = 0.3 }")
                   .replace("repetitions = 2", "repetitions = 1"))
    db = tmp_path / "p.db"
    assert sagetui(db, "run", str(cfg), "--quiet").exit_code == 0
    result = sagetui(db, "runs", "rerun", "1")
    assert result.exit_code == 0, result.output
    assert "identical" in result.stdout or "vector search timed on this machine" in result.stdout
    with open_store(db) as s:
        assert "stage_search" in queries.get_run(s, 1)["summary"]["pipeline"]["metrics"]


def test_unknown_or_deleted_run_exit_2_naming_the_id(sim_store):
    before = run_count(sim_store)
    result = sagetui(sim_store, "runs", "rerun", "99")
    assert result.exit_code == 2 and "run 99" in result.output
    assert sagetui(sim_store, "runs", "delete", "2").exit_code == 0
    for args in (("runs", "rerun", "2"), ("runs", "config", "2")):
        result = sagetui(sim_store, *args)
        assert result.exit_code == 2 and "run 2" in result.output
    assert run_count(sim_store) == before


def test_a_config_todays_schema_refuses_names_field_and_migration_and_runs_nothing(sim_store):
    with open_store(sim_store) as s:
        cfg = queries.get_run(s, 1)["config"]
        cfg["control_plane"]["slo"] = {"early_reject": True}  # a table an older schema had
        w = s.create_run(experiment_id=None, name="old", mode="sim", config=cfg, seed=7,
                         repetition=0)
        w.finish()
    before = run_count(sim_store)
    for args in (("runs", "rerun", "3"), ("runs", "config", "3")):
        result = sagetui(sim_store, *args)
        assert result.exit_code == 2
        assert "control_plane.slo" in result.output
        assert 'control_plane.admission = "on"' in result.output
        assert "nothing was run" in result.output
    assert run_count(sim_store) == before
    stored = sagetui(sim_store, "runs", "config", "3", "--as-stored")
    assert stored.exit_code == 0
    assert tomllib.loads(stored.stdout)["control_plane"]["slo"] == {"early_reject": True}


def test_a_rerun_is_one_run(sim_store):
    before = run_count(sim_store)
    result = sagetui(sim_store, "runs", "rerun", "1", "--set", "sweep.workload.rate=[10,20]")
    assert result.exit_code == 2 and "a rerun is one run" in result.output
    assert run_count(sim_store) == before


def test_a_live_original_gets_the_significance_table(sim_store):
    """Live runs never repeat exactly: the rerun prints what `runs compare` prints. (The
    stored run is marked live; its config runs in simulation, so the test needs no engines.)"""
    with open_store(sim_store) as s:
        run = queries.get_run(s, 1)
        w = s.create_run(experiment_id=None, name="was-live", mode="live", config=run["config"],
                         seed=7, repetition=0)
        w.start()
        w.add_summaries(run["summary"])
        w.finish()
    result = sagetui(sim_store, "runs", "rerun", "3")
    assert result.exit_code == 0, result.output
    compared = sagetui(sim_store, "runs", "compare", "3", "4").stdout
    assert "repetitions per side: run 3: 1, run 4: 1" in result.stdout
    table = result.stdout[result.stdout.index("repetitions per side"):]
    assert table.strip() == compared[compared.index("repetitions per side"):].strip()
    assert "identical" not in result.stdout and "differs" not in result.stdout
