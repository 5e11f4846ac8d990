"""The tiny model builds deterministically and is kept when valid."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from engine.tiny_model import TinyModelError, content_hash, ensure_tiny_model, is_valid
from sagetui.cli import main


def test_same_bytes_twice_and_idempotent(tmp_path):
    a = ensure_tiny_model(tmp_path / "a")
    b = ensure_tiny_model(tmp_path / "b")
    assert content_hash(a) == content_hash(b)
    mtime = (a / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_model(a) == a  # valid: not rebuilt
    assert (a / "model.safetensors").stat().st_mtime_ns == mtime
    size = (a / "model.safetensors").stat().st_size
    assert 5_000_000 < size < 10_000_000  # bf16, ~7 MB
    from transformers import AutoConfig, AutoTokenizer

    cfg = AutoConfig.from_pretrained(str(a))
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size) == (256, 4, 1024)
    tok = AutoTokenizer.from_pretrained(str(a))
    assert len(tok) == 1024
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text.endswith("<|assistant|>\n")
    # Tampering makes it invalid, and a non-empty invalid folder is refused, not overwritten.
    (a / "config.json").write_text("{}")
    assert not is_valid(a)
    with pytest.raises(TinyModelError, match=str(a)):
        ensure_tiny_model(a)


def test_cli_writes_model(tmp_path):
    out = tmp_path / "m"
    res = CliRunner().invoke(main, ["engine", "tiny-model", str(out)])
    assert res.exit_code == 0, res.output
    assert is_valid(out) and "sha256=" in res.output
