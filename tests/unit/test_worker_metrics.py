"""worker.metrics: OpenMetrics text with counters and a seconds histogram."""

from __future__ import annotations

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from worker.metrics import render


def test_openmetrics_text():
    text = render("amqp", 5, 4, [0.0004, 0.003, 0.2, 12.0]).decode()
    assert text.endswith("# EOF\n")
    assert "_bucket{" in text
    assert "# UNIT rrlab_worker_processing_latency_seconds seconds" in text
    assert "# TYPE rrlab_worker_processing_latency_seconds histogram" in text
    assert "# HELP rrlab_worker_messages_produced " in text
    assert 'rrlab_worker_messages_produced_total{driver="amqp"} 5.0' in text
    assert 'rrlab_worker_messages_consumed_total{driver="amqp"} 4.0' in text
    assert 'le="0.0005"} 1.0' in text
    assert 'le="10.0"} 3.0' in text
    assert 'le="+Inf"} 4.0' in text


def test_parses_as_openmetrics():
    families = {
        f.name: f for f in text_string_to_metric_families(render("kafka", 1, 1, [0.01]).decode())
    }
    assert families["rrlab_worker_processing_latency_seconds"].type == "histogram"
    assert families["rrlab_worker_processing_latency_seconds"].unit == "seconds"
    assert families["rrlab_worker_messages_consumed"].type == "counter"


def test_registry_is_private():
    """Two renders do not accumulate into each other (no global registry)."""
    render("mqtt", 3, 3, [0.01])
    assert (
        'rrlab_worker_messages_produced_total{driver="mqtt"} 1.0'
        in render("mqtt", 1, 1, [0.01]).decode()
    )
