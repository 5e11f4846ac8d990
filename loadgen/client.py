"""The HTTP client: sends one planned Request and fills in what happened to it.

Why its own module: every way a request can go wrong must end as a record
(failed/rejected with a reason) while the run goes on, and every stamp must
be taken on the same monotonic clock as the pacer's deadlines.
Reasons are `kind: detail`, kind one of http_<status>, timeout, connection,
server_error, garbage, stream_closed, client_error.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from vocab import Request

from .tokens import PromptMaker

PATHS = {"chat": "/v1/chat/completions", "completion": "/v1/completions", "embedding": "/v1/embeddings"}


BALANCERS = ("round-robin", "least-request")


@dataclass
class ClientConfig:
    """targets: class → base URLs (one = a gateway; several = client-side
    balancing, for the baselines without a control plane). A `pipeline` entry is
    not needed: its stages go to the chat and embedding targets. `balance`:
    `round-robin`, or `least-request` (the URL with the fewest requests this client
    has in flight there, ties to list order: Envoy/nginx `least_request`)."""

    targets: dict[str, list[str]]
    concurrency: int = 256
    balance: str = "round-robin"
    timeout_s: float = 300.0
    send_priority_field: bool = False  # vLLM's `priority` body field (lower = sooner)
    ignore_eos: bool = True
    extra_headers: dict[str, str] = field(default_factory=dict)
    # pipeline retrieve stages: (vectors, index kind) -> an index with .search(queries, k)
    # (engine.retrieval.VectorIndex, faiss, in a sagetui run); None: exact numpy search
    make_index: Any = None
    corpus: list[str] | None = None  # the retrieve stages' passages; None: synthetic ones

    def __post_init__(self) -> None:
        if isinstance(self.targets, str):
            self.targets = {c: [self.targets] for c in PATHS}
        for cls, urls in self.targets.items():
            if cls not in PATHS:
                raise ValueError(f"targets: unknown class {cls!r} (one of {', '.join(PATHS)})")
            if isinstance(urls, str):
                self.targets[cls] = urls = [urls]
            if not urls:
                raise ValueError(f"targets.{cls}: no URL")
            for u in urls:
                if not u.startswith(("http://", "https://")):
                    raise ValueError(f"targets.{cls}: {u!r} is not an http(s) URL")
        if self.balance not in BALANCERS:
            raise ValueError(f"balance: {self.balance!r} is not one of {', '.join(BALANCERS)}")
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")


class _Failure(Exception):
    def __init__(self, reason: str, status: str = "failed"):
        super().__init__(reason)
        self.reason = reason
        self.status = status


def parse_sse_line(line: bytes) -> tuple[str, dict | None]:
    """One line of an SSE stream → ("skip"|"done"|"data", obj).

    Blank lines, comments (':') and other fields (event:, id:) are skipped;
    `data: [DONE]` ends the stream; a data line that is not a JSON object
    raises _Failure("garbage: ...").
    """
    s = line.strip()
    if not s or s.startswith(b":"):
        return "skip", None
    if not s.startswith(b"data:"):
        if s.split(b":", 1)[0] in (b"event", b"id", b"retry"):
            return "skip", None
        raise _Failure(f"garbage: not an SSE line: {s[:80]!r}")
    payload = s[5:].strip()
    if payload == b"[DONE]":
        return "done", None
    try:
        obj = json.loads(payload)
    except ValueError:
        raise _Failure(f"garbage: bad JSON in stream: {payload[:80]!r}") from None
    if not isinstance(obj, dict):
        raise _Failure(f"garbage: stream chunk is not an object: {payload[:80]!r}")
    return "data", obj


def _chunk_text(obj: dict) -> str:
    parts = []
    for ch in obj.get("choices") or []:
        delta = ch.get("delta")
        if isinstance(delta, dict):
            parts.append(delta.get("content") or delta.get("reasoning_content") or "")
        else:
            parts.append(ch.get("text") or "")
    return "".join(parts)


def _is_token_chunk(obj: dict) -> bool:
    """A chunk that carries output: text, or the finishing chunk (a token whose
    bytes do not decode alone comes with empty text). A chat role-only first
    chunk is not output."""
    choices = obj.get("choices") or []
    return bool(choices) and bool(_chunk_text(obj) or any(
        isinstance(ch, dict) and ch.get("finish_reason") for ch in choices))


def _http_failure(status: int, raw: bytes) -> _Failure:
    """An HTTP error answer. The gateway's refusals ("Request rejected by the
    control plane: <reason>.", code = the core's reason) and 429 count as
    rejected, with the core's reason as the kind; the rest are failed http_<status>."""
    text = raw[:400].decode("utf-8", "replace")
    try:
        err = json.loads(raw).get("error") or {}
    except (ValueError, AttributeError):
        err = {}
    msg = str(err.get("message", "")) if isinstance(err, dict) else ""
    code = err.get("code") if isinstance(err, dict) else None
    if "rejected by the control plane" in msg and code:
        return _Failure(f"{code}: {msg}"[:200], "rejected")
    detail = (msg or text)[:200].replace("\n", " ")
    return _Failure(f"http_{status}: {detail}", "rejected" if status == 429 else "failed")


def _error_text(obj) -> str:
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err)[:200]
    return str(err or obj.get("message", ""))[:200]


class Client:
    """Use as `async with Client(cfg, prompts, t0) as c: rec = await c.call(req)`.

    t0 is the run's start on time.monotonic(); every stamp is relative to it.
    """

    def __init__(self, cfg: ClientConfig, prompts: PromptMaker | None = None, t0: float | None = None):
        self.cfg = cfg
        self.prompts = prompts or PromptMaker()
        self.t0 = time.monotonic() if t0 is None else t0
        self._rr = {cls: itertools.cycle(urls) for cls, urls in cfg.targets.items()}
        self._open: dict[str, int] = {}  # base URL -> requests in flight there
        self.session: aiohttp.ClientSession | None = None
        self.in_flight = 0
        self.max_in_flight = 0

    async def __aenter__(self) -> Client:
        # idle connections are dropped before the server's keep-alive would (uvicorn's
        # 5 s): a send on one the server is closing fails "Server disconnected"
        # (engine.http.KEEPALIVE_S; loadgen does not import engine)
        conn = aiohttp.TCPConnector(limit=self.cfg.concurrency, limit_per_host=0,
                                    ttl_dns_cache=300, keepalive_timeout=4.0)
        self.session = aiohttp.ClientSession(
            connector=conn, timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s),
            read_bufsize=2**16,
        )
        return self

    async def __aexit__(self, *exc) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _url(self, cls: str) -> str:
        it = self._rr.get(cls)
        if it is None:
            raise ValueError(f"targets: no URL for class {cls!r}")
        if self.cfg.balance == "least-request":
            urls = self.cfg.targets[cls]
            base = min(urls, key=lambda u: self._open.get(u, 0))
        else:
            base = next(it)
        return base + PATHS[cls]

    def headers(self, req) -> dict[str, str]:
        h = {"X-Request-Id": req.id, "X-Client-Id": req.client_id, "X-Priority": str(req.priority),
             **self.cfg.extra_headers}
        if req.slo_ttft_ms is not None:
            h["X-SLO-TTFT-Ms"] = f"{req.slo_ttft_ms:g}"
        if req.slo_e2e_ms is not None:
            h["X-SLO-E2E-Ms"] = f"{req.slo_e2e_ms:g}"
        if req.slo_tpot_ms is not None:
            h["X-SLO-TPOT-Ms"] = f"{req.slo_tpot_ms:g}"
        if req.slo_tier:
            h["X-SLO-Tier"] = req.slo_tier
        return h

    def body(self, req, text: str | None = None, texts: list[str] | None = None) -> dict:
        """The OpenAI request body; prompts come from the PromptMaker unless given."""
        if req.cls == "embedding":
            if texts is None:
                texts = [self.prompts.text(req.tokens_per_text(), f"{req.id}/{i}")
                         for i in range(req.n_texts)]
            return {"model": req.model, "input": texts}
        if text is None and req.prefix_tokens:
            # the shared prefix's text (the same for every request naming it), then its own;
            # a conversation's history repeats its key's text, not the earlier replies
            text = (self.prompts.text(req.prefix_tokens, req.prefix_id) + " "
                    + self.prompts.text(req.prompt_tokens - req.prefix_tokens, req.id))
        if text is None:
            text = self.prompts.text(req.prompt_tokens, req.id)
        b: dict = {"model": req.model, "max_tokens": req.output_tokens, "stream": True,
                   "stream_options": {"include_usage": True}}
        if self.cfg.ignore_eos:
            b["ignore_eos"] = True
        if req.cls == "chat":
            b["messages"] = [{"role": "user", "content": text}]
        else:
            b["prompt"] = text
        if self.cfg.send_priority_field:
            b["priority"] = req.priority
        return b

    @staticmethod
    def encode(body: dict) -> bytes:
        return json.dumps(body, separators=(",", ":")).encode()

    async def call(self, req: Request, *, text: str | None = None, texts: list[str] | None = None,
                   body: bytes | None = None, vectors: list | None = None,
                   output: list[str] | None = None,
                   headers: dict[str, str] | None = None) -> Request:
        """Send now and return `req` with its outcome filled in; never raises for a
        server's fault. `req.cls` is chat/completion/embedding.

        `body`: the JSON body already encoded (`encode(body(req))`, built before
        the clock starts); `vectors`, when given, receives the embeddings of an
        embedding request; `output`, when given, the streamed text of a chat or
        completion request (a client that reads the answer, e.g. an agent);
        `headers`, sent besides the request's own (a pipeline stage's).
        """
        if self.session is None:
            raise RuntimeError("Client used outside `async with`")
        if body is None:
            body = self.encode(self.body(req, text, texts))
        rec = req
        url = self._url(req.cls)
        rec.backend = base = url.split("/v1/")[0]
        self._open[base] = self._open.get(base, 0) + 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        rec.t_sent = self.now()
        try:
            sent = self.headers(req)
            if headers:
                sent.update(headers)
            sent["Content-Type"] = "application/json"
            async with self.session.post(url, data=body, headers=sent) as resp:
                self._read_headers(resp, rec)
                if resp.status >= 400:
                    raise _http_failure(resp.status, await resp.read())
                if req.cls == "embedding":
                    await self._embedding(resp, rec, req, vectors)
                else:
                    await self._stream(resp, rec, output)
            rec.status = "completed"
        except _Failure as f:
            rec.status, rec.reason = f.status, f.reason
        except TimeoutError:
            rec.status, rec.reason = "failed", f"timeout: no answer within {self.cfg.timeout_s:g} s"
        except aiohttp.ClientPayloadError as e:
            rec.status, rec.reason = "failed", f"stream_closed: {e}"[:200]
        except aiohttp.ServerDisconnectedError as e:
            rec.status, rec.reason = "failed", f"stream_closed: {e}"[:200]
        except aiohttp.ClientConnectionError as e:
            rec.status, rec.reason = "failed", f"connection: {e}"[:200]
        except aiohttp.ClientError as e:
            rec.status, rec.reason = "failed", f"client_error: {type(e).__name__}: {e}"[:200]
        finally:
            if rec.t_done is None:
                rec.t_done = self.now()
            self.in_flight -= 1
            self._open[base] -= 1
        return rec

    @staticmethod
    def _read_headers(resp: aiohttp.ClientResponse, rec: Request) -> None:
        h = resp.headers
        try:
            if "x-sage-queue-ms" in h:
                rec.queue_wait_ms = float(h["x-sage-queue-ms"])
            if "x-sage-overhead-us" in h:
                rec.overhead_us = float(h["x-sage-overhead-us"])
        except ValueError:
            raise _Failure(f"garbage: bad x-sage header {dict(h)!r}"[:200]) from None
        if "x-sage-backend" in h:
            rec.backend = h["x-sage-backend"]

    async def _stream(self, resp: aiohttp.ClientResponse, rec: Request,
                      output: list[str] | None = None) -> None:
        """Reads whatever bytes have arrived (one await per network read, not
        per line); every line of one read is stamped with that read's time."""
        chunks = rec.chunk_times
        usage = None
        done = False
        buf = b""
        async for data in resp.content.iter_any():
            t = self.now()
            lines = (buf + data).split(b"\n")
            buf = lines.pop()
            for line in lines:
                kind, obj = parse_sse_line(line)
                if kind == "done":
                    done = True
                    break
                if obj is None:  # "skip": blank lines, comments, other fields
                    continue
                if "error" in obj:
                    raise _Failure(f"server_error: {_error_text(obj)}")
                if output is not None:
                    output.append(_chunk_text(obj))
                if _is_token_chunk(obj):
                    if not chunks:
                        rec.t_first_token = t
                    chunks.append(t)
                if obj.get("usage"):
                    usage = obj["usage"]
            if done:
                break
        if not done and buf.strip() == b"data: [DONE]":
            done = True  # the last line came without its newline
        rec.t_done = self.now()
        if not done:
            raise _Failure(f"stream_closed: ended after {len(chunks)} chunks without [DONE]")
        if not chunks:
            raise _Failure("garbage: stream had no output chunk")
        if usage:
            rec.output_tokens = int(usage.get("completion_tokens", len(chunks)))
            rec.prompt_tokens = int(usage.get("prompt_tokens", rec.prompt_tokens))
        else:
            rec.output_tokens = len(chunks)

    async def _embedding(self, resp: aiohttp.ClientResponse, rec: Request, req, vectors) -> None:
        raw = await resp.read()
        rec.t_done = self.now()
        try:
            obj = json.loads(raw)
        except ValueError:
            raise _Failure(f"garbage: embeddings answer is not JSON: {raw[:80]!r}") from None
        if not isinstance(obj, dict):
            raise _Failure("garbage: embeddings answer is not an object")
        if "error" in obj:
            raise _Failure(f"server_error: {_error_text(obj)}")
        data = obj.get("data")
        if not isinstance(data, list) or len(data) != req.n_texts:
            got = len(data) if isinstance(data, list) else "no"
            raise _Failure(f"garbage: expected {req.n_texts} embeddings, got {got}")
        rec.output_tokens = 0
        usage = obj.get("usage") or {}
        if "prompt_tokens" in usage:
            rec.prompt_tokens = int(usage["prompt_tokens"])
        if vectors is not None:
            try:
                vectors.extend(d["embedding"] for d in sorted(data, key=lambda d: d["index"]))
            except (TypeError, KeyError):
                raise _Failure("garbage: embeddings without `index`/`embedding`") from None


def run_coro(coro):
    """Run on uvloop when installed (faster pacing), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
