"""Builders shared by the scheduler tests: backends, requests, a core driver."""

from __future__ import annotations

import random

from engine.spec import BackendSpec
from scheduler.actions import Dispatch, Fail, Reject, SetTimer
from scheduler.config import ControlPlaneConfig
from scheduler.core import ControlPlane
from vocab import Request


def llm(name: str, conc: int = 4, preset: str = "7b-h100", caps=("chat", "completion"),
        **kw) -> BackendSpec:
    return BackendSpec(name=name, kind="sim", capabilities=list(caps), preset=preset,
                       max_concurrency=conc, **kw)


def emb(name: str, conc: int = 2, preset: str = "minilm-cpu", device: str = "cpu",
        **kw) -> BackendSpec:
    return BackendSpec(name=name, kind="sim", capabilities=["embedding"], preset=preset,
                       max_concurrency=conc, device=device, **kw)


def chat(i, t, prio=2, slo_ttft_ms=None, prompt=64, out=16, **kw) -> Request:
    return Request(id=f"c{i}", cls="chat", arrival=t, t_intended=t, priority=prio,
                   prompt_tokens=prompt, output_tokens=out, slo_ttft_ms=slo_ttft_ms, **kw)


def embed(i, t, texts=1, tokens=None, slo_e2e_ms=None, model="m", **kw) -> Request:
    return Request(id=f"e{i}", cls="embedding", arrival=t, t_intended=t, n_texts=texts,
                   text_tokens=tokens if tokens is not None else 32 * texts,
                   slo_e2e_ms=slo_e2e_ms, model=model, **kw)


def poisson(rate: float, duration: float, seed: int, make) -> list[Request]:
    rng = random.Random(seed)
    t, out, i = 0.0, [], 0
    while True:
        t += rng.expovariate(rate)
        if t >= duration:
            return out
        out.append(make(i, t, rng))
        i += 1


def p99(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


class Ledger:
    """Records every action a core emits and checks the books independently."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.arrived: set[str] = set()
        self.left: dict[str, str] = {}  # id -> completed | failed:reason | rejected:reason
        self.in_flight: dict[int, Dispatch] = {}
        self.flying_ids: set[str] = set()
        self.timers: list[float] = []
        self.dispatches: list[tuple[float, Dispatch]] = []

    def take(self, actions, now: float) -> list:
        for a in actions:
            if isinstance(a, Dispatch):
                assert a.dispatch_id not in self.in_flight
                for r in a.requests:
                    assert r.id in self.arrived, f"{r.id} dispatched before arriving"
                    assert r.id not in self.left, f"{r.id} dispatched after leaving"
                    assert r.id not in self.flying_ids, f"{r.id} dispatched twice"
                    self.flying_ids.add(r.id)
                self.in_flight[a.dispatch_id] = a
                self.dispatches.append((now, a))
            elif isinstance(a, (Reject, Fail)):
                rid = a.request.id
                assert rid not in self.left, f"{rid} left twice"
                assert a.reason, "a reason is required"
                self.left[rid] = ("rejected:" if isinstance(a, Reject) else "failed:") + a.reason
                if rid in self.flying_ids:
                    self.flying_ids.discard(rid)
                    for did, d in list(self.in_flight.items()):
                        if any(r.id == rid for r in d.requests) and all(
                                r.id in self.left for r in d.requests):
                            del self.in_flight[did]
            elif isinstance(a, SetTimer):
                assert a.t > now, "a timer must lie in the future"
                self.timers.append(a.t)
        return actions

    def arrive(self, req: Request, now: float) -> list:
        self.arrived.add(req.id)
        return self.take(self.cp.on_arrival(req, now), now)

    def complete(self, did: int, now: float, ok: bool = True, reason: str = "") -> list:
        d = self.in_flight.pop(did)
        if ok:
            for r in d.requests:
                assert r.id not in self.left
                self.left[r.id] = "completed"
                self.flying_ids.discard(r.id)
        else:
            for r in d.requests:
                self.flying_ids.discard(r.id)
        return self.take(self.cp.on_completion(d.backend, did, now, ok, reason), now)

    def down(self, name: str, now: float) -> list:
        # Requests re-queued by the core are no longer flying; failed ones leave via Fail.
        for did, d in list(self.in_flight.items()):
            if d.backend == name:
                del self.in_flight[did]
                for r in d.requests:
                    self.flying_ids.discard(r.id)
        return self.take(self.cp.on_backend_down(name, now), now)

    def check(self, final: bool = False) -> None:
        self.cp.assert_conserved(final=final)
        cp = self.cp
        assert cp.arrived == len(self.arrived)
        assert cp.completed == sum(1 for v in self.left.values() if v == "completed")
        assert cp.rejected == sum(1 for v in self.left.values() if v.startswith("rejected"))
        assert cp.failed == sum(1 for v in self.left.values() if v.startswith("failed"))
        for c, pool in cp.capable.items():  # the cached free lists match a rescan
            assert cp.free_for(c) == [b for b in pool if b.up and b.in_flight < b.max_conc]
        for b in cp.backend_list:
            if cp.config.baseline == "sage":
                assert 0 <= b.in_flight <= b.max_conc, (b.name, b.in_flight)
        if cp.config.baseline == "sage" and cp.policy.settled_after_pump:
            # What lets on_arrival skip the pump: nothing queued could go anywhere.
            for c, n in cp.queued.items():
                assert not (n and cp.free_for(c)), (c, n, [b.name for b in cp.free_for(c)])
        if final:
            assert set(self.left) == self.arrived


def make_cp(backends, **cfg) -> ControlPlane:
    return ControlPlane(ControlPlaneConfig(**cfg), backends)
