"""TCP transports that send a write at once when nothing is queued before it, for the proxy
and the fake broker alike (both import this module; it imports neither).

Twisted's transports only queue a `write`: the bytes leave at the reactor's next turn
(`doWrite`), after one more poll and two changes of the poller's interest set (epoll_ctl). For
a relay that forwards every chunk it reads, that is a second reactor event per chunk; for the
fake broker, two system calls and a reactor turn on every answer a client waits for (a
publisher confirm, a produce ack). These transports try the socket first (`writeSomeData`,
Twisted's own non-blocking send) when their queue is empty, and queue only what the socket did
not take, as `write` always did: order, flow control (a full queue pauses the producer) and
connection-loss handling stay Twisted's.

`listen_tcp` / `connect_tcp` / `adopt_tcp` use them on a real reactor; any other reactor (a
test's memory reactor) gets its own `listenTCP` / `connectTCP` / `adoptStreamPort`.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp
from twisted.internet.posixbase import PosixReactorBase


class _WriteAtOnce:
    """Mixed into a `tcp.Connection`: `write` sends at once when nothing is queued."""

    def write(self, data: bytes) -> None:
        if (
            self._tempDataLen  # type: ignore[attr-defined]
            or len(self.dataBuffer) > self.offset  # type: ignore[attr-defined]
            or not self.connected  # type: ignore[attr-defined]
            or self.disconnecting  # type: ignore[attr-defined]
            or self._writeDisconnected  # type: ignore[attr-defined]
            or data.__class__ is not bytes
        ):
            super().write(data)  # type: ignore[misc]
            return
        sent = self.writeSomeData(data)  # type: ignore[attr-defined]
        if sent.__class__ is not int:  # the connection is lost: doWrite finds out and closes
            super().write(data)  # type: ignore[misc]
        elif sent < len(data):
            super().write(data[sent:])  # type: ignore[misc]


class Server(_WriteAtOnce, tcp.Server):
    """An accepted connection whose writes go out at once."""


class Client(_WriteAtOnce, tcp.Client):
    """An outgoing connection whose writes go out at once."""


class _Port(tcp.Port):
    transport = Server


class _Connector(tcp.Connector):
    def _makeTransport(self) -> Client:
        return Client(self.host, self.port, self.bindAddress, self, self.reactor)


def listen_tcp(reactor: Any, port: int, factory: Any, interface: str) -> Any:
    """`reactor.listenTCP`, with write-at-once transports on a real reactor."""
    if not isinstance(reactor, PosixReactorBase):
        return reactor.listenTCP(port, factory, interface=interface)
    listening = _Port(port, factory, 50, interface, reactor)
    listening.startListening()
    return listening


def adopt_tcp(reactor: Any, fd: int, family: int, factory: Any) -> Any:
    """`reactor.adoptStreamPort`: listen on a socket bound and listening already (serve's
    `--listen-fd`, handed over by `rrlab replay`), with write-at-once transports on a real
    reactor. Twisted listens on a copy of `fd`: the caller closes its own."""
    if not isinstance(reactor, PosixReactorBase):
        return reactor.adoptStreamPort(fd, family, factory)
    listening = _Port._fromListeningDescriptor(reactor, fd, family, factory)
    listening.startListening()
    return listening


def connect_tcp(reactor: Any, host: str, port: int, factory: Any, timeout: float) -> Any:
    """`reactor.connectTCP`, with a write-at-once transport on a real reactor."""
    if not isinstance(reactor, PosixReactorBase):
        return reactor.connectTCP(host, port, factory, timeout=timeout)
    connector = _Connector(host, port, factory, timeout, None, reactor)
    connector.connect()
    return connector
