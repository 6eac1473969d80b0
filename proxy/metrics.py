"""Proxy metrics on a private Prometheus registry, served as `/metrics` by Twisted on loopback.

Per-frame counts are the hot path: they go into a plain dict and become Prometheus counters only
when scraped (a custom collector). The recorder reports the frames of a chunk at once
(`on_frames`): a frame costs its label and a tally, each label set one dict update per chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics
from prometheus_client.core import CounterMetricFamily
from prometheus_client.twisted import MetricsResource

from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import PROTOCOLS
from rrlab.rr.protocols.kafka.rewrite import RewriteEvent


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
        self._label_of: dict[Proto, Any] = {}  # each protocol's `label`, looked up once
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

    def on_frames(
        self,
        proto: Proto,
        direction: Direction,
        frames: Sequence[Sequence[Any]],
    ) -> None:
        """Count the recorded frames of one chunk of one direction: each a sequence starting
        (summary, raw, redacted), as the recorder writes them."""
        # by summary first: a summary the recorder's memo shares among frames is labelled once
        # (the summaries are alive while this runs, so their ids are theirs alone)
        by_summary: dict[int, list[Any]] = {}
        size_all = redacted_n = 0
        for frame in frames:
            summary, size = frame[0], len(frame[1])
            size_all += size
            entry = by_summary.get(id(summary))
            if entry is None:
                by_summary[id(summary)] = [summary, 1, size]
            else:
                entry[1] += 1
                entry[2] += size
            if frame[2]:
                redacted_n += 1
        if not by_summary:
            return
        tally: dict[str, list[int]] = {}
        label_of = self._label_of.get(proto)
        if label_of is None:
            label_of = self._label_of[proto] = PROTOCOLS[proto].label
        for summary, n, size in by_summary.values():
            label = label_of(summary)
            counts = tally.get(label)
            if counts is None:
                tally[label] = [n, size]
            else:
                counts[0] += n
                counts[1] += size
        p, d = proto._value_, direction._value_  # (`.value` is a property: slower, per chunk)
        frame_counts = self._frame_counts
        for label, (n, size) in tally.items():
            key = (p, d, label)
            counts = frame_counts.get(key)
            if counts is None:
                frame_counts[key] = [n, size]
            else:
                counts[0] += n
                counts[1] += size
        self.total_frames += len(frames)
        self.total_bytes += size_all
        if redacted_n:
            self.redactions.labels(p).inc(redacted_n)

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
