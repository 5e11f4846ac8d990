"""The retrieval stage: faiss indexes answer correctly, bad input is named."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.retrieval import (
    IndexTooLarge,
    RetrievalCost,
    VectorIndex,
    calibrate,
    check_fits,
    generated_corpus,
    read_corpus,
    search_work,
)


def _vectors(n=2000, dim=64, seed=1):
    return np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)


def _clustered(n=2000, dim=64, seed=1):
    """Points around 20 topics: text embeddings cluster, which IVF relies on."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((20, dim), dtype=np.float32)
    return centers[rng.integers(0, 20, n)] + 0.3 * rng.standard_normal((n, dim), dtype=np.float32)


def test_flat_is_exact_cosine():
    x = _vectors()
    idx = VectorIndex(x, "flat")
    scores, ids = idx.search(x[[5, 17]] * 3.0, k=4)  # scale does not matter: cosine
    assert ids[:, 0].tolist() == [5, 17]
    assert np.allclose(scores[:, 0], 1.0, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_recall_the_exact_neighbours(kind):
    x = _clustered()
    q = x[:50] + 0.05 * _vectors(50, 64, seed=2)
    _, exact = VectorIndex(x, "flat").search(q, 10)
    _, approx = VectorIndex(x, kind).search(q, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.8


def test_k_larger_than_corpus_and_bad_queries():
    idx = VectorIndex(_vectors(10, 8), "flat")
    assert idx.search(_vectors(1, 8), 50)[1].shape == (1, 10)
    with pytest.raises(ValueError, match="k: must be >= 1"):
        idx.search(_vectors(1, 8), 0)
    with pytest.raises(ValueError, match="query: 9 dimensions"):
        idx.search(_vectors(1, 9), 3)
    with pytest.raises(ValueError, match="index: 'lsh'"):
        VectorIndex(_vectors(10, 8), "lsh")


def test_an_index_larger_than_memory_is_refused_before_building():
    with pytest.raises(IndexTooLarge, match="10,000,000 x 384"):
        check_fits(10_000_000, 384, "flat", available=2**30)
    check_fits(1000, 384, "hnsw", available=2**30)


def test_corpus_files_name_the_bad_line(tmp_path):
    good = tmp_path / "c.jsonl"
    good.write_text('{"text": "alpha"}\n\n{"text": "beta"}\n')
    assert read_corpus(good) == ["alpha", "beta"]
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"text": "alpha"}\n{"title": "x"}\n')
    with pytest.raises(ValueError, match=r"b.jsonl, line 2: .*`text`"):
        read_corpus(bad)
    with pytest.raises(ValueError, match="not found"):
        read_corpus(tmp_path / "missing.txt")
    plain = tmp_path / "p.txt"
    plain.write_text("one\ntwo\n")
    assert read_corpus(plain) == ["one", "two"]


def test_generated_corpus_is_deterministic():
    assert generated_corpus(5, seed=3) == generated_corpus(5, seed=3)
    assert len(set(generated_corpus(100))) == 100


def test_search_work_shapes():
    assert search_work("flat", 1000) == 1000
    assert search_work("hnsw", 2**20) == pytest.approx(64 * 20)
    assert search_work("ivf", 10_000) < 10_000


def test_calibration_fits_a_usable_cost():
    cost, rows = calibrate("flat", [500, 2000], [1, 8], dim=32, n_queries=5)
    assert len(rows) == 4 and all(r["seconds"] > 0 for r in rows)
    assert all(math.isfinite(v) for v in (cost.a, cost.b, cost.c))
    assert RetrievalCost("flat", 1e-4, 1e-8, 0.0).predict(10_000, 4) == pytest.approx(2e-4)


@pytest.mark.slow
def test_minilm_corpus_finds_its_own_passages():
    from engine.retrieval import embed_corpus
    from engine.st_engine import STEngine

    eng = STEngine(threads=1)
    passages = generated_corpus(64, words_per_passage=24, seed=5)
    vecs = embed_corpus(passages, lambda t: eng.encode(t).vectors, batch=32)
    idx = VectorIndex(vecs, "flat")
    _, ids = idx.search(eng.encode([passages[7], passages[40]]).vectors, 1)
    assert ids[:, 0].tolist() == [7, 40]
