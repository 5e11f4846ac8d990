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


def _embed_run(run_id: int, *engines: tuple[str, str, str]):
    """A run whose embedding backends are serve-embed engines: (device, device_kind, version)."""
    from exports.model import BackendView, RunView

    backends = tuple(
        BackendView(name=f"e{i}", preset="", role="embedding", engine_kind="sentence-transformers",
                    device=device, device_kind=kind, model="all-MiniLM-L6-v2", engine_version=ver,
                    price_per_hour=2.5 if device == "gpu" else 0.1, params="{}",
                    launch_args=json.dumps({"argv": ["python", "-m", "engine.servers.embed_server",
                                                     "--device", "cuda" if device == "gpu" else "cpu"],
                                            "env": {}}))
        for i, (device, kind, ver) in enumerate(engines))
    return RunView(id=run_id, name="r", experiment="e", suite=None, experiment_spec="",
                   part="", mode="live", status="completed", config={}, config_hash="h",
                   seed=1, repetition=0, sagetui_version="0", git_sha="", software={},
                   hardware=None, duration_s=1.0, warmup_s=0.0, backends=backends)


GPU = ("gpu", "NVIDIA H100 80GB HBM3", "sentence-transformers 6.0.1 (cuda, float32)")
CPU = ("cpu", "Xeon core", "sentence-transformers 6.0.1 (cpu, float32)")


def test_the_same_embedding_engine_on_gpu_and_cpu_pools_is_fair():
    """serve-embed's version names its device and dtype; suite D's GPU-only, CPU-only and mixed
    pools run the same release on different devices, which is the comparison, not a mismatch
    (found exporting the live quick heterogeneous suite run on a GPU machine)."""
    from exports.baseline import find_mismatches

    assert find_mismatches([_embed_run(1, GPU), _embed_run(2, CPU, CPU), _embed_run(3, GPU, CPU)]) == []


def test_embedding_engine_release_or_dtype_differences_are_still_refused():
    from exports.baseline import find_mismatches

    (diff,) = find_mismatches([_embed_run(1, GPU, CPU),
                               _embed_run(2, CPU[:2] + ("sentence-transformers 6.2.0 (cpu, float32)",))])
    assert "engine version of sentence-transformers differs" in diff and "6.2.0" in diff
    (diff,) = find_mismatches([_embed_run(1, GPU),
                               _embed_run(2, GPU[:2] + ("sentence-transformers 6.0.1 (cuda, float16)",))])
    assert "sentence-transformers on NVIDIA H100 80GB HBM3" in diff and "float16" in diff


def test_served_simulator_presets_are_models_not_versions():
    """serve-sim's version is `sagetui-sim PRESET`; a live run with a chat and an embedding
    preset (suite D's own parts, examples/live-serve-sim.toml) was refused as unfair."""
    from dataclasses import replace

    from exports.baseline import find_mismatches

    def sim(run_id: int, *presets: str, params: str = "{}"):
        run = _embed_run(run_id, *[("gpu", "H100", f"sagetui-sim {p}") for p in presets])
        return replace(run, backends=tuple(
            replace(b, engine_kind="sim", model=p, preset=p, params=f"{p} {params}")
            for b, p in zip(run.backends, presets, strict=True)))

    assert find_mismatches([sim(1, "7b-h100", "minilm-h100"), sim(2, "7b-h100", "minilm-cpu")]) == []
    (diff,) = find_mismatches([sim(1, "7b-h100"), sim(2, "7b-h100", params="changed")])
    assert "engine parameters of sim 7b-h100 on H100" in diff


def _part_run(run_id: int, part: str, *devices: tuple[str, float], gpus: int = 1,
              spec: str = ""):
    """A suite run of `part` on sim backends given as (device, price per hour)."""
    from exports.model import BackendView, RunView

    rows = tuple(BackendView(name=f"b{i}", preset="p", role="both", engine_kind="sim",
                             device=d, device_kind="", model="m", engine_version="sagetui-sim p",
                             price_per_hour=price, params="{}", launch_args="[]")
                 for i, (d, price) in enumerate(devices))
    cfg = {"backends": [{"name": b.name, "gpus": gpus} for b in rows]}
    return RunView(id=run_id, name=f"s/{part}", experiment="s", suite="s", experiment_spec=spec,
                   part=part, mode="sim", status="completed", config=cfg, config_hash="h",
                   seed=1, repetition=0, sagetui_version="0", git_sha="", software={},
                   hardware=None, duration_s=1.0, warmup_s=0.0, backends=rows)


GPU2 = (("gpu", 2.5), ("gpu", 2.5))


def test_parts_on_different_budgets_are_refused_with_the_difference():
    import pytest

    from exports.baseline import enforce
    from exports.errors import ExportError

    runs = [_part_run(1, "sage", *GPU2), _part_run(2, "separate", *GPU2, ("cpu", 0.1),
                                                   ("cpu", 0.1))]
    with pytest.raises(ExportError) as e:
        enforce(runs, "effectiveness", False)
    msg = str(e.value)
    assert "parts 'sage' ($5.00/h: 2 GPU) and 'separate' ($5.20/h: 2 GPU + 2 CPU)" in msg
    assert "differ in budget by $0.20/h" in msg and "--allow-mismatch" in msg
    (note,) = enforce(runs, "effectiveness", True)
    assert note.startswith("Unfair comparison allowed with --allow-mismatch: budget of s:")


def test_budgets_within_one_percent_and_hardware_tables_pass():
    from exports.baseline import enforce, run_budget

    near = [_part_run(1, "a", ("gpu", 2.5)), _part_run(2, "b", ("gpu", 2.52))]
    assert enforce(near, "effectiveness", False) == []
    pools = [_part_run(1, "gpu-only", *GPU2), _part_run(2, "cpu-only", ("cpu", 0.1))]
    assert enforce(pools, "heterogeneous", False) == []  # cost is what that table compares
    assert run_budget(_part_run(3, "a", ("gpu", 5.0), gpus=2)).gpus == 2


def test_a_sweep_over_backends_within_one_part_is_one_configuration():
    from exports.baseline import budget_mismatches

    sweep = [_part_run(1, "backends", ("gpu", 2.5)), _part_run(2, "backends", *GPU2)]
    assert budget_mismatches(sweep) == []
    twin = [*sweep, _part_run(3, "twin", ("gpu", 2.5)), _part_run(4, "twin", *GPU2)]
    assert budget_mismatches(twin) == []  # the same sweep of budgets
    (diff,) = budget_mismatches([*sweep, _part_run(3, "other", ("gpu", 2.5))])
    assert "'backends'" in diff and "'other'" in diff and "by $2.50/h" in diff


def test_unpriced_parts_compare_their_device_counts():
    from exports.baseline import budget_mismatches

    runs = [_part_run(1, "a", ("gpu", 0.0)), _part_run(2, "b", ("gpu", 0.0), ("cpu", 0.0))]
    (diff,) = budget_mismatches(runs)
    assert "differ in hardware" in diff and "1 GPU + 1 CPU" in diff


def test_figures_of_parts_a_hardware_table_compares_are_not_checked():
    """Suite D plots its GPU-only and CPU-only pools against load as well: their
    costs differ by design, which its heterogeneous table reports."""
    from exports.baseline import enforce

    spec = ('[[suite.exports]]\ntable = "heterogeneous"\nparts = ["gpu", "cpu"]\n'
            '[[suite.exports]]\nfigure = "slo_vs_load"\nparts = ["gpu", "cpu"]\n')
    runs = [_part_run(1, "gpu", *GPU2, spec=spec), _part_run(2, "cpu", ("cpu", 0.1), spec=spec)]
    assert enforce(runs, "slo_vs_load", False) == []
