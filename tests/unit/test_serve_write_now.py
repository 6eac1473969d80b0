"""The fake broker's answer to a read is in the kernel when the read has been handled, not one
reactor loop later: a client waiting on it (a publisher confirm, a produce ack) gets it while the
reactor goes on (replayer/server.py `write_now`). A real loopback TCP connection, the real
Twisted TCP transport over it, and a reactor that never runs: whatever the client can read was
written in the turn that handled the read."""

from __future__ import annotations

import select
import socket

from replay_playbook import frames, serve
from twisted.internet import tcp
from twisted.internet.testing import MemoryReactorClock

from rrlab.replayer.server import ReplayProtocol, ServeLimits
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.replay.session import Listener


def _readable(sock: socket.socket, wanted: int, timeout: float = 2.0) -> bytes:
    """What arrives on `sock` up to `wanted` bytes, waiting at most `timeout` for each part."""
    got = b""
    while len(got) < wanted and select.select([sock], [], [], timeout)[0]:
        part = sock.recv(wanted - len(got))
        if not part:
            break
        got += part
    return got


def test_the_answer_to_a_read_is_sent_before_the_reactor_loops_again():
    ctx = serve("worker-amqp-rabbitmq")
    header, start = frames(ctx, 1, Direction.C2S)[0], frames(ctx, 1, Direction.S2C)[0]
    reactor = MemoryReactorClock()  # never runs: nothing is written on a later turn
    limits = ServeLimits(reactor)
    with socket.create_server(("127.0.0.1", 0)) as port:
        client = socket.create_connection(port.getsockname())
        accepted, address = port.accept()
    try:
        proto = ReplayProtocol(ctx, Listener(Proto.AMQP, 15673, 15673), 1, limits)
        transport = tcp.Server(accepted, proto, address, None, 1, reactor)  # type: ignore[arg-type]
        proto.makeConnection(transport)
        proto.dataReceived(header.raw)  # the protocol header: answered with Connection.Start
        assert _readable(client, len(start.raw)) == start.raw
        assert transport not in reactor.getWriters()  # all of it went: nothing left to poll for
    finally:
        limits.stop()
        client.close()
        accepted.close()
