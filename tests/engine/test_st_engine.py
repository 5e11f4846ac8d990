"""STEngine (packaged MiniLM): dtype pinned whatever the checkpoint, CUDA asked for is checked.

SAGETUI_TEST_DEVICE=cuda runs the same tests on a GPU (and compares with CPU
vectors); the default is cpu, where the CUDA checks test the refusal instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil

import numpy as np
import pytest

from engine.st_engine import STEngine, packaged_minilm_path

DEVICE = os.environ.get("SAGETUI_TEST_DEVICE", "cpu")
TEXTS = ["the cat sat on the mat", "a feline rested on a rug", "GPU kernels run fast",
         "queueing delay dominates at high load"]

pytestmark = pytest.mark.slow  # each test loads MiniLM (a few seconds on 2 cores)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.fixture(scope="module")
def fp16_copy(tmp_path_factory):
    """The packaged MiniLM saved as a float16 checkpoint (what fits a 64 MiB carry)."""
    import torch
    from safetensors.torch import load_file, save_file

    src = packaged_minilm_path()
    dst = tmp_path_factory.mktemp("minilm-fp16") / "minilm"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors", "*.md"))
    sd = load_file(os.path.join(src, "model.safetensors"))
    save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in sd.items()},
              str(dst / "model.safetensors"), metadata={"format": "pt"})
    return str(dst)


@pytest.fixture(scope="module")
def cpu_vectors():
    eng = STEngine(device="cpu", threads=1)
    return eng.encode(TEXTS).vectors


def test_float16_checkpoint_still_computes_in_float32(fp16_copy, cpu_vectors):
    eng = STEngine(fp16_copy, device=DEVICE, threads=1)
    assert repr(next(eng.model.parameters()).dtype) == "torch.float32"
    vecs = eng.encode(TEXTS).vectors
    assert vecs.dtype == np.float32 and vecs.shape == (len(TEXTS), 384)
    cos = (vecs * cpu_vectors).sum(1) / np.linalg.norm(vecs, axis=1) \
        / np.linalg.norm(cpu_vectors, axis=1)
    assert cos.min() > 0.999  # only the weights' float16 rounding differs


def test_dtype_float16_is_honoured_and_agrees(fp16_copy, cpu_vectors):
    if DEVICE == "cpu":
        pytest.skip("float16 compute is a CUDA option")
    eng = STEngine(fp16_copy, device=DEVICE, dtype="float16")
    assert repr(next(eng.model.parameters()).dtype) == "torch.float16"
    vecs = eng.encode(TEXTS).vectors
    assert vecs.dtype == np.float32
    cos = (vecs * cpu_vectors).sum(1) / np.linalg.norm(vecs, axis=1) \
        / np.linalg.norm(cpu_vectors, axis=1)
    assert cos.min() > 0.999


async def test_dynamic_batches_match_single_encodes(cpu_vectors):
    eng = STEngine(device=DEVICE, max_wait_ms=50, threads=1)
    try:
        res = await asyncio.gather(*[eng.embed([t]) for t in TEXTS])
    finally:
        await eng.close()
    assert eng.batches < len(TEXTS)  # gathered into fewer encode() calls
    got = np.vstack([r.vectors for r in res])
    assert np.allclose(got, cpu_vectors, atol=2e-3 if DEVICE != "cpu" else 1e-4)
    assert all(r.tokens[0] > 3 for r in res)


def test_token_counts_come_from_the_one_tokenization():
    eng = STEngine(device=DEVICE, threads=1)
    texts = TEXTS + [TEXTS[0], "word " * 400]  # a repeat, and one past max_seq_length
    res = eng.encode(texts)
    ids = eng.model.tokenizer(texts, truncation=True,
                              max_length=eng.model.max_seq_length)["input_ids"]
    assert res.tokens == [len(i) for i in ids]
    assert res.tokens[-1] == eng.model.max_seq_length
    assert set(eng._counts) == set(texts)  # taken from preprocess, no second pass


def test_bad_dtype_names_the_field():
    with pytest.raises(ValueError, match="dtype: 'fp8'"):
        STEngine(device="cpu", dtype="fp8")


def test_cuda_without_a_gpu_is_refused_up_front():
    if _cuda_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(ValueError, match="device: 'cuda' asked for.*sees no CUDA device"):
        STEngine(device="cuda")


def test_cuda_index_out_of_range_is_refused():
    if not _cuda_available():
        pytest.skip("needs a CUDA device")
    with pytest.raises(ValueError, match="device: 'cuda:99' does not exist"):
        STEngine(device="cuda:99")
