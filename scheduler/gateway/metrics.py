"""Prometheus metrics of one gateway. Names and meanings: docs/gateway.md.

Why not prometheus_client's Counter/Gauge/Histogram on the hot path: each
update takes a lock and several calls (~13 updates per request cost more than
the control-plane decision itself). The gateway is one asyncio thread, so
updates here are plain attribute arithmetic, and a custom collector turns them
into Prometheus families only when /metrics is scraped. One registry per app,
so tests and several gateways in one process never share numbers.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

# Latency buckets in seconds: sub-millisecond (overhead, queue) to minutes (long chats).
_LAT = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        10.0, 30.0, 60.0, 120.0)
_US = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class _Value:
    __slots__ = ("v",)

    def __init__(self) -> None:
        self.v = 0.0

    def inc(self, n: float = 1.0) -> None:
        self.v += n

    def dec(self, n: float = 1.0) -> None:
        self.v -= n

    def set(self, v: float) -> None:
        self.v = v


class _Hist:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, x: float) -> None:
        self.counts[bisect_left(self.bounds, x)] += 1  # `le` is inclusive
        self.sum += x


class _Family:
    """One metric name with labelled children, created on first use."""

    __slots__ = ("buckets", "children", "doc", "kind", "labelnames", "name")

    def __init__(self, kind: str, name: str, doc: str, labelnames: list[str],
                 buckets: tuple[float, ...] = ()) -> None:
        self.kind, self.name, self.doc = kind, name, doc
        self.labelnames, self.buckets = labelnames, buckets
        self.children: dict[tuple[str, ...], _Value | _Hist] = {}

    def labels(self, *values: str):
        child = self.children.get(values)
        if child is None:
            child = _Hist(self.buckets) if self.kind == "histogram" else _Value()
            self.children[values] = child
        return child

    def family(self) -> Metric:
        """This metric's current values as a Prometheus family (built only on a scrape)."""
        if self.kind == "gauge":
            return self._values(GaugeMetricFamily(self.name, self.doc, labels=self.labelnames))
        if self.kind == "counter":
            return self._values(CounterMetricFamily(self.name, self.doc, labels=self.labelnames))
        fam = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        for values, h in self.children.items():
            assert isinstance(h, _Hist)  # a histogram family makes only _Hist children
            cum, buckets = 0, []
            for bound, n in zip((*h.bounds, float("inf")), h.counts, strict=True):
                cum += n
                buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cum))
            fam.add_metric(list(values), buckets, h.sum)
        return fam

    def _values(self, fam: GaugeMetricFamily | CounterMetricFamily) -> Metric:
        """`fam` filled with the children's values (gauges and counters)."""
        for values, c in self.children.items():
            assert isinstance(c, _Value)  # only histogram families make _Hist children
            fam.add_metric(list(values), c.v)
        return fam


class GatewayMetrics:
    """The gateway's instruments; `registry` is what /metrics renders."""

    def __init__(self, policy: str) -> None:
        self.policy = policy
        self._families: list[_Family] = []

        def m(kind: str, name: str, doc: str, labels: list[str],
              buckets: tuple[float, ...] = ()) -> _Family:
            fam = _Family(kind, name, doc, labels, buckets)
            self._families.append(fam)
            return fam

        self.queue_depth = m("gauge", "sage_queue_depth",
                             "Requests received and not yet dispatched, per class", ["class"])
        self.in_flight = m("gauge", "sage_backend_in_flight",
                           "Requests dispatched to a backend and not yet finished", ["backend"])
        self.backend_up = m("gauge", "sage_backend_up",
                            "1 when the backend is in service, 0 when taken out", ["backend"])
        self.requests = m("counter", "sage_requests",
                          "Requests that left the gateway, by class and outcome",
                          ["class", "status"])
        self.rejections = m("counter", "sage_rejections", "Requests refused, by reason",
                            ["reason"])
        self.decisions = m("counter", "sage_decisions",
                           "Control-plane decisions (core calls) per policy", ["policy"])
        self.decision_us = m("histogram", "sage_decision_microseconds",
                             "Wall-clock time spent in the control-plane core per decision",
                             ["policy"], _US)
        self.queue_s = m("histogram", "sage_queue_seconds", "Queue wait: dispatched - received",
                         ["class"], _LAT)
        self.ttft_s = m("histogram", "sage_ttft_seconds",
                        "Arrival at the gateway to the first streamed chunk", ["class"], _LAT)
        self.e2e_s = m("histogram", "sage_e2e_seconds",
                       "Arrival at the gateway to the answer sent", ["class"], _LAT)
        self.batch_size = m("histogram", "sage_upstream_batch_size",
                            "Client requests per upstream call", ["class"],
                            (1, 2, 4, 8, 16, 32, 64, 128))
        self.retries = m("counter", "sage_retries",
                         "Requests re-dispatched after their backend failed before they "
                         "started", ["backend"])
        self.backend_down_events = m("counter", "sage_backend_down_events",
                                     "Times a backend was taken out of service", ["backend"])
        for cls in ("chat", "completion", "embedding"):
            self.queue_depth.labels(cls).set(0)
        self._dec = self.decisions.labels(policy)
        self._dec_us = self.decision_us.labels(policy)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def decision(self, us: float) -> None:
        self._dec.v += 1.0
        self._dec_us.observe(us)

    def collect(self) -> Iterator:
        """prometheus_client's collector protocol: the families, built at scrape time."""
        for fam in self._families:
            yield fam.family()
