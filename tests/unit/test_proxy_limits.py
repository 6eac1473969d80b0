"""Limits across connections (issue G.3): unfinished frames held by every connection together
stay under `max_buffered_bytes` (reads pause, then resume), and silent connections close after
`idle_timeout_s`. The proxy's own protocols on in-memory transports: only bytes are needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock, StringTransport

from rrlab.proxy.app import ProxyApp
from rrlab.proxy.forward import Pair, Route, ServerSide, UpstreamSide
from rrlab.rr.cassette import CassetteReader, CassetteWriter
from rrlab.rr.policy import Limits, PolicyError

ROUTE = Route("mqtt", "127.0.0.1", 11883, "127.0.0.1", 1883)


class Transport(StringTransport):
    def setTcpNoDelay(self, enabled: bool) -> None:
        pass


def publish(size: int) -> bytes:
    """An MQTT 3.1.1 QoS 0 PUBLISH of `size` bytes in all (topic "t")."""
    body = b"\x00\x01t" + b"x" * (size - 6)
    assert len(body) < 16384
    return b"\x30" + bytes([len(body) & 0x7F | 0x80, len(body) >> 7]) + body


def connect(app: ProxyApp) -> tuple[Pair, ServerSide]:
    pair = Pair(app, ROUTE)
    client = ServerSide()
    client.pair = pair
    client.makeConnection(Transport())
    upstream = UpstreamSide()
    upstream.pair = pair
    upstream.makeConnection(Transport())
    assert client.transport.producerState == "producing"
    return pair, client


@pytest.fixture
def app(tmp_path: Path):
    writer = CassetteWriter.create(tmp_path / "c")
    made = ProxyApp(
        MemoryReactorClock(),
        writer,
        [ROUTE],
        allowed_upstreams=[],
        max_frame_bytes=1 << 20,
        say=lambda line: None,
        limits=Limits(max_buffered_bytes=800, idle_timeout_s=5),
    )
    yield made
    made.shutdown()


def test_reads_pause_over_the_total_and_resume_once_frames_complete(app: ProxyApp) -> None:
    frame = publish(600)
    one, c1 = connect(app)
    two, c2 = connect(app)
    c1.dataReceived(frame[:500])
    assert app.buffered == 500 and c1.transport.producerState == "producing"
    c2.dataReceived(frame[:500])  # 1000 held > 800: this side reads no more for now
    assert app.buffered == 1000 and c2.transport.producerState == "paused"
    c1.dataReceived(frame[500:])  # a frame completes: 500 held, under the limit again
    assert app.buffered == 500 and c2.transport.producerState == "producing"
    assert one.upstream.transport.value() == frame  # forwarded whole
    c1.dataReceived(frame[:500])  # over again: now the first side waits
    assert app.buffered == 1000 and c1.transport.producerState == "paused"
    upstream = two.upstream
    c2.connectionLost()  # a connection that goes lets its held bytes go
    upstream.connectionLost()
    assert app.buffered == 500 and two not in app.pairs
    assert c1.transport.producerState == "producing"


def test_silent_connections_close_after_the_idle_timeout(app: ProxyApp) -> None:
    quiet, _ = connect(app)
    busy, client = connect(app)
    for _ in range(5):
        app.reactor.advance(1.5)
        client.dataReceived(publish(20))
    assert quiet.reason == "idle timeout: no frame for 5 s" and busy.reason is None
    assert quiet.client.transport.disconnecting and not client.transport.disconnecting
    for side in (quiet.client, quiet.upstream):
        side.connectionLost()
    app.shutdown()
    closed = CassetteReader.open(app.writer.path).manifest.connection(1)
    assert closed.close_reason == "idle timeout: no frame for 5 s"


def test_limits_are_validated() -> None:
    with pytest.raises(PolicyError, match="idle_timeout_s"):
        Limits(idle_timeout_s=0)
    with pytest.raises(PolicyError, match="max_buffered_bytes"):
        Limits(max_buffered_bytes=None)  # type: ignore[arg-type]


def test_shutdown_cutting_a_connect_short_is_no_upstream_failure(app: ProxyApp) -> None:
    """Logged as an upstream_failed error with a Failure repr before (issue G.8)."""
    from twisted.internet.error import UserError
    from twisted.logger import capturedLogs
    from twisted.python.failure import Failure

    from rrlab.proxy.forward import UpstreamFactory

    pair = Pair(app, ROUTE)
    client = ServerSide()
    client.pair = pair
    client.makeConnection(Transport())
    app.shutdown()
    with capturedLogs() as events:
        UpstreamFactory(pair).clientConnectionFailed(None, Failure(UserError()))
    assert [e["event"] for e in events] == ["upstream_cancelled"]
    assert app.metrics.upstream_errors.labels("mqtt", "connect")._value.get() == 0
    assert client.transport.disconnecting  # the client is let go all the same


def test_a_drained_peer_buffer_does_not_undo_a_budget_pause(app: ProxyApp) -> None:
    """Flow control and the budget pause the same reads: before rr.flow.ReadGate, the upstream's
    write buffer draining resumed a client the budget had paused (issue J.1)."""
    frame = publish(600)
    _one, c1 = connect(app)
    two, c2 = connect(app)
    c1.dataReceived(frame[:500])
    c2.dataReceived(frame[:500])
    assert c2.transport.producerState == "paused"
    two.upstream.transport.producer.resumeProducing()  # what a drained write buffer calls
    assert c2.transport.producerState == "paused"  # still over the budget: still waiting
    two.upstream.transport.producer.pauseProducing()  # full again, then the budget lifts
    c1.dataReceived(frame[500:])
    assert c2.transport.producerState == "paused"  # the full buffer still holds it
    two.upstream.transport.producer.resumeProducing()
    assert c2.transport.producerState == "producing"


def test_a_small_unfinished_frame_is_not_held_up_by_large_ones(app: ProxyApp) -> None:
    """Over the budget, the connections holding their share of it wait; a neighbour with a few
    bytes of a frame reads on and finishes it (it was paused like the others before)."""
    _big, hog = connect(app)
    _small, neighbour = connect(app)
    hog.dataReceived(publish(900)[:850])  # over the limit of 800 alone
    assert hog.transport.producerState == "paused"
    frame = publish(40)
    neighbour.dataReceived(frame[:10])
    assert neighbour.transport.producerState == "producing"
    neighbour.dataReceived(frame[10:])
    assert _small.upstream.transport.value() == frame


def test_a_client_trickling_a_frame_is_idle(app: ProxyApp) -> None:
    """Idle means no whole frame either way: one byte a second kept a connection open for ever
    when any byte counted (issue J.1)."""
    pair, client = connect(app)
    frame = publish(40)
    for i in range(8):
        client.dataReceived(frame[i : i + 1])
        app.reactor.advance(1.0)
    assert pair.reason == "idle timeout: no frame for 5 s"
