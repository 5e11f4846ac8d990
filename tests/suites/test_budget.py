"""One hardware budget per comparison: budget_of, and suites refused before running."""

from __future__ import annotations

import pytest

from engine.spec import BackendSpec
from sagetui.config import ConfigError
from sagetui.suites import expand_suite, load_suite
from sagetui.suites.budget import budget_of

GPU = '{ name = "g", kind = "sim", preset = "7b-h100", capabilities = ["chat", "completion"] }'
EMB = ('{ name = "e", kind = "sim", preset = "minilm-h100", '
       'capabilities = ["embedding"] }')
CPU = ('{ name = "c", kind = "sim", preset = "minilm-cpu", device = "cpu", '
       'capabilities = ["embedding"] }')
MIXED = ('{ name = "m", kind = "sim", preset = "7b-h100", '
         'capabilities = ["chat", "completion", "embedding"] }')


def _suite(tmp_path, parts: dict[str, list[str]], exports: list[list[str]], head: str = "",
           table: str = "effectiveness", sets: dict[str, str] | None = None):
    lines = ["[suite]", 'name = "t"', head]
    for ps in exports:
        lines += ["[[suite.exports]]", f'table = "{table}"', f"parts = {ps!r}".replace("'", '"')]
    lines += ["[base.run]", 'name = "t"', 'mode = "sim"',
              "[base.workload]", "rate = 10", "duration_s = 1", "mix = { chat = 0.7, embedding = 0.3 }"]
    for name, backends in parts.items():
        lines += ["[[parts]]", f'name = "{name}"']
        if sets and name in sets:
            lines.append(f"set = {sets[name]}")
        lines.append(f"backends = [{', '.join(backends)}]")
    path = tmp_path / "t.toml"
    path.write_text("\n".join(lines) + "\n")
    return load_suite(path)


def test_budget_of_counts_price_gpus_and_cpu_nodes():
    be = [BackendSpec(name="g", kind="sim", preset="7b-h100", capabilities=["chat"]),
          BackendSpec(name="t", kind="vllm", capabilities=["chat"], gpus=2, tensor_parallel=4,
                      price_per_hour=10.0),
          BackendSpec(name="c", kind="sim", preset="minilm-cpu", device="cpu",
                      capabilities=["embedding"])]
    b = budget_of(be)
    assert (b.gpus, b.cpu_nodes) == (5, 1)
    assert b.usd_per_hour == pytest.approx(2.5 + 10.0 + 0.1)  # presets price unpriced sims
    assert str(b) == "$12.60/h: 5 GPU + 1 CPU"


def test_parts_compared_on_different_budgets_are_refused(tmp_path):
    cpus = [CPU, CPU.replace('"c"', '"d"')]
    suite = _suite(tmp_path, {"sage": [GPU, EMB], "separate": [GPU, EMB, *cpus]},
                   [["sage", "separate"]])
    with pytest.raises(ConfigError) as e:
        expand_suite(suite)
    assert str(e.value) == (
        "suite t: parts 'sage' ($5.00/h: 2 GPU) and 'separate' ($5.20/h: 2 GPU + 2 CPU) "
        "differ in budget by $0.20/h; give them the same hardware or set "
        "`[suite] budget_check = false`")


def test_same_budget_other_hardware_passes(tmp_path):
    suite = _suite(tmp_path, {"sage": [GPU, EMB], "colocated": [MIXED, MIXED.replace('"m"', '"n"')]},
                   [["sage", "colocated"]],
                   sets={"colocated": '{ "control_plane.baseline" = "colocated" }'})
    assert len(expand_suite(suite).runs) == 2


def test_opt_out_unshared_parts_and_hardware_tables_are_not_checked(tmp_path):
    parts = {"a": [GPU, EMB], "b": [GPU, EMB, CPU]}
    assert expand_suite(_suite(tmp_path, parts, [["a", "b"]], "budget_check = false")).runs
    assert expand_suite(_suite(tmp_path, parts, [["a"], ["b"]])).runs
    assert expand_suite(_suite(tmp_path, parts, [["a", "b"]], table="heterogeneous")).runs
    with pytest.raises(ConfigError, match="budget_check: must be true or false"):
        expand_suite(_suite(tmp_path, parts, [["a"]], 'budget_check = "no"'))


def test_a_baseline_its_backends_cannot_be_is_refused_before_running(tmp_path):
    suite = _suite(tmp_path, {"prio": [GPU, EMB]}, [],
                   sets={"prio": '{ "control_plane.baseline" = "vllm-priority" }'})
    with pytest.raises(ConfigError) as e:
        expand_suite(suite)
    msg = str(e.value)
    assert "[part prio]" in msg and "baseline" in msg and "'g'" in msg and "priority" in msg


def test_backends_on_one_host_are_one_machine():
    from engine.spec import BackendSpec
    from sagetui.suites.budget import budget_of

    colocated = [BackendSpec(name=f"{k}{i}", kind="sim", preset=p, capabilities=c,
                             host=f"gpu{i}")
                 for i in range(2)
                 for k, p, c in (("llm", "7b-h100", ["chat"]),
                                 ("emb", "minilm-h100", ["embedding"]))]
    two_gpus = [BackendSpec(name=f"g{i}", kind="sim", preset="7b-h100", capabilities=["chat"])
                for i in range(2)]
    assert budget_of(colocated) == budget_of(two_gpus)
    assert budget_of(colocated).gpus == 2 and budget_of(colocated).usd_per_hour == 5.0
