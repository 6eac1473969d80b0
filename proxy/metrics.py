"""Proxy metrics on a private Prometheus registry, served as `/metrics` by Twisted on loopback.

Per-frame counts are the hot path: they go into a plain dict and become Prometheus counters only
when scraped (a custom collector), so a frame costs one dict lookup and two additions.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics
from prometheus_client.core import CounterMetricFamily
from prometheus_client.twisted import MetricsResource

from rr.codecs import Direction, Proto
from rr.record import api_label

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
        self._frame_counts: dict[tuple[str, str, str], list[int]] = {}
        r.register(_FrameCollector(self._frame_counts))
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
        # totals for the progress line (cheaper than reading the registry)
        self.total_frames = 0
        self.total_bytes = 0
        self.total_conns = 0
        self.open_conns = 0

    def resource(self) -> MetricsResource:
        return MetricsResource(registry=self.registry)

    def on_frame(
        self, proto: Proto, direction: Direction, summary: dict[str, Any], size: int, redacted: bool
    ) -> None:
        key = (proto.value, direction.value, api_label(summary))
        counts = self._frame_counts.get(key)
        if counts is None:
            counts = self._frame_counts[key] = [0, 0]
        counts[0] += 1
        counts[1] += size
        self.total_frames += 1
        self.total_bytes += size
        if redacted:
            self.redactions.labels(proto.value).inc()

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


class _FrameCollector:
    """Exposes the per-frame dict as rrlab_proxy_frames_total / rrlab_proxy_frame_bytes_total."""

    def __init__(self, counts: dict[tuple[str, str, str], list[int]]) -> None:
        self.counts = counts

    def describe(self) -> list[CounterMetricFamily]:
        return list(self._families({}))

    def collect(self) -> list[CounterMetricFamily]:
        return list(self._families(dict(self.counts)))

    @staticmethod
    def _families(counts: dict[tuple[str, str, str], list[int]]):
        labels = ["proto", "direction", "api"]
        frames = CounterMetricFamily("rrlab_proxy_frames", "Frames recorded", labels=labels)
        size = CounterMetricFamily(
            "rrlab_proxy_frame_bytes", "Raw wire bytes of recorded frames", labels=labels
        )
        for key, (n, b) in sorted(counts.items()):
            frames.add_metric(list(key), n)
            size.add_metric(list(key), b)
        yield frames
        yield size
