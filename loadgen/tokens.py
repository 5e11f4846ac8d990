"""Prompt text of a given token length.

Why: a prompt's length must be what the workload says, so prompts are built
with the target model's own tokenizer when it is available (a local model
directory, loaded with transformers' AutoTokenizer): random token ids are
decoded, re-encoded and trimmed until the text encodes to exactly n tokens.
Without a tokenizer the text is synthetic: n words from a small vocabulary,
roughly one token per word for BPE tokenizers (the server's `usage` then
gives the real count, which is what the records keep).
Outputs are fixed separately with max_tokens + ignore_eos.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

WORDS = (
    "time year people way day man thing woman life child world school state family "
    "student group country problem hand part place case week company system program "
    "question work government number night point home water room mother area money "
    "story fact month lot right study book eye job word business issue side kind head"
).split()


class PromptMaker:
    """texts of n tokens, different per key (a request id), repeatable.

    `salt` makes one run's texts differ from another's with the same seed and
    keys. Why: vLLM caches prefixes across requests (automatic prefix caching,
    on by default), so a run whose prompts repeat an earlier run's found their
    prefills cached: live at 10 req/s, the requests whose texts the 5 req/s run
    had sent (same seed, same ids) had a TTFT 2.7 ms (p10) lower than the rest,
    and every second repetition of a load ran fully cached. Each live run
    therefore gets its own salt (loadgen.runner.run), and repetitions and
    compared systems all meet a cache that holds none of their prompts.
    """

    def __init__(self, tokenizer_dir: str | None = None, seed: int = 0, salt: str = ""):
        self.seed = seed
        self.salt = salt
        self.tok = None
        if tokenizer_dir is not None:
            if not Path(tokenizer_dir, "tokenizer_config.json").is_file() and not Path(
                tokenizer_dir, "tokenizer.json"
            ).is_file():
                raise ValueError(f"tokenizer_dir {tokenizer_dir}: no tokenizer files found")
            from transformers import AutoTokenizer

            self.tok = AutoTokenizer.from_pretrained(tokenizer_dir)
            # tokens that decode to printable text and re-encode to themselves
            # splice back together far more predictably than arbitrary ids
            special = set(self.tok.all_special_ids)
            self._ids = np.array([
                i for i in range(self.tok.vocab_size) if i not in special
                and self.tok.decode([i]).isprintable()
                and self.tok.encode(self.tok.decode([i]), add_special_tokens=False) == [i]])
            if self._ids.size == 0:
                raise ValueError(f"tokenizer_dir {tokenizer_dir}: no usable tokens in the vocabulary")

    @property
    def exact(self) -> bool:
        return self.tok is not None

    def _rng(self, key: str) -> np.random.Generator:
        salt = [zlib.crc32(self.salt.encode())] if self.salt else []  # none: the seed's texts
        return np.random.default_rng([self.seed, zlib.crc32(key.encode()), *salt])

    def text(self, n_tokens: int, key: str) -> str:
        if n_tokens <= 0:
            return ""
        rng = self._rng(key)
        if self.tok is None:
            return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), n_tokens))
        return self._exact(n_tokens, rng)

    def count(self, text: str) -> int | None:
        """Tokens in text by the model's tokenizer (None without one)."""
        if self.tok is None:
            return None
        return len(self.tok.encode(text, add_special_tokens=False))

    def _exact(self, n: int, rng: np.random.Generator) -> str:
        """Fresh random ids per attempt; within one, trim or extend a few times."""
        tok = self.tok
        assert tok is not None  # only called with a tokenizer (see `text`)
        enc = tok.encode
        for _ in range(50):
            ids = rng.choice(self._ids, size=n).tolist()
            for _ in range(4):
                text = tok.decode(ids)
                got = enc(text, add_special_tokens=False)
                if len(got) == n:
                    return text
                ids = got[:n] if len(got) > n else got + rng.choice(self._ids, size=n - len(got)).tolist()
        raise ValueError(f"could not build a prompt of exactly {n} tokens with this tokenizer")
