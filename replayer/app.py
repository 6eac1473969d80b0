"""Run the fake broker: open the recording, listen on every recorded address (moved if asked),
serve until SIGTERM/SIGINT, then write the report and pick the exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import error as twisted_error
from twisted.web.resource import Resource
from twisted.web.server import Site

from rr.usage import EXIT_MISMATCH, EXIT_OK, UsageError

from .protocols import module_for
from .recording import Recording
from .report import ReplayReport
from .server import ReplayFactory
from .session import Listener, PortMap, ReplayContext, ReplayOptions

LISTEN_HOST = "127.0.0.1"


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
    ) -> None:
        self.reactor = reactor
        self.say = say
        self.report = ReplayReport()
        self.report.on_miss = lambda miss: warn(miss.line())
        self.ctx = ReplayContext(recording, options, self.report, ports)
        self.listeners = [
            Listener(proto, port, ports.live(port)) for proto, port in recording.listeners()
        ]
        self.ports: list[Any] = []
        self.finished = False

    def listen_all(self) -> None:
        """Bind every listener before serving anything; a taken port is a usage error."""
        for proto in {lst.proto for lst in self.listeners}:
            prepare = getattr(module_for(proto), "prepare", None)
            if prepare is not None:
                prepare(self.ctx)
        try:
            for lst in self.listeners:
                factory = ReplayFactory(self.ctx, lst)
                self.ports.append(
                    self.reactor.listenTCP(lst.live_port, factory, interface=LISTEN_HOST)
                )
        except twisted_error.CannotListenError as exc:
            self.stop_listening()
            raise UsageError(
                f"cannot listen on {exc.interface}:{exc.port}: {exc.socketError}; stop what "
                "holds it or move every listener with --port-offset N"
            ) from None

    def serve_metrics(self, port: int) -> int:
        from prometheus_client.twisted import MetricsResource

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
        for port in self.ports:
            port.stopListening()
        self.ports = []

    def finish(self) -> None:
        """Count what the recording had that nobody asked for (once)."""
        if self.finished:
            return
        self.finished = True
        self.report.collect_unused(self.ctx.recording)

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
                "bound": sum(1 for c in rec.conns if c.claimed_by is not None),
                "live": self.ctx.live_connections,
            },
            "format": "rrlab.replay-report/1",
            "match": str(self.ctx.options.match),
            "pace": str(self.ctx.options.pace),
            "ports": {str(k): v for k, v in sorted(self.ctx.ports.moves.items()) if k != v},
        }

    def write_outputs(self, report_path: Path | None, metrics_path: Path | None) -> None:
        strict = self.ctx.options.strict
        if report_path is not None:
            _write_atomic(
                report_path, self.report.to_json(strict=strict, extra=self.report_extra())
            )
        if metrics_path is not None:
            _write_atomic(metrics_path, self.report.metrics_text())

    def exit_code(self) -> int:
        verdict = self.report.verdict(self.ctx.options.strict)
        return EXIT_OK if verdict == "ok" else EXIT_MISMATCH


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
