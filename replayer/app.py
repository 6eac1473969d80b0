"""Run the fake broker: open the recording, listen on every recorded address (moved if asked),
serve until SIGTERM/SIGINT, then write the report and pick the exit code."""

from __future__ import annotations

import os
import socket
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from twisted.internet import error as twisted_error
from twisted.internet.defer import Deferred

from rrlab.rr.atomic_file import write_atomic
from rrlab.rr.codecs import DEFAULT_MAX_FRAME_BYTES, Proto
from rrlab.rr.policy import Limits
from rrlab.rr.protocols import protocol_for
from rrlab.rr.replay.recording import Recording
from rrlab.rr.replay.session import Listener, PortMap, ReplayContext, ReplayOptions
from rrlab.rr.usage import EXIT_MISMATCH, EXIT_OK, UsageError
from rrlab.tcp import adopt_tcp, listen_tcp

from .report import ReplayReport
from .server import ReplayFactory, ServeLimits

LISTEN_HOST = "127.0.0.1"
#: Reactor turns run after the stop signal before counting what the recording had unused: the
#: last frames and the close a client sent before it exited are in the kernel already, and are
#: read first (each turn reads every ready socket once; data and its EOF take two).
SETTLE_TURNS = 10
#: A bench knob, not a user option (bench/bench_replay.py --ungated sets it): "1" serves AMQP
#: with no delivery held for its publish (each goes with the client frame recorded before it, as
#: before issue N's causality), to measure what holding them costs. MQTT keeps its gate: it
#: predates N, and a push recorded after its subscriber's last packet goes only when its publish
#: matches. Read here only.
BENCH_UNGATED = "RRLAB_BENCH_UNGATED"


class StartError(UsageError):
    """The fake broker cannot serve this cassette: one line naming the cassette and the cause
    (the protocol's model says which connection, frame, API and version); the traceback is
    kept in `details` for the log, never printed on the terminal."""

    def __init__(self, cassette: Path, proto: object, exc: Exception) -> None:
        cause = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        super().__init__(f"cannot serve {proto} from cassette {cassette}: {cause}")
        self.details = "".join(traceback.format_exception(exc))


class ReplayServer:
    def __init__(
        self,
        recording: Recording,
        options: ReplayOptions,
        ports: PortMap,
        *,
        reactor: Any,
        say: Callable[[str], None] = lambda line: print(line, flush=True),
        warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
        limits: Limits | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        reopen: Callable[[], Recording] | None = None,
    ) -> None:
        self.reactor = reactor
        self.limits = ServeLimits(reactor, limits, max_frame_bytes)
        self.say = say
        self.report = ReplayReport()
        self.report.on_miss = lambda miss: warn(miss.line())
        self.ctx = ReplayContext(recording, options, self.report, ports, max_frame_bytes)
        self.listeners = [
            Listener(proto, port, ports.live(port)) for proto, port in recording.listeners()
        ]
        self.ports: list[Any] = []
        self.finished = False
        #: `serve --repeat`: a fresh copy of the recording, opened for each new session
        self.reopen = reopen
        self.sessions = 1
        self._bound_before = 0  # recorded connections bound in the sessions already over

    def listen_all(self, adopted: Mapping[int, int] | None = None) -> None:
        """Bind every listener before serving anything; a taken port is a usage error, a
        recording a protocol cannot model a StartError. `adopted`: {live port: fd} of sockets
        `rrlab replay` bound and listens on already (early_listen), taken over as they are."""
        adopted = dict(adopted or {})
        for proto in {lst.proto for lst in self.listeners}:
            try:
                protocol_for(proto).prepare(self.ctx)
            except Exception as exc:
                raise StartError(self.ctx.recording.path, proto, exc) from exc
            if proto is Proto.AMQP and os.environ.get(BENCH_UNGATED) == "1":
                causes = protocol_for(proto).delivery_causes(self.ctx)
                if isinstance(causes, dict):
                    causes.clear()
        try:
            for lst in self.listeners:
                contexts = self.session_context if self.reopen is not None else None
                factory = ReplayFactory(self.ctx, lst, self.limits, contexts)
                fd = adopted.pop(lst.live_port, None)
                # answers sent in the reactor turn that made them (rrlab.tcp)
                if fd is None:
                    port = listen_tcp(self.reactor, lst.live_port, factory, LISTEN_HOST)
                else:  # Twisted listens on a copy of it
                    port = adopt_tcp(self.reactor, fd, socket.AF_INET, factory)
                    os.close(fd)
                self.ports.append(port)
        except twisted_error.CannotListenError as exc:
            self.stop_listening()
            raise UsageError(
                f"cannot listen on {exc.interface}:{exc.port}: {exc.socketError}; stop what "
                "holds it or move every listener with --port-offset N"
            ) from None

    def session_context(self) -> ReplayContext:
        """The context a new live connection joins. With --repeat, once every recorded
        connection has been bound and every live one has closed, a new connection starts a new
        session: the cassette served again from the start (fresh Kafka logs and group state,
        nothing claimed), counts going on in the same report."""
        if self.reopen is not None and self._session_over():
            self._start_session(self.reopen())
        return self.ctx

    def _session_over(self) -> bool:
        conns = self.ctx.recording.conns
        return bool(conns) and not self.limits.open and all(c.claimed_by is not None for c in conns)

    def _start_session(self, recording: Recording) -> None:
        old = self.ctx
        self.report.collect_unused(old.recording)  # what the session that ended left unused
        self._bound_before += sum(1 for c in old.recording.conns if c.claimed_by is not None)
        ctx = ReplayContext(
            recording,
            old.options,
            self.report,
            old.ports,
            old.max_frame_bytes,
            first_live_id=old.live_connections + 1,
        )
        for proto in {lst.proto for lst in self.listeners}:
            try:
                protocol_for(proto).prepare(ctx)
            except Exception as exc:  # the same cassette prepared before: not expected
                raise StartError(recording.path, proto, exc) from exc
        self.ctx = ctx
        self.sessions += 1
        self.say(
            f"rrlab serve: session {self.sessions}: every recorded connection was served, "
            "serving the cassette again from the start (--repeat)"
        )

    def serve_metrics(self, port: int) -> int:
        # twisted.web (~0.1 s of imports) only for --metrics-port
        from prometheus_client.twisted import MetricsResource
        from twisted.web.resource import Resource
        from twisted.web.server import Site

        root = Resource()
        root.putChild(b"metrics", MetricsResource(registry=self.report.registry))
        listening = self.reactor.listenTCP(port, Site(root), interface=LISTEN_HOST)
        self.ports.append(listening)
        actual = listening.getHost().port
        self.say(f"rrlab serve: metrics http://{LISTEN_HOST}:{actual}/metrics")
        return actual

    def announce(self) -> None:
        for lst in self.listeners:
            moved = "" if lst.live_port == lst.recorded_port else f" (recorded {lst.recorded_port})"
            self.say(f"rrlab serve: listening {lst.proto} {LISTEN_HOST}:{lst.live_port}{moved}")

    def stop_listening(self) -> None:
        self.limits.stop()
        for port in self.ports:
            port.stopListening()
        self.ports = []

    def finish(self) -> None:
        """Count what the recording had that nobody asked for (once)."""
        if self.finished:
            return
        self.finished = True
        self.report.collect_unused(self.ctx.recording)

    def finish_settled(self) -> Deferred[None]:
        """`finish` after SETTLE_TURNS reactor turns (a before-shutdown trigger waits for it):
        a client's closing frames and close race the stop signal, and decide what is unused."""
        done: Deferred[None] = Deferred()

        def turn(left: int) -> None:
            if left:
                self.reactor.callLater(0, turn, left - 1)
            else:
                self.finish()
                done.callback(None)

        turn(SETTLE_TURNS)
        return done

    def report_extra(self) -> dict[str, Any]:
        rec = self.ctx.recording
        return {
            "cassette": {
                "connections": len(rec.conns),
                "frames": rec.manifest.frame_count,
                "frames_sha256": rec.manifest.frames_sha256,
                "protocols": list(rec.manifest.protocols),
            },
            "connections": {
                "bound": self._bound_before + sum(1 for c in rec.conns if c.claimed_by is not None),
                "live": self.ctx.live_connections,
                "not_accepted": self.report.not_accepted,
            },
            "bindings": [b.to_dict() for b in self.ctx.bindings.made],
            "format": "rrlab.replay-report/1",
            "match": str(self.ctx.options.match),
            "pace": str(self.ctx.options.pace),
            "ports": {str(k): v for k, v in sorted(self.ctx.ports.moves.items()) if k != v},
            "sessions": self.sessions,
        }

    def write_outputs(self, report_path: Path | None, metrics_path: Path | None) -> None:
        strict = self.ctx.options.strict
        if report_path is not None:
            report_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(report_path, self.report.to_json(strict=strict, extra=self.report_extra()))
        if metrics_path is not None:
            metrics_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(metrics_path, self.report.metrics_text())

    def exit_code(self) -> int:
        """1 after a miss (strict: an unused frame), or when a client could not even connect."""
        verdict = self.report.verdict(self.ctx.options.strict)
        return EXIT_OK if verdict == "ok" else EXIT_MISMATCH
