"""The fake broker's answer to a read is in the kernel when the read has been handled, not one
reactor loop later: a client waiting on it (a publisher confirm, a produce ack) gets it while the
reactor goes on. Serve listens with the write-at-once transports of `rrlab.tcp` (the proxy's
too), on a port it binds and on one `rrlab replay` bound for it (`--listen-fd`) alike: an answer
the socket takes never makes the connection a writer the reactor polls for (Twisted's own
transport queues every write for the next turn: a poll and two epoll_ctl calls per answer)."""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from replay_playbook import CASSETTES, frames, serve
from twisted.internet.testing import MemoryReactorClock

from rrlab.replayer import early_listen
from rrlab.replayer.app import ReplayServer
from rrlab.replayer.server import ReplayProtocol, ServeLimits
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import client_kind
from rrlab.rr.replay.recording import Recording
from rrlab.rr.replay.session import Listener, PortMap, ReplayOptions
from rrlab.tcp import Server

CASSETTE = "worker-amqp-rabbitmq"


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
    ctx = serve(CASSETTE)
    header, start = frames(ctx, 1, Direction.C2S)[0], frames(ctx, 1, Direction.S2C)[0]
    reactor = MemoryReactorClock()  # never runs: nothing is written on a later turn
    limits = ServeLimits(reactor)
    with socket.create_server(("127.0.0.1", 0)) as port:
        client = socket.create_connection(port.getsockname())
        accepted, address = port.accept()
    try:
        proto = ReplayProtocol(ctx, Listener(Proto.AMQP, 15673, 15673), 1, limits)
        transport = Server(accepted, proto, address, None, 1, reactor)  # type: ignore[arg-type]
        proto.makeConnection(transport)
        proto.dataReceived(header.raw)  # the protocol header: answered with Connection.Start
        assert _readable(client, len(start.raw)) == start.raw
        assert transport not in reactor.getWriters()  # all of it went: nothing left to poll for
    finally:
        limits.stop()
        client.close()
        accepted.close()


@pytest.fixture
def reactor() -> Iterator[Any]:
    from twisted.internet import reactor as real

    yield real
    for _ in range(5):  # let closed transports finish leaving the reactor
        real.iterate(0)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("adopted", [False, True], ids=["bound by serve", "adopted (--listen-fd)"])
def test_serve_answers_without_the_reactor_polling_for_it(reactor: Any, adopted: bool) -> None:
    recording = Recording.open(CASSETTES / CASSETTE, classify=client_kind)
    recorded = next(port for proto, port in recording.listeners() if proto is Proto.AMQP)
    live = _free_port()
    header = next(f for f in recording.conn(1).frames if f.dir is Direction.C2S)
    start = next(f for f in recording.conn(1).frames if f.dir is Direction.S2C)
    server = ReplayServer(
        recording, ReplayOptions(), PortMap({recorded: live}), reactor=reactor, say=lambda _l: None
    )
    bound = early_listen.bind([live]) if adopted else {}
    writers: list[Any] = []
    add_writer = reactor.addWriter
    reactor.addWriter = lambda w: (writers.append(w), add_writer(w))[1]
    try:
        server.listen_all({p: os.dup(s.fileno()) for p, s in bound.items()})  # serve's copy
        early_listen.close(bound)
        with socket.create_connection(("127.0.0.1", live), timeout=5) as client:
            client.sendall(header.raw)
            client.setblocking(False)
            got = b""
            deadline = time.monotonic() + 10
            while len(got) < len(start.raw):
                assert time.monotonic() < deadline, f"no Connection.Start ({got!r})"
                reactor.iterate(0.01)
                try:
                    got += client.recv(len(start.raw) - len(got))
                except BlockingIOError:
                    pass
            assert got == start.raw
            assert [w for w in writers if isinstance(w, Server)] == []
    finally:
        del reactor.addWriter
        early_listen.close(bound)
        server.stop_listening()
        for conn in list(server.limits.open):
            conn.abort()
