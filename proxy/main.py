"""Run the proxy: logging, listeners, cassette, metrics, then the reactor until a signal."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet import error as twisted_error
from twisted.logger import globalLogBeginner, jsonFileLogObserver

from rr.cassette import CassetteError, CassetteWriter
from rr.codecs.kafka_records import set_decompression_budget
from rr.policy import Policy, PolicyError
from rr.usage import UsageError

from .app import ProxyApp
from .forward import Route


def _start_logging(log_path: Path | None) -> None:
    stream = open(log_path, "a", encoding="utf-8") if log_path else sys.stderr  # noqa: SIM115
    globalLogBeginner.beginLoggingTo(
        [jsonFileLogObserver(stream, recordSeparator="")], redirectStandardIO=False
    )


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
    argv: Sequence[str] = (),
    reactor: Any = None,
) -> int:
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
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
        say=lambda line: print(line, flush=True),
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
            meta={"recorder": "rrlab proxy", "profile": policy.name},
        )
    except (CassetteError, PolicyError) as exc:
        for port in app.ports:
            port.stopListening()
        raise UsageError(str(exc)) from None
    _start_logging(log_path)
    reactor.addSystemEventTrigger("before", "shutdown", app.shutdown)
    # Say "listening" only once the reactor runs: its SIGTERM/SIGINT handlers are installed by
    # then, so a supervisor that stops us right after that line still gets a finalized cassette.
    reactor.callWhenRunning(app.announce)
    reactor.callWhenRunning(app.start_progress, sys.stdout)
    reactor.run()
    return app.exit_code
