"""Prometheus metrics of one gateway (one registry per app, so tests and
several gateways in one process never share counters). Names and meanings are
documented in docs/gateway.md."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Latency buckets in seconds: sub-millisecond (overhead, queue) to minutes (long chats).
_LAT = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        10.0, 30.0, 60.0, 120.0)
_US = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class _Labelled:
    """A metric whose children are looked up once per label set (prometheus_client's
    own `labels()` costs a few µs, paid several times per request otherwise)."""

    __slots__ = ("_children", "metric")

    def __init__(self, metric) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], object] = {}

    def labels(self, *values: str):
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child


class GatewayMetrics:
    """The gateway's instruments; `registry` is what /metrics renders."""

    def __init__(self, policy: str) -> None:
        self.policy = policy
        r = self.registry = CollectorRegistry(auto_describe=True)

        def m(kind, name: str, doc: str, labels: list[str], **kw) -> _Labelled:
            return _Labelled(kind(name, doc, labels, registry=r, **kw))

        self.queue_depth = m(Gauge, "sage_queue_depth",
                             "Requests received and not yet dispatched, per class", ["cls"])
        self.in_flight = m(Gauge, "sage_backend_in_flight",
                           "Requests dispatched to a backend and not yet finished", ["backend"])
        self.backend_up = m(Gauge, "sage_backend_up",
                            "1 when the backend is in service, 0 when taken out", ["backend"])
        self.requests = m(Counter, "sage_requests",
                          "Requests that left the gateway, by class and outcome",
                          ["cls", "status"])
        self.rejections = m(Counter, "sage_rejections", "Requests refused, by reason",
                            ["reason"])
        self.decisions = m(Counter, "sage_decisions",
                           "Control-plane decisions (core calls) per policy", ["policy"])
        self.decision_us = m(Histogram, "sage_decision_microseconds",
                             "Wall-clock time spent in the control-plane core per decision",
                             ["policy"], buckets=_US)
        self.queue_s = m(Histogram, "sage_queue_seconds", "Queue wait: dispatched - received",
                         ["cls"], buckets=_LAT)
        self.ttft_s = m(Histogram, "sage_ttft_seconds",
                        "Arrival at the gateway to the first streamed chunk", ["cls"],
                        buckets=_LAT)
        self.e2e_s = m(Histogram, "sage_e2e_seconds",
                       "Arrival at the gateway to the answer sent", ["cls"], buckets=_LAT)
        self.batch_size = m(Histogram, "sage_upstream_batch_size",
                            "Client requests per upstream call", ["cls"],
                            buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self.retries = m(Counter, "sage_retries",
                         "Requests re-dispatched after their backend failed before they "
                         "started", ["backend"])
        self.backend_down_events = m(Counter, "sage_backend_down_events",
                                     "Times a backend was taken out of service", ["backend"])
        for cls in ("chat", "completion", "embedding"):
            self.queue_depth.labels(cls).set(0)
        self._dec = self.decisions.labels(policy)
        self._dec_us = self.decision_us.labels(policy)

    def decision(self, us: float) -> None:
        self._dec.inc()
        self._dec_us.observe(us)
