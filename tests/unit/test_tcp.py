"""The write-at-once TCP transports (rrlab.tcp: the proxy's and the fake broker's) on real
loopback sockets and the real reactor: a write leaves at once when nothing is queued (no reactor
turn between a chunk read and its bytes sent), and a write behind queued bytes waits its turn,
so the stream keeps its order."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import protocol

from rrlab.tcp import adopt_tcp, connect_tcp, listen_tcp


class Noted(protocol.Protocol):
    made: list[Noted]

    def connectionMade(self) -> None:
        self.made.append(self)


def iterate_until(reactor: Any, done: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the reactor never got there"
        reactor.iterate(0.01)


@pytest.fixture
def reactor() -> Iterator[Any]:
    from twisted.internet import reactor as real

    yield real
    for _ in range(5):  # let closed transports finish leaving the reactor
        real.iterate(0)


def recv_exactly(sock: socket.socket, n: int, reactor: Any | None = None) -> bytes:
    """`n` bytes from `sock`; with `reactor`, turning it between reads (its queue drains)."""
    sock.settimeout(0.05 if reactor is not None else 2.0)
    out = bytearray()
    deadline = time.monotonic() + 20
    while len(out) < n:
        assert time.monotonic() < deadline, f"got {len(out)} of {n} bytes"
        try:
            chunk = sock.recv(n - len(out))
        except TimeoutError:
            chunk = b""
        if reactor is not None:
            reactor.iterate(0)
        elif not chunk:
            break
        out += chunk
    return bytes(out)


def test_an_accepted_connection_sends_at_once_and_keeps_order(reactor: Any) -> None:
    made: list[Noted] = []
    factory = protocol.Factory.forProtocol(Noted)
    factory.protocol = type("Made", (Noted,), {"made": made})
    port = listen_tcp(reactor, 0, factory, "127.0.0.1")
    client = socket.create_connection(("127.0.0.1", port.getHost().port))
    try:
        iterate_until(reactor, lambda: made)
        transport = made[0].transport
        transport.write(b"hello")
        # no reactor turn: the bytes are on the socket already (Twisted's own transport
        # would hold them until its next doWrite)
        assert recv_exactly(client, 5) == b"hello"

        big = bytes(range(256)) * (64 * 1024)  # 16 MiB: more than the socket takes at once
        transport.write(big)
        transport.write(b"tail")  # queued behind what the socket did not take
        assert recv_exactly(client, len(big) + 4, reactor) == big + b"tail"
    finally:
        client.close()
        port.stopListening()
        for proto in made:
            proto.transport.loseConnection()


def test_an_outgoing_connection_sends_at_once(reactor: Any) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    made: list[Noted] = []
    factory = protocol.ClientFactory.forProtocol(type("Made", (Noted,), {"made": made}))
    connector = connect_tcp(reactor, "127.0.0.1", listener.getsockname()[1], factory, 10)
    try:
        iterate_until(reactor, lambda: made)
        server, _addr = listener.accept()
        with server:
            made[0].transport.write(b"upstream")
            assert recv_exactly(server, 8) == b"upstream"
    finally:
        connector.disconnect()
        listener.close()


def test_an_adopted_listening_socket_sends_at_once(reactor: Any) -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # bound by someone else (rrlab replay)
    listener.setblocking(False)
    made: list[Noted] = []
    factory = protocol.Factory.forProtocol(type("Made", (Noted,), {"made": made}))
    port = adopt_tcp(reactor, listener.fileno(), socket.AF_INET, factory)
    listener.close()  # Twisted listens on its own copy
    client = socket.create_connection(("127.0.0.1", port.getHost().port))
    try:
        iterate_until(reactor, lambda: made)
        made[0].transport.write(b"adopted")
        assert recv_exactly(client, 7) == b"adopted"
    finally:
        client.close()
        port.stopListening()
        for proto in made:
            proto.transport.loseConnection()
