"""Run the proxy: logging, listeners, cassette, metrics, then the reactor until a signal."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet import error as twisted_error
from twisted.internet.task import LoopingCall

from rrlab.console import Console, start_logging
from rrlab.rr.cassette import CassetteError, CassetteWriter
from rrlab.rr.flow import open_file_limit_note, raise_open_file_limit
from rrlab.rr.policy import Policy, PolicyError
from rrlab.rr.protocols.kafka.records import set_decompression_budget
from rrlab.rr.usage import UsageError

from .app import ProxyApp
from .forward import Route

#: events the proxy prints its own line for (human format), and per-connection chatter that
#: goes only to --log-file
SAID = ("listening", "metrics", "finalized", "budget_exceeded")
QUIET = ("connection_open", "connection_closed")


def _progress_text(app: ProxyApp) -> str:
    m = app.metrics
    return (
        f"{m.total_frames} frames  {m.total_bytes / 1e6:.1f} MB  "
        f"{m.open_conns} open / {m.total_conns} connections"
    )


def _closing_line(app: ProxyApp, cassette: str, warnings: int) -> str:
    m = app.metrics
    line = (
        f"rrlab proxy: finalized {cassette}: {m.total_frames} frames, {m.total_conns} "
        f"connections, {m.total_bytes} bytes"
    )
    return line + (f" ({warnings} warnings, see above)" if warnings else "")


def serve(
    *,
    routes: Sequence[Any],
    cassette: str,
    policy: Policy,
    mode: str,
    allowed_upstreams: Sequence[str],
    metrics_port: int | None,
    kafka_node_base_port: int,
    log_path: Path | None,
    log_format: str = "human",
    argv: Sequence[str] = (),
    reactor: Any = None,
) -> int:
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    console = Console(fmt=log_format)
    low_files = open_file_limit_note(*raise_open_file_limit())
    set_decompression_budget(policy.max_decompressed_bytes)  # bounds what a Kafka batch unpacks to
    app = ProxyApp(
        reactor,
        None,
        [
            Route(r.proto, r.listen_host, r.listen_port, r.upstream_host, r.upstream_port)
            for r in routes
        ],
        allowed_upstreams=allowed_upstreams,
        kafka_node_base_port=kafka_node_base_port,
        max_frame_bytes=policy.budgets.max_frame_bytes,
        limits=policy.limits,
        say=console.say,
    )
    try:
        app.listen_all()
        if metrics_port is not None:
            app.serve_metrics(metrics_port)
    except twisted_error.CannotListenError as exc:
        for port in app.ports:
            port.stopListening()
        raise UsageError(
            f"cannot listen on {exc.interface}:{exc.port}: {exc.socketError}; "
            "pick a free port or stop what holds it"
        ) from None
    try:
        app.writer = CassetteWriter.create(
            cassette,
            policy=policy,
            mode=mode,
            meta={"recorder": "rrlab proxy", "profile": policy.name, "origin": _origin()},
        )
    except (CassetteError, PolicyError, OSError) as exc:
        for port in app.ports:
            port.stopListening()
        if isinstance(exc, OSError):
            raise UsageError(f"cannot create cassette {cassette}: {exc.strerror}") from None
        raise UsageError(str(exc)) from None
    observer = start_logging(console, log_path, said=SAID, quiet=QUIET, reactor=reactor)
    if low_files:
        console.warn(f"rrlab proxy: warning: {low_files}")
    progress = LoopingCall(lambda: console.progress(_progress_text(app)))

    def end_progress() -> None:
        if progress.running:
            progress.stop()
        console.end_progress()

    reactor.addSystemEventTrigger("before", "shutdown", end_progress)  # before the last lines
    reactor.addSystemEventTrigger("before", "shutdown", app.shutdown)
    # Say "listening" only once the reactor runs: its SIGTERM/SIGINT handlers are installed by
    # then, so a supervisor that stops us right after that line still gets a finalized cassette.
    reactor.callWhenRunning(app.announce)
    if console.shows_progress:
        reactor.callWhenRunning(progress.start, 0.5)
    reactor.run()
    end_progress()
    observer.flush()  # counts of repeated lines still pending
    if app.writer.finalized:
        m = app.metrics
        console.say(_closing_line(app, cassette, observer.warnings))
        console.event(
            {
                "event": "closed",
                "level": "info",
                "cassette": cassette,
                "frames": m.total_frames,
                "connections": m.total_conns,
                "bytes": m.total_bytes,
                "warnings": observer.warnings,
            }
        )
    return app.exit_code


def _origin() -> dict[str, str]:
    """Where this recording is made: clients put the host's and user's names into the names they
    choose (`celery@HOST.celery.pidbox`), which a replay on another machine binds
    (`rr.replay.bindings.Origin`)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    return {"host": socket.gethostname(), "user": user}
