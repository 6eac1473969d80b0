"""Proxy metrics on a private Prometheus registry, served as `/metrics` by Twisted on loopback.

Label children are cached per (proto, direction, api) so the per-frame cost is two dict lookups
and two increments.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics
from prometheus_client.twisted import MetricsResource

from rr.record import FrameEvent

from .kafka_stream import RewriteEvent


class ProxyMetrics:
    def __init__(self) -> None:
        disable_created_metrics()  # *_created series are clock noise for a sidecar
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.active = Gauge(
            "rrlab_proxy_connections_active", "Open proxied connections", ["proto"], registry=r
        )
        self.connections = Counter(
            "rrlab_proxy_connections", "Proxied connections accepted", ["proto"], registry=r
        )
        self.frames = Counter(
            "rrlab_proxy_frames", "Frames recorded", ["proto", "direction", "api"], registry=r
        )
        self.bytes = Counter(
            "rrlab_proxy_frame_bytes",
            "Raw wire bytes of recorded frames",
            ["proto", "direction", "api"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "rrlab_proxy_upstream_errors",
            "Upstream connections refused or lost abnormally",
            ["proto", "kind"],
            registry=r,
        )
        self.recording_errors = Counter(
            "rrlab_proxy_recording_errors",
            "Connections whose stream could not be recorded (framing, rewrite, policy)",
            ["proto", "kind"],
            registry=r,
        )
        self.redactions = Counter(
            "rrlab_proxy_redactions", "Frames with a credential replaced", ["proto"], registry=r
        )
        self.kafka_rewrites = Counter(
            "rrlab_proxy_kafka_rewrites",
            "Kafka responses changed: advertised addresses, ApiVersions entries capped",
            ["api_key", "kind"],
            registry=r,
        )
        self._frame_children: dict[tuple[str, str, str], tuple[Counter, Counter]] = {}
        # totals for the progress line (cheaper than reading the registry)
        self.total_frames = 0
        self.total_bytes = 0
        self.total_conns = 0
        self.open_conns = 0

    def resource(self) -> MetricsResource:
        return MetricsResource(registry=self.registry)

    def on_frame(self, ev: FrameEvent) -> None:
        key = (ev.proto.value, ev.direction.value, ev.api)
        children = self._frame_children.get(key)
        if children is None:
            children = (self.frames.labels(*key), self.bytes.labels(*key))
            self._frame_children[key] = children
        children[0].inc()
        children[1].inc(ev.size)
        self.total_frames += 1
        self.total_bytes += ev.size
        if ev.redacted:
            self.redactions.labels(ev.proto.value).inc()

    def on_rewrite(self, ev: RewriteEvent) -> None:
        key = str(ev.api_key)
        if ev.addresses:
            self.kafka_rewrites.labels(key, "address").inc(ev.addresses)
        if ev.api_versions_capped:
            self.kafka_rewrites.labels(key, "api_versions_cap").inc(ev.api_versions_capped)
        if ev.error:
            self.recording_errors.labels("kafka", "rewrite").inc()

    def opened(self, proto: str) -> None:
        self.connections.labels(proto).inc()
        self.active.labels(proto).inc()
        self.total_conns += 1
        self.open_conns += 1

    def closed(self, proto: str) -> None:
        self.active.labels(proto).dec()
        self.open_conns -= 1
