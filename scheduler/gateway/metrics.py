"""Prometheus metrics of one gateway (one registry per app, so tests and
several gateways in one process never share counters). Names and meanings are
documented in docs/gateway.md."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Latency buckets in seconds: sub-millisecond (overhead, queue) to minutes (long chats).
_LAT = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        10.0, 30.0, 60.0, 120.0)
_US = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class GatewayMetrics:
    """The gateway's instruments; `registry` is what /metrics renders."""

    def __init__(self, policy: str) -> None:
        self.policy = policy
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.queue_depth = Gauge("sage_queue_depth", "Requests received and not yet "
                                 "dispatched, per request class", ["cls"], registry=r)
        self.in_flight = Gauge("sage_backend_in_flight", "Requests dispatched to a backend "
                               "and not yet finished", ["backend"], registry=r)
        self.backend_up = Gauge("sage_backend_up", "1 when the backend is in service, 0 when "
                                "taken out by the health check", ["backend"], registry=r)
        self.requests = Counter("sage_requests", "Requests that left the gateway, by class "
                                "and outcome", ["cls", "status"], registry=r)
        self.rejections = Counter("sage_rejections", "Requests refused, by reason",
                                  ["reason"], registry=r)
        self.decisions = Counter("sage_decisions", "Control-plane decisions (core calls) per "
                                 "policy", ["policy"], registry=r)
        self.decision_us = Histogram("sage_decision_microseconds", "Wall-clock time spent in "
                                     "the control-plane core per decision", ["policy"],
                                     buckets=_US, registry=r)
        self.queue_s = Histogram("sage_queue_seconds", "Queue wait: dispatched - received",
                                 ["cls"], buckets=_LAT, registry=r)
        self.ttft_s = Histogram("sage_ttft_seconds", "Time to first streamed chunk, from "
                                "arrival at the gateway", ["cls"], buckets=_LAT, registry=r)
        self.e2e_s = Histogram("sage_e2e_seconds", "Arrival at the gateway to the last byte "
                               "sent", ["cls"], buckets=_LAT, registry=r)
        self.batch_size = Histogram("sage_upstream_batch_size", "Client requests per upstream "
                                    "call", ["cls"], buckets=(1, 2, 4, 8, 16, 32, 64, 128),
                                    registry=r)
        self.retries = Counter("sage_retries", "Requests re-dispatched after their backend "
                               "failed before they started", ["backend"], registry=r)
        self.backend_down_events = Counter("sage_backend_down_events", "Times a backend was "
                                           "taken out of service", ["backend"], registry=r)
        for cls in ("chat", "completion", "embedding"):
            self.queue_depth.labels(cls).set(0)
        self._dec = self.decisions.labels(policy)
        self._dec_us = self.decision_us.labels(policy)

    def decision(self, us: float) -> None:
        self._dec.inc()
        self._dec_us.observe(us)
