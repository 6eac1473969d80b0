"""Listening sockets that `rrlab replay` binds before its fake broker starts, and hands to it.

A client that connects to a bound, listening socket waits in the kernel's backlog until someone
accepts. So replay binds the recorded addresses itself (a taken port is still exit 2 before
anything runs), starts the fake broker with the sockets and starts the command at once: the
command's own start-up (an interpreter, its imports) overlaps the fake broker's (Twisted, the
protocol stacks, preparing the cassette) instead of waiting for it to listen. Plain sockets
only: the process that binds never imports Twisted.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping

from rrlab.rr.usage import UsageError

HOST = "127.0.0.1"
BACKLOG = 50  # what Twisted's listenTCP would give
#: serve's flag naming one adopted socket: --listen-fd LIVE_PORT=FD (hidden: replay's, not users')
FLAG = "--listen-fd"


def bind(ports: Iterable[int]) -> dict[int, socket.socket]:
    """{live port: a non-blocking socket listening on HOST:port}; UsageError naming a port that
    cannot be bound (none stays bound then)."""
    bound: dict[int, socket.socket] = {}
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted does
            sock.bind((HOST, port))
            sock.listen(BACKLOG)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            close(bound)
            raise UsageError(
                f"cannot listen on {HOST}:{port}: {exc}; stop what holds it or move every "
                "listener with --port-offset N"
            ) from None
        bound[port] = sock
    return bound


def flags(bound: Mapping[int, socket.socket]) -> list[str]:
    """serve's arguments naming every socket by its live port (the fds the child inherits)."""
    return [arg for port, sock in bound.items() for arg in (FLAG, f"{port}={sock.fileno()}")]


def parse(values: Iterable[str]) -> dict[int, int]:
    """{live port: fd} from serve's --listen-fd values."""
    adopted: dict[int, int] = {}
    for value in values:
        port, sep, fd = value.partition("=")
        if not sep or not port.isdigit() or not fd.isdigit():
            raise UsageError(f"{FLAG} {value!r}: expected LIVE_PORT=FD")
        adopted[int(port)] = int(fd)
    return adopted


def close(bound: Mapping[int, socket.socket]) -> None:
    """Our copies, once the fake broker holds its own (else a broker that died would leave
    clients waiting in a backlog nobody accepts from)."""
    for sock in bound.values():
        sock.close()
