"""Twisted listeners of the fake broker: bytes in, whole client frames to the session, bytes out.

Like the proxy's forward.py, the protocol objects only move bytes; what to answer is decided by
the protocol's `Session`. Listens on 127.0.0.1 only and never connects anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from rr.codecs import DEFAULT_MAX_FRAME_BYTES, Direction, FramingError, framer_for

from .protocols import module_for
from .session import Listener, ReplayContext, Session

log = Logger(namespace="rrlab.replayer")


class ReplayProtocol(protocol.Protocol):
    """One live client connection; also the session's `Link`."""

    def __init__(self, ctx: ReplayContext, listener: Listener, live_id: int) -> None:
        self.ctx = ctx
        self.listener = listener
        self.live_id = live_id
        self.framer = framer_for(listener.proto, Direction.C2S, DEFAULT_MAX_FRAME_BYTES)
        self.session: Session | None = None
        self._timers: list[Any] = []

    # -- Link ----------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.transport is not None and data:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    def call_later(self, delay: float, fn: Callable[[], None]) -> Any:
        from twisted.internet import reactor

        call = reactor.callLater(delay, fn)  # type: ignore[attr-defined]
        self._timers = [t for t in self._timers if t.active()]
        self._timers.append(call)
        return call

    # -- Twisted -------------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)
        session_cls = module_for(self.listener.proto).Session
        self.session = session_cls(self.ctx, self.listener, self)
        log.info(
            "accepted {proto} live conn {live} on port {port}",
            proto=str(self.listener.proto),
            live=self.live_id,
            port=self.listener.live_port,
        )

    def dataReceived(self, data: bytes) -> None:
        session = self.session
        assert session is not None
        try:
            raws = self.framer.feed_raws(data)
        except FramingError as err:
            for frame in err.frames:
                self._handle(session, frame.raw)
            session.miss("unframeable", f"client bytes cannot be framed: {err}", {})
            self.close()
            return
        for raw in raws:
            if session.closed:
                return
            self._handle(session, raw)

    def _handle(self, session: Session, raw: bytes) -> None:
        try:
            session.on_frame(raw)
        except Exception as exc:  # one broken session never takes the server down
            log.failure("replay session failed", Failure(exc))
            session.miss("internal", f"replayer error: {type(exc).__name__}: {exc}", {})
            session.close()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        if self.session is not None:
            self.session.on_close()


class ReplayFactory(protocol.Factory):
    def __init__(self, ctx: ReplayContext, listener: Listener) -> None:
        self.ctx = ctx
        self.listener = listener

    def buildProtocol(self, addr: Any) -> ReplayProtocol:
        proto = ReplayProtocol(self.ctx, self.listener, self.ctx.next_live_id())
        proto.factory = self
        return proto
