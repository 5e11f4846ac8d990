"""Automatic prefix caching (vLLM's APC) for the simulated engine, in block ranges.

vLLM hashes every full 16-token KV block by its content and the blocks before it
(a chain). A request whose leading blocks hash to cached ones reuses them instead
of recomputing them; blocks nobody references sit in a free queue, oldest freed
first, and stay reusable until an allocation evicts them from its head. A
preempted request's blocks go to that queue too, so its recomputation hits
whatever of them is still there.

The simulator has no token contents, so content is named instead: a block is
block i of a key. A request that declares a prefix (key, tokens) shares the first
tokens // 16 blocks of that key with every other request declaring it (a system
prompt, a RAG template); a multi-turn request (`extend`) also adds its own blocks
to the key, so the next turn of its conversation finds its history cached. A
request's other blocks are its own and matter only if it is preempted: they wait
under a key of its own until it is readmitted.

Why ranges, not blocks: blocks of one key are always used from block 0 up
(a chain hit cannot skip a block), so a key is its cached extent `n`, the extent
in use `ext` (the longest of its running users), and the free ranges [lo, hi)
queued for eviction, evicted from the top. Only keyed ranges are worth tracking
in the free queue; the rest of it is anonymous blocks of finished requests and
never-used ones. While no keyed range is queued the queue is not kept at all
(`live == 0`), which is every run without shared prefixes or preemptions: those
pay one attribute check per step and schedule exactly as without the cache.
"""

from __future__ import annotations

from collections import deque
from typing import Any

UNBOUNDED = 1 << 60  # the key span of a multi-turn request: all of its blocks
LOG_WINDOW = 1000  # look-ups in vLLM's logged hit rate (CachingMetrics' max_recent_requests)


class Key:
    """One named content: blocks [0, n) cached, [0, ext) referenced by running users."""

    __slots__ = ("n", "ext", "users", "segs")

    def __init__(self) -> None:
        self.n = 0
        self.ext = 0
        self.users: dict[Any, int] = {}  # running request -> blocks of this key it references
        self.segs: list[Seg] = []  # its ranges in the free queue, each within [ext, n)


class Holder:
    """A request's side of the cache: the key it declares and how many blocks of
    it (`span`), whether it continues that content (`extend`, a conversation's
    turn), the key's blocks it references (`kref`) and, while it waits preempted,
    its own cached blocks (`own`). Only requests with a prefix or a preemption
    carry one; the engine's hot paths check for None."""

    __slots__ = ("key", "span", "extend", "kref", "own", "preempted")

    def __init__(self, key: Any = None, span: int = 0, extend: bool = False) -> None:
        self.key = key
        self.span = span
        self.extend = extend
        self.kref = 0
        self.own: Key | None = None
        self.preempted = False


class Seg:
    """A run of free blocks in queue order: blocks [lo, hi) of `key`, or hi - lo
    anonymous ones (key None). Evicted from the top (hi) down, as vLLM frees a
    request's blocks last block first."""

    __slots__ = ("key", "lo", "hi")

    def __init__(self, key: Key | None, lo: int, hi: int) -> None:
        self.key = key
        self.lo = lo
        self.hi = hi


class PrefixCache:
    """The cache's books; the engine keeps its own block counts and calls in at
    admission, at the end of a prefill chunk, when a request leaves and when blocks
    are allocated. `adj` is what the engine's per-request block counts overstate
    the blocks in use by: a block shared by m running requests is counted m times
    there and once here."""

    def __init__(self) -> None:
        self.keys: dict[Any, Key] = {}
        self.q: deque[Seg] = deque()  # the free queue while a keyed range is in it
        self.live = 0  # keyed ranges in the queue
        self.adj = 0
        # tokens asked for and found cached at admission (vLLM's prefix cache stats),
        # and the part of both that came from readmitted preempted requests
        self.queries = 0
        self.hits = 0
        self.queries_preempted = 0
        self.hits_preempted = 0
        # What vLLM 0.11 logs as "Prefix cache hit rate": every look-up of a waiting
        # request, one that finds no room (and is looked up again next step) included,
        # over a window of the last LOG_WINDOW look-ups, kept per step as vLLM keeps it.
        self.log: deque[tuple[int, int, int, bool]] = deque()
        self.log_sums = [0, 0, 0]

    # ------------------------------------------------------------ lookup

    def lookup(self, r, cap: int) -> tuple[int, int, int]:
        """(blocks hit on the request's prefix key, blocks hit on its own key, blocks
        of those two that are taken off the free queue). `cap` is the most blocks a hit
        may cover: vLLM recomputes at least the last token."""
        hk = free = 0
        span = UNBOUNDED if (r.extend and r.preempted) else r.span
        if r.key is not None:
            k = self.keys.get(r.key)
            if k is not None:
                hk = min(k.n, span, cap)
                if hk > k.ext:
                    free = hk - k.ext
        ho = 0
        own = r.own
        if own is not None and hk == r.span:
            ho = min(own.n, cap) - r.span
            if ho < 0:
                ho = 0
            free += ho
        return hk, ho, free

    def admit(self, r, hk: int, ho: int, tokens: int, bs: int) -> None:
        """Commit a lookup: the request references its hit blocks from now on."""
        if r.key is not None:
            k = self.keys.get(r.key)
            if k is None:
                k = self.keys[r.key] = Key()
            if hk > k.ext:
                self._cut(k, hk)
                self.adj += hk - k.ext
                k.ext = hk
            k.users[r] = hk
            self.adj -= hk
        r.kref = hk
        if r.own is not None:
            self._drop_own(r, r.span + ho)
        self.queries += tokens
        self.hits += (hk + ho) * bs
        if r.preempted:
            self.queries_preempted += tokens
            self.hits_preempted += (hk + ho) * bs

    def _drop_own(self, r, upto: int) -> None:
        """The request is back: its own blocks below `upto` were hit and are its again;
        the rest of them can no longer be reached (its next blocks will differ)."""
        own, r.own = r.own, None
        for s in own.segs:
            if s.lo < upto:
                s.lo = min(upto, s.hi)
            s.key = None
            self.live -= 1
        own.segs = []
        if self.live == 0:
            self.q.clear()

    def publish(self, r, blocks: int) -> None:
        """The request has computed `blocks` full blocks: those of its key it is the
        first to hold become cached for everyone. The same content computed twice at
        once is kept twice, as in vLLM; only the copy at the front of the key is
        offered to later requests."""
        k = self.keys[r.key]
        e = min(blocks, UNBOUNDED if r.extend else r.span)
        if e <= r.kref or k.n != r.kref:
            return
        k.n = e
        self.adj -= e - r.kref
        r.kref = k.users[r] = e
        if e > k.ext:
            self.adj += e - k.ext
            k.ext = e

    # ------------------------------------------------------------ release

    def release(self, r, held: int, full: int, preempted: bool, free_before: int) -> None:
        """The request leaves the running set and frees its `held` blocks (`full` of
        them complete): last blocks first into the queue, its own full blocks under
        a key of its own when preempted, then the blocks of its prefix key that no
        other running request references."""
        segs: list[Seg] = []
        k = self.keys.get(r.key) if r.key is not None else None
        if k is not None and r.extend:
            self.publish(r, full)
        kref = r.kref
        own = full - r.span if preempted and not r.extend and full > r.span else 0
        anon = held - kref - own
        if anon > 0:
            segs.append(Seg(None, 0, anon))
        if own:
            ok = r.own = Key()
            ok.n = full
            s = Seg(ok, r.span, full)
            ok.segs.append(s)
            segs.append(s)
        if k is not None:
            del k.users[r]
            self.adj += kref
            ext = max(k.users.values(), default=0)
            if ext < k.ext:
                s = Seg(k, ext, k.ext)
                k.segs.append(s)
                segs.append(s)
                self.adj -= k.ext - ext
                k.ext = ext
            r.kref = 0
        self._push(segs, free_before)

    def _push(self, segs: list[Seg], free_before: int) -> None:
        keyed = sum(1 for s in segs if s.key is not None)
        if not keyed and not self.live:
            return
        q = self.q
        if not self.live and free_before > 0:
            q.append(Seg(None, 0, free_before))
        for s in segs:
            if s.key is None and q and q[-1].key is None:
                q[-1].hi += s.hi - s.lo
            else:
                q.append(s)
        self.live += keyed

    # ------------------------------------------------------------ allocation

    def take(self, n: int) -> None:
        """Allocate n blocks from the head of the free queue, evicting cached ones."""
        q = self.q
        while n > 0 and q:
            s = q[0]
            k = s.key
            size = s.hi - s.lo
            if k is None:
                if size > n:
                    s.hi -= n
                    break
                n -= size
                q.popleft()
                continue
            x = size if size < n else n
            s.hi -= x
            n -= x
            if s.hi <= s.lo:
                q.popleft()
                s.key = None
                k.segs.remove(s)
                self.live -= 1
            self._evicted(k, s.hi)
        if self.live == 0:
            q.clear()

    def give_back(self, n: int) -> None:
        """Undo the last `take` of n anonymous head blocks (a fast-forward cut short)."""
        if self.live and n > 0:
            q = self.q
            if q and q[0].key is None:
                q[0].hi += n
            else:
                q.appendleft(Seg(None, 0, n))

    def anon_head(self) -> int | None:
        """Free blocks ahead of the first cached range (None: no cached range queued)."""
        if not self.live:
            return None
        n = 0
        for s in self.q:
            if s.key is not None and s.hi > s.lo:
                return n
            n += s.hi - s.lo
        return n

    def _evicted(self, k: Key, top: int) -> None:
        """Blocks from `top` up are gone or unreachable: the chain breaks there."""
        if top >= k.n:
            return
        k.n = top
        for s in [s for s in k.segs if s.lo >= top]:
            s.key = None
            k.segs.remove(s)
            self.live -= 1

    def _cut(self, k: Key, h: int) -> None:
        """Blocks [ext, h) of k leave the free queue: a hit references them again."""
        for s in list(k.segs):
            if s.lo < h:
                s.lo = min(h, s.hi)
                if s.lo >= s.hi:
                    s.key = None
                    k.segs.remove(s)
                    self.live -= 1
        if self.live == 0:
            self.q.clear()

    def logged(self, lookups: int, queries: int, hits: int, same: bool = False) -> None:
        """One step's look-ups into the logged window, trimmed to LOG_WINDOW look-ups as
        vLLM trims it (whole steps, the newest kept). `same`: `lookups` identical
        look-ups of consecutive fast-forwarded steps, which are trimmed one by one."""
        self.log.append((lookups, queries, hits, same))
        w = self.log_sums
        w[0] += lookups
        w[1] += queries
        w[2] += hits
        log = self.log
        while w[0] > LOG_WINDOW and (len(log) > 1 or log[0][3]):
            a, b, c, sm = log[0]
            drop = min(a, w[0] - LOG_WINDOW) if sm else a
            if drop == a:
                log.popleft()
                db, dc = b, c
            else:
                db, dc = b // a * drop, c // a * drop
                log[0] = (a - drop, b - db, c - dc, sm)
            w[0] -= drop
            w[1] -= db
            w[2] -= dc

    def logged_hit_rate(self) -> float | None:
        return self.log_sums[2] / self.log_sums[1] if self.log_sums[1] else None

    def hit_rate(self) -> float | None:
        """Cached / asked-for tokens over every admission, readmissions included."""
        return self.hits / self.queries if self.queries else None
