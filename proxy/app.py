"""The recording proxy as a whole: listeners, per-connection recorders, Kafka node listeners,
policy checks at run time, metrics, logs and an orderly finalize on shutdown.

`ProxyApp` is the owner of every forwarding pair (`proxy.forward.PairOwner`: the pairs call
back into nothing else); it owns the one cassette writer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site

from rrlab.rr.cassette.writer import CassetteWriteFailed
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.flow import BufferBudget, dropped_unfinished
from rrlab.rr.policy import BudgetExceeded, Limits
from rrlab.rr.protocols.kafka.rewrite import KafkaNode, NodeMap
from rrlab.rr.record import ConnectionRecorder, RecordingBroken, recorder_for
from rrlab.tcp import listen_tcp

from .forward import ListenFactory, Pair, RecordingFailure, Route, Side
from .metrics import ProxyMetrics

log = Logger(namespace="rrlab.proxy")

#: exit code after the cassette could not be written (disk full, I/O error): the run failed,
#: it was no usage or policy error
EXIT_WRITE_FAILED = 1


class ProxyApp:
    def __init__(
        self,
        reactor: Any,
        writer: Any,
        routes: Iterable[Route],
        *,
        allowed_upstreams: Iterable[str],
        kafka_node_base_port: int = 19093,
        max_frame_bytes: int,
        metrics: ProxyMetrics | None = None,
        say: Callable[[str], None] = print,
        limits: Limits | None = None,
    ) -> None:
        self.reactor = reactor
        self.writer = writer
        self.routes = list(routes)
        self.allowed = set(allowed_upstreams)
        self.max_frame_bytes = max_frame_bytes
        self.metrics = metrics or ProxyMetrics()
        self.say = say
        kafka_hosts = [r.listen_host for r in self.routes if r.proto == Proto.KAFKA]
        self.node_map = NodeMap(
            base_port=kafka_node_base_port,
            listen_host=kafka_hosts[0] if kafka_hosts else "127.0.0.1",
            on_new=self._new_kafka_node,
            on_new_id=self._new_kafka_node_id,
        )
        self.ports: list[Any] = []
        self.pairs: set[Pair] = set()
        self.exit_code = 0
        self.stopping = False
        self.write_error: CassetteWriteFailed | None = None
        self.limits = limits or Limits()
        self.budget = BufferBudget(self.limits.max_buffered_bytes)
        idle = self.limits.idle_timeout_s
        self._sweep = LoopingCall(self._sweep_once)
        self._sweep.clock = reactor
        self._sweep.start(min(1.0, idle / 4) if idle is not None else 1.0, now=False)

    # -- start / stop ---------------------------------------------------------------------------

    def listen_all(self) -> None:
        """Bind every configured route (raises CannotListenError before anything is recorded)."""
        for route in self.routes:
            self._listen(route)

    def announce(self) -> None:
        for route in self.routes:
            self.writer.add_route(route.proto, route.listen, route.upstream)
            self._say_listening(route)

    def _listen(self, route: Route) -> None:
        port = listen_tcp(
            self.reactor, route.listen_port, ListenFactory(self, route), route.listen_host
        )
        self.ports.append(port)

    def _say_listening(self, route: Route) -> None:
        self.say(f"rrlab proxy: listening {route.proto} {route.listen} -> {route.upstream}")
        log.info(
            "listening {proto} {listen} -> {upstream}",
            event="listening",
            proto=route.proto,
            listen=route.listen,
            upstream=route.upstream,
            kind=route.kind,
        )

    def serve_metrics(self, port: int) -> int:
        root = Resource()
        root.putChild(b"metrics", self.metrics.resource())
        listening = self.reactor.listenTCP(port, Site(root), interface="127.0.0.1")
        self.ports.append(listening)
        actual = listening.getHost().port
        self.say(f"rrlab proxy: metrics http://127.0.0.1:{actual}/metrics")
        log.info("metrics on 127.0.0.1:{port}", event="metrics", port=actual)
        return actual

    def shutdown(self, reason: str = "proxy shutdown") -> None:
        """Stop listening, close every open connection in the cassette, finalize it."""
        if self.writer.finalized or self.stopping:
            return
        self.stopping = True
        if self._sweep.running:
            self._sweep.stop()
        for port in self.ports:
            port.stopListening()
        for pair in list(self.pairs):
            if pair.recorder is not None:
                pair.recorder.close(reason)
            pair.abort(reason)
        try:
            manifest = self.writer.finalize()
        except CassetteWriteFailed as exc:  # left for `verify --repair`, as the line says
            self._say_write_failed(exc)
            return
        log.info(
            "cassette finalized: {frames} frames, {connections} connections",
            event="finalized",
            frames=manifest.frame_count,
            connections=len(manifest.connections),
            path=str(self.writer.path),
        )
        failed = self.writer.compact_failed
        if failed is not None:  # the plain cassette is whole: say so
            later = "; `rrlab migrate --compact` can compact it later"
            log.warn(
                "cassette left plain, not compacted: {error}{later}",
                event="compact_failed",
                error=str(failed),
                later=later if isinstance(failed, OSError) else "",
            )

    # -- PairOwner: what the forwarding pairs call back into -----------------------------------

    def pair_connected(self, pair: Pair) -> ConnectionRecorder | None:
        route = pair.route
        if self.stopping:
            pair.abort("proxy stopping")
            return None
        try:
            conn = self.writer.open_connection(route.proto, route.listen, route.upstream)
        except CassetteWriteFailed as exc:
            pair.abort(f"cassette write failed: {exc.words}")
            self.write_failed(exc)
            return None
        recorder = recorder_for(
            self.writer,
            conn,
            route.proto,
            node_map=self.node_map,
            on_rewrite=self._rewrite_event,
            max_frame_bytes=self.max_frame_bytes,
            on_frames=self.metrics.on_frames,
        )
        self.pairs.add(pair)
        pair.last_active = self.reactor.seconds()
        self.metrics.opened(route.proto)
        log.info(
            "connection {conn} open {proto} {listen} -> {upstream}",
            event="connection_open",
            conn=conn,
            proto=route.proto,
            listen=route.listen,
            upstream=route.upstream,
        )
        return recorder

    def recording_failed(self, pair: Pair, exc: RecordingFailure) -> None:
        """A cassette that cannot be written stops the proxy; a connection that cannot be
        recorded faithfully closes; a budget used up stops the proxy (exit 2)."""
        if isinstance(exc, CassetteWriteFailed):  # nothing of the chunk went out
            pair.abort(f"recording stopped: cassette write failed: {exc.words}")
            self.write_failed(exc)
        elif isinstance(exc, RecordingBroken):
            self._recording_broken(pair, str(exc))
            pair.abort(f"recording stopped: {exc}")
        else:
            self._budget_exceeded(exc)

    # -- limits across connections (rr.policy.Limits) -----------------------------------------

    def after_read(self, pair: Pair, side: Side) -> None:
        """After `side` read a chunk: a whole frame either way restarts the idle clock, and its
        unfinished frame counts into the buffered-bytes budget (rr.flow.BufferBudget pauses
        its reads while the total is over `max_buffered_bytes`, resumes them once under)."""
        recorder = pair.recorder
        if recorder is None or pair not in self.pairs:
            return
        frames = recorder.frames[Direction.C2S] + recorder.frames[Direction.S2C]
        if frames != pair.frames:
            pair.frames = frames
            pair.last_active = self.reactor.seconds()
        budget = self.budget
        if budget.account(side.gate, recorder.framers[side.direction].buffered):
            if budget.paused == 1:
                log.warn(
                    "{buffered} bytes of unfinished frames held (limit {limit}): "
                    "reads paused until frames complete",
                    event="buffer_limit",
                    buffered=budget.total,
                    limit=budget.limit,
                )

    @property
    def buffered(self) -> int:
        """Unfinished-frame bytes held across every connection."""
        return self.budget.total

    def _sweep_once(self) -> None:
        """Sides paused by the budget whose peer left are read to their end (so they close and
        let go); with `idle_timeout_s`, connections with no whole frame either way that long
        are closed (a sweep, not a timer per connection; a client trickling bytes of a frame
        is not active)."""
        self.budget.drain_abandoned()
        timeout = self.limits.idle_timeout_s
        if timeout is None:
            return
        cutoff = self.reactor.seconds() - timeout
        for pair in [p for p in self.pairs if p.last_active <= cutoff]:
            pair.abort(f"idle timeout: no frame for {timeout:g} s")

    def pair_closed(self, pair: Pair, reason: str | None) -> None:
        recorder = pair.recorder
        if recorder is None or pair not in self.pairs:
            return
        self.pairs.discard(pair)
        for side in (pair.client, pair.upstream):
            if side is not None:
                self.budget.forget(side.gate)
        self.metrics.closed(pair.route.proto)
        held = recorder.buffered
        full = recorder.close(reason or "closed")  # its unfinished frames go now
        if reason and reason.startswith("upstream connection lost"):
            self.metrics.upstream_errors.labels(pair.route.proto, "lost").inc()
            log.error(
                "connection {conn}: {reason}",
                event="upstream_lost",
                conn=recorder.conn_id,
                reason=full,
                upstream=pair.route.upstream,
            )
        log.info(
            "connection {conn} closed: {reason}",
            event="connection_closed",
            conn=recorder.conn_id,
            reason=full,
            frames_c2s=recorder.frames[Direction.C2S],
            frames_s2c=recorder.frames[Direction.S2C],
        )
        dropped_unfinished(held)  # large ones handed back to the system, as serve does

    def upstream_failed(self, pair: Pair, message: str) -> None:
        if self.stopping:  # our own shutdown cut the connect short: no upstream failed
            log.info(
                "{proto} connection to {upstream} not made: proxy shutting down",
                event="upstream_cancelled",
                proto=pair.route.proto,
                upstream=pair.route.upstream,
            )
            return
        self.metrics.upstream_errors.labels(pair.route.proto, "connect").inc()
        log.error(
            "upstream {upstream} refused the {proto} connection: {message}; client closed",
            event="upstream_failed",
            proto=pair.route.proto,
            upstream=pair.route.upstream,
            message=message,
        )

    def _recording_broken(self, pair: Pair, message: str) -> None:
        recorder = pair.recorder
        rewrite_failed = getattr(recorder and recorder.rewriter, "failed", None) is not None
        if not rewrite_failed:  # a failed Kafka rewrite is counted by _rewrite_event
            self.metrics.recording_errors.labels(pair.route.proto, "framing").inc()
        log.error(
            "connection {conn}: {message}; connection closed",
            event="rewrite_failed" if rewrite_failed else "recording_broken",
            conn=recorder.conn_id if recorder else None,
            message=message,
        )

    def write_failed(self, exc: CassetteWriteFailed) -> None:
        """The cassette cannot be written (disk full, I/O error, read-only): nothing more may
        be forwarded unrecorded, so every connection closes and the proxy stops, leaving the
        cassette for `verify --repair`. Said once, as one ERROR line."""
        self._say_write_failed(exc)
        self.shutdown(f"cassette write failed: {exc.words}")
        self.reactor.callLater(0, self.reactor.stop)

    def _say_write_failed(self, exc: CassetteWriteFailed) -> None:
        if self.write_error is not None:
            return
        self.write_error = exc
        self.exit_code = EXIT_WRITE_FAILED
        log.error(
            "{message}",
            event="cassette_write_failed",
            message=str(exc),
            errno=exc.errno_name,
            cassette=str(self.writer.path),
        )

    def _budget_exceeded(self, exc: BudgetExceeded) -> None:
        if self.exit_code == 2:
            return
        self.exit_code = 2
        # the person sees this line (stdout); the log event below carries it for --log-file
        # and --log-format json (rrlab.console)
        self.say(f"rrlab proxy: error: {exc}")
        log.critical("{message}", event="budget_exceeded", message=str(exc), **exc.to_dict())
        self.shutdown(f"budget exceeded: {exc.budget}")
        self.reactor.callLater(0, self.reactor.stop)

    # -- Kafka -----------------------------------------------------------------------------------

    def _rewrite_event(self, ev: Any) -> None:
        # A failure is logged by _recording_broken, with the connection it closes.
        self.metrics.on_rewrite(ev)

    def _new_kafka_node_id(self, node: KafkaNode, node_id: int) -> None:
        """The manifest learns each node id when it is learnt (not only at finalize)."""
        upstream = f"{node.upstream_host}:{node.upstream_port}"
        self.writer.set_kafka_node(node_id, upstream, node.listen_port)

    def _new_kafka_node(self, node: KafkaNode) -> None:
        upstream = f"{node.upstream_host}:{node.upstream_port}"
        for node_id in node.node_ids:
            self._new_kafka_node_id(node, node_id)
        if upstream not in self.allowed:
            self.metrics.recording_errors.labels("kafka", "policy").inc()
            log.error(
                "kafka broker {upstream} is not on the upstream allow-list; "
                "no listener for it (add --allow-upstream {upstream})",
                event="policy_refused",
                upstream=upstream,
            )
            return
        route = Route(
            "kafka",
            self.node_map.listen_host,
            node.listen_port,
            node.upstream_host,
            node.upstream_port,
            kind="kafka-node",
        )
        try:
            self._listen(route)
        except Exception as exc:
            self.metrics.recording_errors.labels("kafka", "listen").inc()
            log.error(
                "cannot listen for kafka broker {upstream} on {listen}: {error}",
                event="listen_failed",
                upstream=upstream,
                listen=route.listen,
                error=str(exc),
            )
            return
        self.writer.add_route(route.proto, route.listen, route.upstream)
        self._say_listening(route)
