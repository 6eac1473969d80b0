"""Twisted listeners of the fake broker: the client's bytes to the session, its actions run.

Like the proxy's forward.py, the protocol objects only move bytes: the protocol's sans-IO
`Session` frames the bytes and decides what to answer; this shell runs the actions it hands
over (`Send`, `Close`, `Schedule` on the injected reactor). Listens on 127.0.0.1 only and never
connects anywhere.

Bounded like the proxy, from the same `rr.policy.Limits` (`ServeLimits`): each connection's
reads pause while its answers wait unsent (a client that never reads stops being read), the
unfinished frames of all connections together are held to `max_buffered_bytes`, one frame to
the frame budget, and with `idle_timeout_s` a connection without a whole frame either way for
that long is closed. A closed connection lets go of what it held at once.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from rrlab.rr.codecs import DEFAULT_MAX_FRAME_BYTES
from rrlab.rr.flow import BufferBudget, ReadGate, dropped_unfinished
from rrlab.rr.policy import Limits
from rrlab.rr.protocols import protocol_for
from rrlab.rr.replay.session import Action, Close, Listener, ReplayContext, Schedule, Send, Session

log = Logger(namespace="rrlab.replayer")


class ServeLimits:
    """`rr.policy.Limits` over every live connection of one fake broker: the buffered-bytes
    budget across them, the frame budget, and the idle sweep."""

    def __init__(
        self,
        reactor: Any,
        limits: Limits | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self.reactor = reactor
        self.limits = limits or Limits()
        self.max_frame_bytes = max_frame_bytes
        self.budget = BufferBudget(self.limits.max_buffered_bytes)
        self.open: set[ReplayProtocol] = set()
        idle = self.limits.idle_timeout_s
        self._sweep = LoopingCall(self._sweep_once)
        self._sweep.clock = reactor
        self._sweep.start(min(1.0, idle / 4) if idle is not None else 1.0, now=False)

    def now(self) -> float:
        return float(self.reactor.seconds())

    def opened(self, conn: ReplayProtocol) -> None:
        self.open.add(conn)

    def after_read(self, conn: ReplayProtocol, held: int) -> None:
        budget = self.budget
        if budget.account(conn.gate, held) and budget.paused == 1:
            log.warn(
                "{buffered} bytes of unfinished frames held (limit {limit}): reads paused "
                "until frames complete",
                event="buffer_limit",
                buffered=budget.total,
                limit=budget.limit,
            )

    def closed(self, conn: ReplayProtocol) -> None:
        self.open.discard(conn)
        self.budget.forget(conn.gate)

    def stop(self) -> None:
        if self._sweep.running:
            self._sweep.stop()

    def _sweep_once(self) -> None:
        """Connections paused by the budget whose client left are read to their end (so they
        close and let go); with an idle timeout, connections idle that long are closed."""
        self.budget.drain_abandoned()
        timeout = self.limits.idle_timeout_s
        if timeout is None:
            return
        cutoff = self.now() - timeout
        for conn in [c for c in self.open if c.last_active <= cutoff]:
            log.info(
                "live conn {live} closed: no frame either way for {timeout:g} s",
                event="idle_timeout",
                live=conn.live_id,
                timeout=timeout,
            )
            conn.abort()


class ReplayProtocol(protocol.Protocol):
    """One live client connection; also the session's `Link` (runs its actions)."""

    gate: ReadGate  # this connection's reads (paused by unsent answers or the budget)

    def __init__(
        self,
        ctx: ReplayContext,
        listener: Listener,
        live_id: int,
        limits: ServeLimits,
    ) -> None:
        self.ctx = ctx
        self.listener = listener
        self.live_id = live_id
        self.limits = limits
        self.session: Session | None = None
        self.last_active = 0.0  # reactor time of the last whole frame either way
        self._timers: list[Any] = []
        #: while the session handles a read: what it sends, written as one (see dataReceived)
        self._answer: list[bytes] | None = None

    # -- Link ----------------------------------------------------------------------------------

    def act(self, action: Action) -> None:
        if isinstance(action, Send):
            self.send(action.data)
        elif isinstance(action, Close):
            if action.reason:
                log.info(
                    "live conn {live} closed: {reason}", live=self.live_id, reason=action.reason
                )
            self.close()
        elif isinstance(action, Schedule):
            call = self.limits.reactor.callLater(action.delay, action.timer.fire)
            self._timers = [t for t in self._timers if t.active()]
            self._timers.append(call)

    def send(self, data: bytes) -> None:
        if self.transport is None or not data:
            return
        if self._answer is not None:  # answering a read: one write once the session is done
            self._answer.append(data)
            return
        # to the kernel at once (the write-at-once transport of rrlab.tcp, which app.py
        # listens with); over its buffer size, the transport pauses our reads
        self.transport.write(data)
        self.last_active = self.limits.now()

    def abort(self) -> None:
        """Close now, unsent answers and all (a client that never reads never drains them)."""
        if self.transport is not None:
            self.transport.abortConnection()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    # -- Twisted -------------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)
        self.gate = ReadGate(self.transport)
        self.transport.registerProducer(self.gate, True)
        self.last_active = self.limits.now()
        self.limits.opened(self)
        self.session = protocol_for(self.listener.proto).session(self.ctx, self.listener, self)
        log.info(
            "accepted {proto} live conn {live} on port {port}",
            proto=str(self.listener.proto),
            live=self.live_id,
            port=self.listener.live_port,
        )

    def dataReceived(self, data: bytes) -> None:
        """The session's answers to one read go out as one write (Twisted would join writes
        of one reactor turn too; this makes it ours, and spares the per-write bookkeeping), and
        a read nothing answers is acknowledged at once: a client with Nagle's algorithm on
        (most are) holds a small write back until its previous one is acknowledged, and when
        that one needs no answer (a PUBACK, a Basic.Ack) Linux would delay the ACK up to 40 ms:
        a QoS 1 publisher that acks its own copy stalled 40 ms a message (100 delayed ACKs for
        100 messages; none recorded through the proxy from Mosquitto)."""
        session = self.session
        assert session is not None
        self._answer = answer = []
        try:
            if session.data_received(data):
                self.last_active = self.limits.now()
        except Exception as exc:  # one broken session never takes the server down
            log.failure("replay session failed", Failure(exc))
            session.miss("internal", f"replayer error: {type(exc).__name__}: {exc}", {})
            session.close()
        finally:
            self._answer = None
        if answer:
            self.send(b"".join(answer))  # the ACK rides on it
        else:
            quick_ack(self.transport)
        self.limits.after_read(self, session.buffered)
        try:  # the client has its answers: what it sends next, prepared now
            session.read_ahead()
        except Exception as exc:  # the next frame meets it again, and is answered for it
            log.failure("replay session read-ahead failed", Failure(exc))

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self._timers = []
        self.limits.closed(self)
        # What an unfinished frame held goes now, not when the garbage collector gets to the
        # session <-> link cycle (62 MB partial frames stayed after their clients had gone).
        if self.session is not None:
            held = self.session.buffered
            self.session.connection_lost()
            dropped_unfinished(held)


def quick_ack(transport: Any) -> None:
    """Acknowledge what was read now, not after the delayed-ACK timer (Linux: TCP_QUICKACK,
    which the kernel clears again by itself, hence once per read; elsewhere nothing)."""
    if _QUICKACK is None or transport is None:
        return
    try:
        transport.getHandle().setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
    except (OSError, AttributeError):  # closed meanwhile, or no socket (a test transport)
        pass


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class ReplayFactory(protocol.Factory):
    def __init__(
        self,
        ctx: ReplayContext,
        listener: Listener,
        limits: ServeLimits,
        contexts: Callable[[], ReplayContext] | None = None,
    ) -> None:
        self.ctx = ctx
        self.listener = listener
        self.limits = limits
        #: the context a new connection joins (`serve --repeat` starts a fresh one per session)
        self.contexts = contexts

    def buildProtocol(self, addr: Any) -> ReplayProtocol:
        ctx = self.contexts() if self.contexts is not None else self.ctx
        proto = ReplayProtocol(ctx, self.listener, ctx.next_live_id(), self.limits)
        proto.factory = self
        return proto
