"""Bad input: a clear message naming what is wrong, exit code 2, no partial files."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--format", "latex", "--table", "nope", "--suite", "paper"), "unknown table 'nope'"),
        (("--format", "pdf", "--figure", "nope", "--suite", "paper"), "unknown figure 'nope'"),
        (("--format", "pdf", "--table", "scalability"), "--format pdf is not a table format"),
        (("--format", "latex", "--figure", "latency_cdf"), "--format latex is not a figure format"),
        (("--format", "latex", "--table", "scalability", "--suite", "nosuch"),
         "no completed runs match --suite nosuch"),
        (("--format", "latex", "--table", "scalability", "--runs", "9999"), "no run with id 9999"),
        (("--format", "latex", "--table", "scalability", "--runs", "x"), "--runs: 'x'"),
        (("--format", "latex", "--table", "scalability", "--where", "rate"), "--where: 'rate' is not PATH=VALUE"),
        (("--format", "latex", "--table", "agents", "--experiment", "policies"),
         "has no extra_json.agent"),
        (("--format", "latex", "--table", "scalability", "--experiment", "heterogeneous"),
         "speedup needs a run with 1 backend"),
        (("--format", "latex", "--table", "scalability", "--suite", "paper"), "narrow the selection"),
        (("--format", "latex", "--suite", "paper"), "say what to export"),
        (("--table", "scalability",), "--format is required"),
    ],
)
def test_clear_message_and_nothing_written(cli, tmp_path, args, message):
    out = tmp_path / "out"
    result = cli(*args, "-o", str(out))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists()


def test_unknown_format_is_refused_by_the_option(cli, tmp_path):
    result = cli("--format", "docx", "--table", "scalability", "-o", str(tmp_path / "o"))
    assert result.exit_code == 2 and "docx" in result.output


def test_missing_store_names_the_file(cli, tmp_path):
    result = cli("--format", "latex", "--table", "scalability", db=tmp_path / "none.db")
    assert result.exit_code == 2 and "none.db" in result.output and "run store" in result.output


def test_not_a_store_names_the_file(cli, tmp_path):
    bogus = tmp_path / "bogus.db"
    bogus.write_text("hello")
    result = cli("--format", "latex", "--table", "scalability", "-o", str(tmp_path / "o"), db=bogus)
    assert result.exit_code == 2 and "bogus.db" in result.output


def test_unwritable_output_folder(cli, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    result = cli("--format", "latex", "--table", "scalability", "--experiment", "scalability",
                 "-o", str(blocker / "sub"))
    assert result.exit_code == 2 and "output folder" in result.output and "file.txt" in result.output


def test_failure_leaves_an_existing_folder_as_it_was(cli, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = cli("--format", "latex", "--table", "agents", "--experiment", "policies", "-o", str(tmp_path))
    assert result.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_list_names_every_table_and_figure(cli):
    result = cli("--list")
    assert result.exit_code == 0
    for name in ("effectiveness", "policies", "scalability", "saturation", "heterogeneous", "agents",
                 "reproducibility", "latency_vs_rate", "throughput_vs_backends", "latency_cdf",
                 "wait_distribution", "queue_depth", "slo_vs_load", "fairness", "cost_performance"):
        assert name in result.output
