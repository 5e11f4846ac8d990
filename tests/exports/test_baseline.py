"""The fair-baseline check refuses mixed machines/engine versions and footnotes them when allowed."""

from __future__ import annotations

import json


def test_refused_with_the_list_of_differences(cli, tmp_path):
    out = tmp_path / "out"
    result = cli("--format", "latex", "--table", "scalability", "--suite", "unfair", "-o", str(out))
    assert result.exit_code == 2
    assert "refusing an unfair comparison" in result.output
    assert "hardware fingerprint differs: hw-a" in result.output and "hw-b" in result.output
    assert "engine version of sim differs: sim-1.0" in result.output and "sim-1.1" in result.output
    assert "--allow-mismatch" in result.output
    assert not out.exists()  # nothing written, not even the folder


def test_allowed_mismatch_is_footnoted_in_every_format(cli, tmp_path):
    for fmt, ext in (("latex", "tex"), ("markdown", "md"), ("json", "json")):
        result = cli("--format", fmt, "--table", "scalability", "--suite", "unfair",
                     "--allow-mismatch", "-o", str(tmp_path))
        assert result.exit_code == 0, result.output
        text = (tmp_path / f"scalability.{ext}").read_text()
        if fmt == "json":
            notes = json.loads(text)["footnotes"]
            assert any("hardware fingerprint differs" in n for n in notes)
            assert any("engine version of sim differs" in n for n in notes)
        else:
            assert "Unfair comparison allowed with --allow-mismatch: hardware fingerprint differs" in text
    tex = (tmp_path / "scalability.tex").read_text()
    assert "\\footnotesize (1) Unfair comparison" in tex


def test_same_setup_with_different_backend_counts_is_fair(cli, tmp_path):
    result = cli("--format", "markdown", "--table", "scalability", "--experiment", "scalability",
                 "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "Unfair" not in (tmp_path / "scalability.md").read_text()


def test_figures_are_refused_too(cli, tmp_path):
    result = cli("--format", "html", "--figure", "throughput_vs_backends", "--suite", "unfair",
                 "-o", str(tmp_path))
    assert result.exit_code == 2 and "refusing an unfair comparison" in result.output


def test_bundle_refuses_a_unit_mixing_setups(cli, tmp_path):
    out = tmp_path / "b"
    result = cli("--format", "pdf", "--bundle", "--suite", "unfair", "-o", str(out))
    assert result.exit_code == 2 and "mismatch: refusing an unfair comparison" in result.output
    assert not out.exists()


def _view(run_id: int, port: int, extra: list[str] = ()):
    from exports.model import BackendView, RunView

    argv = ["python", "-m", "vllm.entrypoints.openai.api_server", "--model", "/m", "--host",
            "127.0.0.1", "--port", str(port), f"--port={port}", *extra]
    b = BackendView(name="v", preset="", role="both", engine_kind="vllm-cpu", device="cpu",
                    device_kind="x86-64", model="tiny-llama", engine_version="0.32",
                    price_per_hour=0.1, params="{}",
                    launch_args=json.dumps({"argv": argv, "env": {"A": "1"}}))
    return RunView(id=run_id, name="r", experiment="e", suite=None, experiment_spec="",
                   part="", mode="live", status="completed", config={}, config_hash="h",
                   seed=1, repetition=0, sagetui_version="0", git_sha="", software={},
                   hardware=None, duration_s=1.0, warmup_s=0.0, backends=(b,))


def test_engines_launched_on_different_ports_are_the_same_setup():
    """Each part of a live suite relaunches its engines on a free port; that is no mismatch
    (found exporting a live quick scalability suite), but a real argument difference is."""
    from exports.baseline import find_mismatches

    assert find_mismatches([_view(1, 33153), _view(2, 55373)]) == []
    (diff,) = find_mismatches([_view(1, 33153), _view(2, 55373, ["--max-model-len", "1024"])])
    assert "engine parameters of vllm-cpu tiny-llama" in diff and "1024" in diff
