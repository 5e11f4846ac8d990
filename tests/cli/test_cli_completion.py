"""Shell completion through click: run ids, suites, tables, figures, formats, config paths."""

from __future__ import annotations

import os

from click.testing import CliRunner

from sagetui.cli import main
from store import open_store


def complete(*words: str, env: dict | None = None, cwd=None) -> list[str]:
    """What bash would be offered after `sagetui WORDS` (the last word is being typed)."""
    line = ["sagetui", *words]
    runner = CliRunner()
    old = os.getcwd()
    try:
        if cwd:
            os.chdir(cwd)
        result = runner.invoke(main, [], prog_name="sagetui", env={
            "_SAGETUI_COMPLETE": "bash_complete", "COMP_WORDS": " ".join(line),
            "COMP_CWORD": str(len(line) - 1), **(env or {})})
    finally:
        os.chdir(old)
    assert result.exit_code == 0, result.output
    return [ln.split(",", 1)[1] for ln in result.output.splitlines() if "," in ln]


def test_run_ids_from_the_store_named_by_db_or_env(tmp_path):
    db = tmp_path / "s.db"
    with open_store(db) as s:
        for name in ("a", "b"):
            s.create_run(experiment_id=None, name=name, mode="sim", config={}, seed=0,
                         repetition=0).finish()
    assert complete("--db", str(db), "runs", "show", "") == ["2", "1"]
    assert complete("runs", "rerun", "", env={"SAGETUI_DB": str(db)}) == ["2", "1"]
    assert complete("--db", str(db), "runs", "compare", "1", "") == ["2", "1"]
    assert complete("--db", str(tmp_path / "none.db"), "runs", "show", "") == []


def test_suite_names(tmp_path):
    offered = complete("--db", str(tmp_path / "none.db"), "suite", "run", "")
    assert {"control-plane", "policies", "fidelity"} <= set(offered)
    assert complete("export", "--suite", "contr") == ["control-plane"]


def test_tables_figures_and_formats():
    tables = complete("export", "--table", "")
    assert "scalability" in tables and "reproducibility" in tables
    assert "latency_cdf" in complete("export", "--figure", "lat")
    formats = complete("export", "--format", "")
    assert {"latex", "markdown", "pdf", "md", "tex"} <= set(formats)


def test_config_paths_are_toml_files_and_folders(tmp_path):
    (tmp_path / "exp.toml").write_text("")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "configs").mkdir()
    assert complete("run", "", cwd=tmp_path) == ["configs/", "exp.toml"]
    assert complete("run", "e", cwd=tmp_path) == ["exp.toml"]
    assert complete("run", f"{tmp_path}/c") == [f"{tmp_path}/configs/"]
