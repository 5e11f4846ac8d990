"""`--backends FILE` gives each suite part its own pool, or the file's default list.

Before: one list replaced every part's backends, so suite D's parts all ran on the
same engines and compared nothing.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sagetui.cli import main
from sagetui.config import ConfigError
from sagetui.suites import _read_backends, expand_suite, find_suite


def backend(name: str, preset: str = "minilm-h100", device: str = "gpu",
            caps: str = '"embedding"', table: str = "backends") -> str:
    return (f'[[{table}]]\nname = "{name}"\nkind = "sim"\npreset = "{preset}"\n'
            f'device = "{device}"\ncapabilities = [{caps}]\n')


LLM = backend("my-llm", "7b-h100", caps='"chat", "completion"')
# suite D's colocated part sweeps backends 0, 2 and 4 (three GPUs, each an LLM and an
# embedding model on one host): its own list has the six
COLOCATED = "".join(
    backend(f"{k}{i}", p, caps=c, table="parts.colocated.backends") + f'host = "gpu{i}"\n'
    for i in range(3)
    for k, p, c in (("llm", "7b-h100", '"chat", "completion"'), ("emb", "minilm-h100",
                                                                 '"embedding"')))


def names_by_part(exp) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for cfg in exp.runs:
        out.setdefault(cfg.run.part, set()).update(b.name for b in cfg.backends)
    return out


def test_parts_get_their_own_backends_and_others_the_default(tmp_path):
    f = tmp_path / "pools.toml"
    # every part costs $7.50/h: two LLM GPUs and an embedding GPU (the default list),
    # three shared GPUs (colocated), two LLM GPUs and 25 CPU nodes (cpu-nodes)
    llm2 = LLM.replace("my-llm", "my-llm2")
    f.write_text(LLM + llm2 + backend("my-gpu-embed") + COLOCATED
                 + LLM.replace("backends", "parts.cpu-nodes.backends")
                 + llm2.replace("backends", "parts.cpu-nodes.backends")
                 + backend("my-cpu", "minilm-cpu", "cpu", table="parts.cpu-nodes.backends")
                 + "replicas = 25\n")
    exp = expand_suite(find_suite("heterogeneous"), quick=True, backends_file=str(f))
    got = names_by_part(exp)
    assert {"my-llm", "my-llm2"} <= got["cpu-nodes"] and len(got["cpu-nodes"]) == 27
    assert not {"my-gpu-embed"} & got["cpu-nodes"]
    assert got["split"] == {"my-llm", "my-llm2", "my-gpu-embed"}
    assert got["colocated"] == {"llm0", "emb0", "llm1", "emb1", "llm2", "emb2"}
    cpu = next(c for c in exp.runs if c.run.part == "cpu-nodes")
    assert {b.device for b in cpu.backends if "embedding" in b.capabilities} == {"cpu"}


def test_a_part_without_entry_or_default_is_refused_naming_file_and_part(tmp_path):
    f = tmp_path / "only-colocated.toml"
    f.write_text(backend("e", table="parts.colocated.backends"))
    with pytest.raises(ConfigError) as err:
        expand_suite(find_suite("heterogeneous"), backends_file=str(f))
    assert str(f) in str(err.value) and "parts.split" in str(err.value)


@pytest.mark.parametrize("text, field", [
    (backend("e", table="parts.nope.backends"), "parts.nope"),
    ('[parts.colocated]\nbackends = []\n', "parts.colocated.backends"),
    ('[parts.colocated]\nbackend = 1\n', "parts.colocated"),
    (backend("e") + '[run]\nseed = 3\n', "run"),
    ('title = "x"\n', "title"),
])
def test_bad_file_shape_names_the_file_and_the_field(tmp_path, text, field):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        expand_suite(find_suite("heterogeneous"), backends_file=str(f))
    assert str(err.value).startswith(f"{f}: {field}")


def test_a_bad_backend_in_a_part_names_the_file_and_the_field(tmp_path, db_path):
    f = tmp_path / "pools.toml"
    f.write_text(LLM + backend("e") + COLOCATED + '[[parts.cpu-nodes.backends]]\nname = "x"\n'
                 'kind = "warp-drive"\ncapabilities = ["embedding"]\n')
    res = CliRunner().invoke(main, ["--db", str(db_path), "suite", "run", "heterogeneous",
                                    "--quick", "--backends", str(f)])
    assert res.exit_code == 2
    assert str(f) in res.output and "cpu-nodes" in res.output and "kind" in res.output
    assert not db_path.exists()


def test_suites_without_parts_refuse_per_part_lists(tmp_path):
    f = tmp_path / "pools.toml"
    f.write_text(LLM + backend("e", table="parts.mixed.backends"))
    with pytest.raises(ConfigError, match=r"pools.toml: parts.mixed: this suite takes only"):
        _read_backends(str(f))


def test_agents_suite_reads_its_part_or_the_default_and_refuses_bad_files(tmp_path, db_path):
    from sagetui.suites.backends_file import read_backends_file

    f = tmp_path / "agents.toml"
    f.write_text(LLM.replace("backends", "parts.agents.backends"))
    bf = read_backends_file(str(f), find_suite("agents").parts)
    assert [b["name"] for b in bf.for_part("agents")] == ["my-llm"]
    bad = tmp_path / "bad.toml"
    bad.write_text('x = 1\n')
    res = CliRunner().invoke(main, ["--db", str(db_path), "suite", "run", "agents", "--mode",
                                    "live", "--backends", str(bad)], catch_exceptions=False)
    assert res.exit_code == 2 and f"{bad}: x" in res.output
