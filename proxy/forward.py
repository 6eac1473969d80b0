"""TCP forwarding in the manner of `twisted.protocols.portforward`, plus one recorder call.

The protocols only move bytes. Flow control: each side's reads are the other transport's
producer (through an `rr.flow.ReadGate`, which the buffered-bytes budget pauses too), and the
client side does not read until the upstream connection exists. Everything else (framing,
decoding, rewriting, writing, counting) happens behind `Pair.relay`, which hands each chunk to
the connection's recorder and forwards what it returns.

A pair talks to its transports through `ITransport` (write, loseConnection; setTcpNoDelay of
`ITCPTransport`) and `IConsumer`/`IPushProducer` (flow control), and to the proxy that owns it
through `PairOwner`, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from twisted.internet import error, protocol
from twisted.python.failure import Failure

from rrlab.rr.cassette.writer import CassetteWriteFailed
from rrlab.rr.codecs import Direction
from rrlab.rr.flow import CONNECTING, ReadGate
from rrlab.rr.policy import BudgetExceeded
from rrlab.rr.record import ConnectionRecorder, RecordingBroken
from rrlab.tcp import connect_tcp

#: what a recorder may raise for a chunk: the cassette cannot be written, the connection cannot
#: be recorded faithfully any more, or a cassette budget is used up
RecordingFailure = CassetteWriteFailed | RecordingBroken | BudgetExceeded


@runtime_checkable
class PairOwner(Protocol):
    """What a `Pair` needs of the proxy that owns it (`proxy.app.ProxyApp`): a reactor to dial
    the upstream with, and to be told what happens. The owner decides; the pair moves bytes."""

    reactor: Any  # IReactorTCP (connectTCP)

    def pair_connected(self, pair: Pair) -> ConnectionRecorder | None:
        """Both sides are up: the recorder for the pair, or None when it is refused (the owner
        has aborted it; nothing is read)."""

    def after_read(self, pair: Pair, side: Side) -> None:
        """`side` read a chunk and the pair relayed it (idle clock, buffered-bytes budget)."""

    def recording_failed(self, pair: Pair, exc: RecordingFailure) -> None:
        """The recorder raised for a chunk; what happens to the pair and the proxy is the
        owner's to decide."""

    def upstream_failed(self, pair: Pair, message: str) -> None:
        """The upstream connection could not be made (the client side is closed next)."""

    def pair_closed(self, pair: Pair, reason: str | None) -> None:
        """Both sides are gone; `reason` is the first one given (an abort's, or a side's)."""


@dataclass(frozen=True, slots=True)
class Route:
    """One listener: clients of `proto` on `listen`, forwarded to `upstream`."""

    proto: str
    listen_host: str
    listen_port: int
    upstream_host: str
    upstream_port: int
    kind: str = "route"  # "route" (configured) or "kafka-node" (discovered broker)

    @property
    def listen(self) -> str:
        return f"{self.listen_host}:{self.listen_port}"

    @property
    def upstream(self) -> str:
        return f"{self.upstream_host}:{self.upstream_port}"


def _describe(reason: Failure, side: str) -> str:
    if reason.check(error.ConnectionDone):
        return f"{side} closed"
    return f"{side} connection lost: {reason.getErrorMessage()}"


class Pair:
    """One client connection and its upstream: the recorder and who closed first."""

    def __init__(self, owner: PairOwner, route: Route) -> None:
        self.owner = owner
        self.route = route
        self.recorder: ConnectionRecorder | None = None
        self.client: ServerSide | None = None
        self.upstream: UpstreamSide | None = None
        self.reason: str | None = None
        self.open_sides = 0
        self.frames = 0  # whole frames recorded so far, both ways (idle timeout)
        self.last_active = 0.0  # reactor time of the last whole frame either way

    def relay(self, direction: Direction, data: bytes, peer: Side | None) -> None:
        """Record `data` and forward it to `peer`: the recorder hands over the bytes only once
        the frames they complete are in the cassette file (rr.record). `transport.write` sends
        them at once when nothing is queued before them (rrlab.tcp), else after what is."""
        recorder = self.recorder
        if peer is None or recorder is None:  # refused (proxy stopping, cassette unwritable)
            return
        try:
            recorder.feed(direction, data, peer.transport.write)
        except (CassetteWriteFailed, RecordingBroken, BudgetExceeded) as exc:
            self.owner.recording_failed(self, exc)

    def side_lost(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.open_sides -= 1
        if self.open_sides <= 0:
            self.owner.pair_closed(self, self.reason)

    def abort(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        for side in (self.client, self.upstream):
            if side is not None and side.transport is not None:
                side.transport.loseConnection()


class Side(protocol.Protocol):
    """Either end of a pair: what it reads goes to the pair, its end closes the peer."""

    peer: Side | None = None
    pair: Pair
    direction: Direction  # the direction of the bytes this side reads
    name: str
    gate: ReadGate  # this side's reads (paused by the peer's full buffer or the budget)

    def dataReceived(self, data: bytes) -> None:
        pair = self.pair
        pair.relay(self.direction, data, self.peer)
        pair.owner.after_read(pair, self)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        if self.peer is not None:
            self.peer.transport.loseConnection()
            self.peer.peer = None
            self.peer = None
        self.pair.side_lost(_describe(reason, self.name))


class UpstreamSide(Side):
    direction = Direction.S2C
    name = "upstream"

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)  # a relay must not add Nagle delays the ends avoided
        self.gate = ReadGate(self.transport)
        client = self.pair.client
        assert client is not None
        if client.transport is None or client.lost:  # client gave up while we were dialling
            self.transport.loseConnection()
            return
        pair = self.pair
        pair.open_sides += 1
        pair.upstream = self
        self.peer, client.peer = client, self
        pair.recorder = pair.owner.pair_connected(pair)
        if pair.recorder is None:  # refused: closing, never read
            return
        self.transport.registerProducer(client.gate, True)
        client.transport.registerProducer(self.gate, True)
        client.gate.resume(CONNECTING)


class UpstreamFactory(protocol.ClientFactory):
    protocol = UpstreamSide
    noisy = False

    def __init__(self, pair: Pair) -> None:
        self.pair = pair

    def buildProtocol(self, addr: Any) -> UpstreamSide:
        side = UpstreamSide()
        side.factory = self
        side.pair = self.pair
        return side

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.pair.owner.upstream_failed(self.pair, reason.getErrorMessage())
        if self.pair.client is not None:
            self.pair.client.transport.loseConnection()


class ServerSide(Side):
    direction = Direction.C2S
    name = "client"
    lost = False

    def connectionMade(self) -> None:
        # Read nothing from the client until there is somewhere to send it.
        self.gate = ReadGate(self.transport)
        self.gate.pause(CONNECTING)
        self.transport.setTcpNoDelay(True)
        self.pair.open_sides += 1
        self.pair.client = self
        connect_tcp(
            self.pair.owner.reactor,
            self.pair.route.upstream_host,
            self.pair.route.upstream_port,
            UpstreamFactory(self.pair),
            timeout=10,
        )

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.lost = True
        super().connectionLost(reason)


class ListenFactory(protocol.Factory):
    noisy = False

    def __init__(self, owner: PairOwner, route: Route) -> None:
        self.owner = owner
        self.route = route

    def buildProtocol(self, addr: Any) -> ServerSide | None:
        side = ServerSide()
        side.factory = self
        side.pair = Pair(self.owner, self.route)
        return side
