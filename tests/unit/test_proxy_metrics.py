"""The proxy's frame counters: one line per (proto, direction, label), counting frames and raw
bytes, whether a frame's summary is its own or shared with others (the recorder's memo)."""

from __future__ import annotations

from prometheus_client import generate_latest

from rrlab.proxy.metrics import ProxyMetrics
from rrlab.rr.cassette.format import EncodedSummary
from rrlab.rr.codecs import Direction, Proto


def test_frames_are_counted_by_label_with_shared_and_own_summaries():
    metrics = ProxyMetrics()
    body = EncodedSummary({"channel": 1, "frame": "body", "size": 3})
    publish = {"args": {}, "channel": 1, "frame": "method", "method": "Basic.Publish"}
    frames = [
        (dict(publish), b"p" * 20, False),
        (body, b"b" * 11, False),
        (dict(publish), b"p" * 20, False),
        (body, b"b" * 11, False),
        ({"channel": 1, "frame": "body", "size": 4}, b"b" * 12, False),
        ({"frame": "method", "method": "Connection.StartOk"}, b"s" * 30, True),
    ]
    metrics.on_frames(Proto.AMQP, Direction.C2S, frames)
    metrics.on_frames(Proto.AMQP, Direction.C2S, frames[1:2])
    text = generate_latest(metrics.registry).decode()
    assert 'rrlab_proxy_frames_total{api="body",direction="c2s",proto="amqp"} 4.0' in text
    assert 'rrlab_proxy_frame_bytes_total{api="body",direction="c2s",proto="amqp"} 45.0' in text
    assert 'rrlab_proxy_frames_total{api="Basic.Publish",direction="c2s",proto="amqp"} 2.0' in text
    assert 'api="Connection.StartOk",direction="c2s",proto="amqp"} 30.0' in text
    assert metrics.total_frames == 7 and metrics.total_bytes == 115
    assert 'rrlab_proxy_redactions_total{proto="amqp"} 1.0' in text
