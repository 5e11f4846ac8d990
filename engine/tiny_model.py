"""A tiny random-weight Llama checkpoint that vLLM (CPU or GPU) can serve offline.

Why: no model can be downloaded here, yet live tests and CPU experiments need a
real LLM engine whose timings and token counts are genuine. The output text is
gibberish; everything about serving it is real. The build is deterministic (same
bytes every time for the same library versions) and idempotent: a folder that
already holds a valid build is left alone. Recipe and why: docs/setup.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

RECIPE_VERSION = 1
SEED = 1234
VOCAB_SIZE = 1024
MARKER = "sagetui-tiny-model.json"
ENV_VAR = "SAGETUI_TINY_MODEL"
SPECIAL_TOKENS = ["<s>", "</s>", "<pad>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
    "{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
_SYLLABLES = ["ka", "lo", "mi", "ra", "tu", "sen", "vor", "ith", "ex", "qua", "bel", "don",
              "pri", "gen", "sta", "mon", "ul", "ze", "fa", "cor", "ne", "hy", "do", "rix"]
_WORDS = ["the", "a", "model", "serves", "tokens", "request", "batch", "queue", "engine",
          "latency", "embedding", "chat", "control", "plane", "GPU", "CPU", "and", "of",
          "to", "in", "is", "for", "with", "on", "0", "1", "2", "3", "42", "100", ".", ",",
          "?", "!", ":", "(", ")", "user", "assistant", "system", "hello", "world"]


class TinyModelError(Exception):
    """The tiny model folder is unusable; the message names the folder or file."""


def default_dir() -> Path:
    """Where the shared tiny model lives: $SAGETUI_TINY_MODEL or ~/.cache/sagetui/tiny-llama."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "sagetui" / "tiny-llama"


def ensure_tiny_model(path: str | Path | None = None) -> Path:
    """Return a folder holding a valid tiny model, building it there first if needed."""
    target = Path(path).expanduser() if path is not None else default_dir()
    if is_valid(target):
        return target
    if target.exists() and any(target.iterdir()):
        raise TinyModelError(
            f"{target}: exists, is not empty and holds no valid tiny model ({MARKER} missing "
            "or files changed); remove it or choose another folder"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _build(staging)
        if target.exists():
            target.rmdir()  # empty by the check above (or built by a racing process below)
        os.rename(staging, target)
    except OSError:
        # Another process may have won the race: accept its build if valid.
        shutil.rmtree(staging, ignore_errors=True)
        if is_valid(target):
            return target
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def is_valid(path: str | Path) -> bool:
    """True when `path` holds a complete build of this recipe with unchanged files."""
    path = Path(path)
    marker = path / MARKER
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if info.get("recipe_version") != RECIPE_VERSION:
        return False
    files = info.get("files", {})
    return bool(files) and all(
        (path / name).is_file() and _sha256(path / name) == digest for name, digest in files.items()
    )


def content_hash(path: str | Path) -> str:
    """One sha256 over every file of a build (names and bytes), marker excluded."""
    path = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.is_file() and p.name != MARKER):
        h.update(f.name.encode() + b"\0" + _sha256(f).encode() + b"\n")
    return h.hexdigest()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _corpus(n_lines: int = 4000) -> list[str]:
    """A generated text corpus: made-up words plus common English/serving words."""
    rng = random.Random(SEED)
    words = _WORDS + ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3)))
                      for _ in range(400)]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 24))) for _ in range(n_lines)]


def _build_tokenizer(out: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        model_max_length=2048,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out))
    return fast


def _build(out: Path) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    fast = _build_tokenizer(out)
    config = LlamaConfig(
        hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=4, vocab_size=VOCAB_SIZE, max_position_embeddings=2048,
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id, tie_word_embeddings=False, torch_dtype="bfloat16",
    )
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(SEED)
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    finally:
        torch.random.set_rng_state(state)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the CLI prints one line, not a shard progress bar
    model.save_pretrained(str(out), safe_serialization=True)
    files = {p.name: _sha256(p) for p in sorted(out.iterdir()) if p.is_file()}
    (out / MARKER).write_text(json.dumps(
        {"recipe_version": RECIPE_VERSION, "seed": SEED, "files": files}, indent=1, sort_keys=True))
