"""Replays a workload against live servers with honest timing.

Why this shape: open loop sends each request at t0 + its intended time —
absolute deadlines on time.monotonic(), so a late send never pushes the
following ones (no cumulative drift) — woken just before the deadline by
loadgen.pacer and yielding the rest of the way. Closed loop runs one coroutine
per client, so never more than N are in flight. The GC is frozen and off
during measurement. Several worker processes can share one schedule and one
start time (CLOCK_MONOTONIC is system-wide) for rates one process cannot hold.
A progress callback gets one per-second sample (Sample columns).
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import multiprocessing as mp
import queue as queue_mod
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from vocab import Request

from .client import Client, ClientConfig, run_coro
from .metrics import second_sample
from .pacer import LEAD_S, Pacer
from .pipeline import LiveJobs
from .schedule import Source
from .spec import WorkloadSpec
from .tokens import PromptMaker

QUIET_GAP_S = 0.005  # a gap in the sends this wide takes a second's bookkeeping (~1-4 ms)
QUIET_MAX_DEFER_S = 0.25  # ...found within this long after the second ends, else the widest one
QUIET_AFTER_SEND_S = 0.0003  # start it this long after the send before the gap


@dataclass
class Tick:
    """What one second of one worker saw; merged and turned into a sample."""

    t_s: int
    offered: int
    in_flight: int
    finished: list[Request] = field(default_factory=list)
    worker: int = 0


@dataclass
class RunResult:
    records: list[Request]
    max_in_flight: int
    workers: int
    pacer: str = ""  # how sends were timed (Pacer.describe()), to report beside lateness
    prompt_salt: str = ""  # what made this run's prompt texts its own (loadgen.tokens)


class _Run:
    def __init__(self, spec: WorkloadSpec, cfg: ClientConfig, *, tokenizer_dir: str | None,
                 worker: int, workers: int, on_tick: Callable[[Tick], None] | None,
                 preflight: int = 8, lead_s: float = LEAD_S, prompt_salt: str = ""):
        self.spec, self.cfg = spec, cfg
        self.preflight = preflight
        self.pacer = Pacer(lead_s)
        self.worker, self.workers = worker, workers
        self.prompts = PromptMaker(tokenizer_dir, seed=spec.seed, salt=prompt_salt)
        self.source = Source(spec)
        self.on_tick = on_tick
        self.records: list[Request] = []
        self.offered: dict[int, int] = defaultdict(int)
        self.finished: dict[int, list[Request]] = defaultdict(list)
        self.error: BaseException | None = None
        self.jobs: LiveJobs | None = None
        self.send_times: list[float] = []  # open loop: this worker's intended sends, sorted

    def _mine(self, reqs: list[Request]) -> list[Request]:
        if self.workers == 1:
            return reqs
        if self.source.closed:
            return [r for r in reqs if int(r.client_id[1:]) % self.workers == self.worker]
        return reqs[self.worker::self.workers]

    async def _dispatch(self, client: Client, req: Request, body: bytes | None) -> list[Request]:
        if req.cls == "pipeline":
            assert self.jobs is not None  # built before the run when the workload has pipelines
            recs = await self.jobs.run(client, req)
        else:
            recs = [await client.call(req, body=body)]
        for r in recs:
            self.records.append(r)
            if r.parent_id is None:
                assert r.t_done is not None  # Client.call stamps every record it returns
                self.finished[int(r.t_done)].append(r)
        return recs

    async def _open(self, client: Client, schedule: list[Request], bodies: list) -> None:
        """Each request's own task waits for its time and sends in the same loop
        step it wakes in (a pacer that woke, then created the sending task,
        would lose a loop iteration of other work to the send's lateness)."""
        tasks: set[asyncio.Task] = set()
        todo = iter(zip(schedule, bodies, strict=True))

        def spawn() -> None:
            item = next(todo, None)
            if item is not None:
                task = asyncio.create_task(send(*item))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        async def send(req: Request, body: bytes | None) -> None:
            await self.pacer.wait(client.t0 + req.t_intended)
            spawn()  # the next request waits for its time while this one is sent
            await self._dispatch(client, req, body)

        spawn()
        while tasks:
            await asyncio.gather(*list(tasks))

    async def _client_loop(self, client: Client, req: Request) -> None:
        while True:
            await self.pacer.wait(client.t0 + req.t_intended)
            self.offered[int(req.t_intended)] += 1
            recs = await self._dispatch(client, req, None)
            top = recs[-1]
            assert top.t_done is not None  # Client.call stamps every record it returns
            nxt = self.source.on_done(top, top.t_done)
            if not nxt:
                return
            req = nxt[0]

    async def _progress(self, client: Client, on_tick: Callable[[Tick], None]) -> None:
        k = 1
        while True:
            # every record finished before the boundary is filed when this runs
            # (stamp and filing happen in one loop step); timers may fire early
            while (delay := client.t0 + k - time.monotonic()) > 0:
                await asyncio.sleep(delay + 0.0005)
            in_flight = client.in_flight
            quiet = self._quiet_after(k)
            if quiet is not None:
                await self.pacer.wait(client.t0 + quiet)
            tick = Tick(k - 1, self.offered.pop(k - 1, 0), in_flight,
                        self.finished.pop(k - 1, []), self.worker)
            try:
                on_tick(tick)
            except Exception as e:  # reported after the run; the run itself goes on
                self.error = e
                return
            k += 1

    def _quiet_after(self, t: float) -> float | None:
        """Open loop: just after the first send at or after run time t that the
        schedule follows with a gap of QUIET_GAP_S (else the widest gap within
        QUIET_MAX_DEFER_S), so the second's bookkeeping and the progress
        callback (milliseconds) do not hold up sends; None: do it now."""
        ts = self.send_times
        i = bisect.bisect_left(ts, t)
        best, best_gap = None, 0.0
        while i + 1 < len(ts) and ts[i] < t + QUIET_MAX_DEFER_S:
            gap = ts[i + 1] - ts[i]
            if gap > best_gap:
                best, best_gap = ts[i], gap
                if gap >= QUIET_GAP_S:
                    break
            i += 1
        return None if best is None else best + QUIET_AFTER_SEND_S

    async def _preflight(self, client: Client, n: int) -> None:
        """Before t0: n concurrent 1-token requests per target URL of each class used.

        Opens the pooled connections and warms lazy imports, so the first
        measured second is not paying for them; a dead target stops the run
        here with its URL and reason.
        """
        classes = {"pipeline": ("embedding", "chat")}
        used = {c for cls, w in self.spec.mix.items() if w > 0 for c in classes.get(cls, (cls,))}
        for cls in sorted(used):
            model = self.spec.embedding_model if cls == "embedding" else self.spec.model
            for _ in self.cfg.targets.get(cls, [None]):
                reqs = [Request(
                    id=f"preflight-{cls}-{i}", t_intended=0.0, cls=cls, client_id="preflight", priority=2,
                    prompt_tokens=4, output_tokens=1, n_texts=1 if cls == "embedding" else 0,
                    text_tokens=4, slo_ttft_ms=None, slo_e2e_ms=None, model=model) for i in range(n)]
                recs = await asyncio.gather(*(client.call(r) for r in reqs))
                bad = [r for r in recs if r.status != "completed"]
                if bad:
                    raise RuntimeError(f"preflight to {bad[0].backend} ({cls}) failed: {bad[0].reason}")
        client.max_in_flight = 0

    async def main(self, t0: float | None, ready: Callable[[], float] | None = None) -> RunResult:
        cfg = self.cfg
        async with Client(cfg, self.prompts) as client, self.pacer:
            initial = self._mine(self.source.initial())
            if self.preflight > 0:
                await self._preflight(client, self.preflight)
            if self.spec.mix["pipeline"] > 0:
                self.jobs = LiveJobs(self.spec, make_index=cfg.make_index, corpus=cfg.corpus)
                await self.jobs.build(client)
            if not self.source.closed:
                for r in initial:
                    self.offered[int(r.t_intended)] += 1
                self.send_times = [r.t_intended for r in initial]
            bodies = [] if self.source.closed else [
                None if r.cls == "pipeline" else client.encode(client.body(r)) for r in initial]
            gc.collect()
            gc.freeze()
            gc.disable()
            if ready is not None:
                t0 = ready()
            client.t0 = time.monotonic() + 0.05 if t0 is None else t0
            on_tick = self.on_tick
            prog = asyncio.create_task(self._progress(client, on_tick)) if on_tick else None
            try:
                if self.source.closed:
                    await asyncio.gather(*(self._client_loop(client, r) for r in initial))
                else:
                    await self._open(client, initial, bodies)
            finally:
                gc.enable()
                gc.unfreeze()
                if prog is not None:
                    prog.cancel()
            if self.on_tick is not None and self.error is None:
                for s in sorted(set(self.finished) | set(self.offered)):
                    self.on_tick(Tick(s, self.offered.pop(s, 0), 0, self.finished.pop(s, []), self.worker))
            if self.error is not None:
                raise RuntimeError(f"progress callback failed: {self.error!r}") from self.error
            return RunResult(self.records, client.max_in_flight, self.workers, self.pacer.describe())


class _Merger:
    """Turns ticks from all workers into one sample per second, in order.

    Second s is reported once every worker still running has reported s
    (each reports its seconds in order). Counts that arrive for a second
    already reported (a late closed-loop send, a straggler) go into the next.
    """

    def __init__(self, workers: int, on_progress: Callable[[dict], None]):
        self.active = set(range(workers))
        self.seen: dict[int, int] = {}
        self.on_progress = on_progress
        self.parts: dict[int, list[Tick]] = defaultdict(list)
        self.next_s = 0
        self.done_total = 0

    def add(self, tick: Tick) -> None:
        self.parts[max(tick.t_s, self.next_s)].append(tick)
        self.seen[tick.worker] = max(self.seen.get(tick.worker, -1), tick.t_s)
        self._drain()

    def done(self, worker: int) -> None:
        self.active.discard(worker)
        self._drain()

    def _drain(self) -> None:
        if self.active:
            limit = min(self.seen.get(w, -1) for w in self.active)
        else:
            limit = max(self.parts, default=self.next_s - 1)
        while self.next_s <= limit:
            self._emit(self.next_s)
            self.next_s += 1

    def _emit(self, t_s: int) -> None:
        ticks = self.parts.pop(t_s, [])
        finished = [r for t in ticks for r in t.finished]
        self.done_total += len(finished)
        self.on_progress(second_sample(
            t_s, offered=sum(t.offered for t in ticks), finished=finished,
            in_flight=sum(t.in_flight for t in ticks), done_total=self.done_total))


def run(spec: WorkloadSpec, cfg: ClientConfig, *, tokenizer_dir: str | None = None,
        workers: int = 1, on_progress: Callable[[dict], None] | None = None,
        preflight: int = 8, lead_s: float = LEAD_S, prompt_salt: str | None = None) -> RunResult:
    """Run the workload; records are sorted by intended time. Blocks until done.

    preflight: warm-up requests per target before t0 (0 = none; see _Run._preflight).
    lead_s: the pacer wakes this long before each send time and yields until it
    (see loadgen/pacer.py); 0 = no yielding, less CPU, later sends.
    prompt_salt: makes the prompt texts this run's own, so an engine's prefix
    cache holds none of them from an earlier run (loadgen.tokens.PromptMaker).
    None (the default) draws a fresh one; "" keeps the texts of the seed alone.
    The sizes and send times are the seed's either way.
    """
    if prompt_salt is None:
        prompt_salt = secrets.token_hex(8)
    if workers < 1:
        raise ValueError("workers must be >= 1")
    if lead_s < 0:
        raise ValueError(f"lead_s must be >= 0, got {lead_s}")
    if spec.clients is not None and cfg.concurrency * workers < spec.clients.n:
        raise ValueError(f"concurrency: {cfg.concurrency} connections x {workers} worker(s) "
                         f"cannot carry clients.n = {spec.clients.n} closed-loop clients")
    merger = _Merger(workers, on_progress) if on_progress else None
    if workers == 1:
        r = _Run(spec, cfg, tokenizer_dir=tokenizer_dir, worker=0, workers=1,
                 on_tick=merger.add if merger else None, preflight=preflight, lead_s=lead_s,
                 prompt_salt=prompt_salt)
        res = run_coro(r.main(None))
        if merger:
            merger.done(0)
        res.records.sort(key=lambda x: (x.t_intended, x.id))
    else:
        res = _run_multi(spec, cfg, tokenizer_dir, workers, merger, preflight, lead_s, prompt_salt)
    res.prompt_salt = prompt_salt
    return res


def _worker(spec_json: str, cfg: ClientConfig, tokenizer_dir, worker: int, workers: int,
            ready_q, go, t0_val, out_q, progress: bool, preflight: int, lead_s: float,
            prompt_salt: str) -> None:
    try:
        spec = WorkloadSpec.model_validate_json(spec_json)

        def ready() -> float:
            ready_q.put(worker)
            go.wait()
            return t0_val.value

        on_tick = (lambda t: out_q.put(("tick", t))) if progress else None
        r = _Run(spec, cfg, tokenizer_dir=tokenizer_dir, worker=worker, workers=workers,
                 on_tick=on_tick, preflight=preflight, lead_s=lead_s, prompt_salt=prompt_salt)
        res = run_coro(r.main(None, ready))
        out_q.put(("done", (worker, res.records, res.max_in_flight, res.pacer)))
    except BaseException as e:  # the parent must hear of it, not hang
        ready_q.put(worker)
        out_q.put(("error", (worker, f"worker {worker}: {e!r}")))


def _run_multi(spec: WorkloadSpec, cfg: ClientConfig, tokenizer_dir, workers: int,
               merger: _Merger | None, preflight: int, lead_s: float, prompt_salt: str) -> RunResult:
    ctx = mp.get_context("spawn")
    ready_q, out_q = ctx.Queue(), ctx.Queue()
    go, t0_val = ctx.Event(), ctx.Value("d", 0.0)
    procs = [ctx.Process(target=_worker, daemon=True,
                         args=(spec.model_dump_json(), cfg, tokenizer_dir, i, workers, ready_q, go,
                               t0_val, out_q, merger is not None, preflight, lead_s, prompt_salt))
             for i in range(workers)]
    for p in procs:
        p.start()
    try:
        for _ in range(workers):
            ready_q.get(timeout=120)
        t0_val.value = time.monotonic() + 0.1
        go.set()
        records: list[Request] = []
        max_if = 0
        pacer = ""
        finished = 0
        errors = []
        while finished < workers:
            try:
                kind, payload = out_q.get(timeout=1.0)
            except queue_mod.Empty:
                if not any(p.is_alive() for p in procs) and out_q.empty():
                    raise RuntimeError("load generator workers died without a result") from None
                continue
            if kind == "tick":
                if merger is not None:  # workers send ticks only when it exists
                    merger.add(payload)
                continue
            if kind == "done":
                records.extend(payload[1])
                max_if += payload[2]
                pacer = payload[3]
            else:
                errors.append(payload[1])
            finished += 1
            if merger:
                merger.done(payload[0])
        if errors:
            raise RuntimeError("; ".join(errors))
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
    records.sort(key=lambda x: (x.t_intended, x.id))
    return RunResult(records, max_if, workers, pacer)


def run_in_thread(*args, **kw) -> RunResult:
    """run() from code that already has an event loop (the loop here is its own)."""
    box: dict = {}

    def target() -> None:
        try:
            box["r"] = run(*args, **kw)
        except BaseException as e:
            box["e"] = e

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
    return box["r"]
