"""OpenMetrics text for one run, from a private registry (no process-global state exported)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.openmetrics.exposition import generate_latest

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


def render(driver: str, produced: int, consumed: int, latencies: Sequence[float]) -> bytes:
    """Counters for produced/consumed messages and the end-to-end latency histogram.

    The text ends with `# EOF`, as OpenMetrics requires.
    """
    registry = CollectorRegistry(auto_describe=True)
    produced_total = Counter(
        "rrlab_worker_messages_produced",
        "Messages the broker acknowledged to the worker.",
        ["driver"],
        registry=registry,
    )
    consumed_total = Counter(
        "rrlab_worker_messages_consumed",
        "Distinct messages the worker consumed back and processed.",
        ["driver"],
        registry=registry,
    )
    latency = Histogram(
        "rrlab_worker_processing_latency",
        "Time from handing a message to the client library to processing it on consume.",
        ["driver"],
        unit="seconds",
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    produced_total.labels(driver=driver).inc(produced)
    consumed_total.labels(driver=driver).inc(consumed)
    observed = latency.labels(driver=driver)
    for value in latencies:
        observed.observe(value)
    return generate_latest(registry)
