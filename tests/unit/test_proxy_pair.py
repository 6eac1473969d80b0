"""The proxy's forwarding pair on its own (issue K): it talks to its transports only through
Twisted's transport interfaces and to its owner only through `PairOwner`. Real recorder and
cassette; the owner here is a minimal one that only notes what it is told."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.internet.interfaces import IConsumer, IPushProducer, ITCPTransport
from twisted.internet.testing import MemoryReactorClock, StringTransport

from rrlab.proxy.app import ProxyApp
from rrlab.proxy.forward import Pair, PairOwner, Route, ServerSide, UpstreamSide
from rrlab.rr.cassette import CassetteReader, CassetteWriter
from rrlab.rr.record import ConnectionRecorder, RecordingBroken, recorder_for

ROUTE = Route("mqtt", "127.0.0.1", 11883, "127.0.0.1", 1883)
PINGREQ, PINGRESP = b"\xc0\x00", b"\xd0\x00"
#: every name a pair may use on a transport
INTERFACES = (ITCPTransport, IConsumer, IPushProducer)
ALLOWED = frozenset(name for i in INTERFACES for name in i.names(all=True))
NAMES = ", ".join(i.__name__ for i in INTERFACES)


class InterfaceOnly:
    """A transport seen only through `INTERFACES`: anything else is an AttributeError (as
    `doWrite`, which a pair once called to flush at once, is)."""

    def __init__(self) -> None:
        self.seen = StringTransport()

    def __getattr__(self, name: str) -> Any:
        if name not in ALLOWED:
            raise AttributeError(
                f"{name} is not part of {', '.join(i.__name__ for i in INTERFACES)}"
            )
        return getattr(self.seen, name)

    def setTcpNoDelay(self, enabled: bool) -> None:  # StringTransport has none
        pass


class NotingOwner:
    """Only what `PairOwner` asks for; records the events."""

    def __init__(self, writer: CassetteWriter) -> None:
        self.reactor = MemoryReactorClock()
        self.writer = writer
        self.events: list[tuple[str, Any]] = []

    def pair_connected(self, pair: Pair) -> ConnectionRecorder | None:
        self.events.append(("connected", pair.route.proto))
        return recorder_for(self.writer, self.writer.open_connection("mqtt", None, None), "mqtt")

    def after_read(self, pair: Pair, side: Any) -> None:
        self.events.append(("read", side.name))

    def recording_failed(self, pair: Pair, exc: Exception) -> None:
        self.events.append(("failed", type(exc).__name__))

    def upstream_failed(self, pair: Pair, message: str) -> None:
        self.events.append(("upstream_failed", message))

    def pair_closed(self, pair: Pair, reason: str | None) -> None:
        self.events.append(("closed", reason))


@pytest.fixture
def owner(tmp_path: Path) -> NotingOwner:
    return NotingOwner(CassetteWriter.create(tmp_path / "c"))


def connect(owner: PairOwner) -> tuple[Pair, ServerSide, UpstreamSide]:
    pair = Pair(owner, ROUTE)
    client, upstream = ServerSide(), UpstreamSide()
    client.pair = upstream.pair = pair
    client.makeConnection(InterfaceOnly())
    upstream.makeConnection(InterfaceOnly())
    return pair, client, upstream


def test_the_owners_of_pairs_are_pair_owners(tmp_path: Path) -> None:
    app = ProxyApp(
        MemoryReactorClock(),
        CassetteWriter.create(tmp_path / "c"),
        [ROUTE],
        allowed_upstreams=[],
        max_frame_bytes=1 << 20,
        say=lambda line: None,
    )
    assert isinstance(app, PairOwner)
    assert isinstance(NotingOwner(app.writer), PairOwner)
    app.shutdown()


def test_a_pair_records_forwards_and_closes_through_interfaces_only(owner: NotingOwner) -> None:
    pair, client, upstream = connect(owner)
    [(host, port, _factory, _timeout, _bind)] = owner.reactor.tcpClients  # dialled the upstream
    assert (host, port) == (ROUTE.upstream_host, ROUTE.upstream_port)
    assert client.transport.seen.producerState == "producing"  # reads once the upstream is up
    client.dataReceived(PINGREQ[:1])
    client.dataReceived(PINGREQ[1:])
    upstream.dataReceived(PINGRESP)
    assert upstream.transport.seen.value() == PINGREQ
    assert client.transport.seen.value() == PINGRESP
    client.connectionLost()
    upstream.connectionLost()
    assert owner.events == [
        ("connected", "mqtt"),
        ("read", "client"),
        ("read", "client"),
        ("read", "upstream"),
        ("closed", "client closed"),
    ]
    owner.writer.finalize()
    frames = list(CassetteReader.open(owner.writer.path).frames())
    assert [(f.dir, f.raw) for f in frames] == [("c2s", PINGREQ), ("s2c", PINGRESP)]


def test_a_recording_failure_is_the_owners_to_handle(owner: NotingOwner) -> None:
    pair, client, upstream = connect(owner)
    client.dataReceived(b"\x00\x00")  # packet type 0 is no MQTT packet: cannot be framed
    assert owner.events[-2:] == [("failed", RecordingBroken.__name__), ("read", "client")]
    assert upstream.transport.seen.value() == b""  # nothing unrecorded went out
    assert pair.reason is None and not client.transport.seen.disconnecting  # the owner decides
