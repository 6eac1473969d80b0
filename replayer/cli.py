"""`rrlab serve`: the fake broker, on the recorded addresses, until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rrlab.console import Console, start_logging
from rrlab.options import add_cassette, add_logging
from rrlab.rr.cassette import CassetteError
from rrlab.rr.flow import open_file_limit_note, raise_open_file_limit
from rrlab.rr.policy import Limits, PolicyError, check_writable, get_profile
from rrlab.rr.replay.session import MatchMode, Pace, PortMap, ReplayOptions
from rrlab.rr.usage import EXIT_USAGE, UsageError

from . import early_listen

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from .report import Miss


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve a cassette as a fake broker on its recorded addresses (until SIGTERM)",
        description="Listen on every address the cassette recorded (routes and Kafka broker "
        "listeners, 127.0.0.1 only) and answer live clients from the recording. Never opens "
        "an outbound connection. On SIGTERM/SIGINT: writes the report, prints a closing line, "
        "exits 0 (clean), 1 (a miss; with --strict also unused recorded client frames; a "
        "connection it could not accept) or 2 (usage, bad cassette, taken port, a path it "
        "cannot write).",
        epilog="example: rrlab serve --cassette cassettes/worker-amqp-rabbitmq "
        "--report out/replay-report.json",
    )
    add_cassette(p)
    add_matching(p)
    p.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="RECORDED=PORT",
        help="move one recorded listen port to PORT (overrides --port-offset for it)",
    )
    p.add_argument("--strict", action="store_true", help="unused recorded client frames fail")
    # sockets `rrlab replay` bound for us (early_listen): LIVE_PORT=FD, not for users
    p.add_argument(early_listen.FLAG, action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument(
        "--repeat",
        action="store_true",
        help="keep serving for long-running dev use: once every recorded connection has been "
        "served and closed, the next connection starts a new session with the cassette from "
        "the start (Kafka logs and group state reset); the report counts sessions",
    )
    p.add_argument(
        "--report",
        default="out/replay-report.json",
        metavar="PATH",
        help="canonical JSON report written at exit (default %(default)s)",
    )
    p.add_argument("--metrics-file", metavar="PATH", help="OpenMetrics snapshot written at exit")
    p.add_argument("--metrics-port", type=int, metavar="P", help="serve /metrics on 127.0.0.1:P")
    add_logging(p, stdout="addresses, closing line", stderr="misses, warnings")
    p.add_argument(
        "--miss-log",
        metavar="PATH",
        help="append each miss to PATH as one JSON line the moment it happens, whatever the "
        "log format (what `rrlab replay` watches to end the command after a miss)",
    )
    policy = get_profile(SERVE_PROFILE)
    p.add_argument(
        "--max-buffered-bytes",
        type=int,
        metavar="N",
        help="limit: bytes of unfinished frames held across all connections before reads pause "
        f"(default {policy.limits.max_buffered_bytes})",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        metavar="SECONDS",
        help="limit: close a connection with no whole frame either way for this long "
        "(default: never)",
    )
    p.add_argument(
        "--max-frame-bytes",
        type=int,
        metavar="N",
        help=f"budget: most bytes of one client frame (default {policy.budgets.max_frame_bytes})",
    )
    p.set_defaults(func=run)


def add_matching(parser: argparse.ArgumentParser) -> None:
    """How live frames meet the recording (serve, replay): --match, --pace, --port-offset and
    what comparisons leave out."""
    parser.add_argument(
        "--match",
        default=MatchMode.TRANSCRIPT.value,
        choices=[m.value for m in MatchMode],
        help="transcript: recorded order within a connection; lookup: earliest unused frame "
        "with the same key (default %(default)s)",
    )
    parser.add_argument(
        "--pace",
        default=Pace.FAST.value,
        choices=[m.value for m in Pace],
        help="fast: answer at once; recorded: keep recorded delays (default %(default)s)",
    )
    parser.add_argument(
        "--port-offset",
        type=int,
        default=0,
        metavar="N",
        help="move every listener by N (Kafka advertised addresses follow)",
    )
    parser.add_argument(
        "--ignore-field",
        action="append",
        default=[],
        metavar="PATH",
        help="ignore path left out of comparisons, from the message (properties.message_id, "
        "headers.x) or its payload (trace.id); adds to the cassette's replay-rules.json",
    )
    parser.add_argument(
        "--ignore-header",
        action="append",
        default=[],
        metavar="NAME",
        help="message header left out of comparisons (adds to replay-rules.json)",
    )


#: the profile whose limits and frame budget the fake broker takes (serve has no --profile)
SERVE_PROFILE = "rr_replay"


def limits_from(args: argparse.Namespace) -> tuple[Limits, int]:
    """The fake broker's limits and frame budget: the profile's, with the flags given."""
    policy = get_profile(SERVE_PROFILE)
    given = {
        k: v
        for k, v in (
            ("max_buffered_bytes", args.max_buffered_bytes),
            ("idle_timeout_s", args.idle_timeout),
        )
        if v is not None
    }
    max_frame = args.max_frame_bytes or policy.budgets.max_frame_bytes
    try:
        limits = dataclasses.replace(policy.limits, **given)
        if max_frame <= 0:
            raise PolicyError(f"--max-frame-bytes must be a positive integer, got {max_frame}")
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    return limits, max_frame


def check_outputs(args: argparse.Namespace) -> None:
    """Every file serve writes, checked before anything starts (one line, exit 2)."""
    try:
        for flag, path in (("--report", args.report), ("--metrics-file", args.metrics_file)):
            if path:
                check_writable(path, flag)  # its directories are made when it is written
        if args.log_file:
            check_writable(args.log_file, "--log-file", parents=False)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None


def port_map(recorded_ports: list[int], offset: int, explicit: list[str]) -> PortMap:
    moves = {port: port + offset for port in recorded_ports}
    for item in explicit:
        left, sep, right = item.partition("=")
        if not sep or not left.isdigit() or not right.isdigit():
            raise UsageError(f"--listen {item!r}: expected RECORDED=PORT, e.g. 19092=29092")
        if int(left) not in moves:
            known = ", ".join(str(p) for p in sorted(moves)) or "none"
            raise UsageError(f"--listen {item!r}: the cassette has no listener {left} ({known})")
        moves[int(left)] = int(right)
    for recorded, live in moves.items():
        if not 0 < live < 65536:
            raise UsageError(f"listener {recorded} moved to {live}: not a port (1-65535)")
    if len(set(moves.values())) != len(moves):
        raise UsageError(f"two listeners moved onto the same port: {moves}")
    return PortMap(moves)


def _also_logging_misses(then: Callable[[Miss], None] | None, path: Path) -> Callable[[Miss], None]:
    """`then`, after one flushed JSON line per miss in `path` (for a supervising process)."""
    try:
        stream = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open until the process ends)
    except OSError as exc:
        raise UsageError(f"--miss-log {path}: {exc.strerror}") from None

    def on_miss(miss: Miss) -> None:
        fields = ("proto", "api", "live_conn", "recorded_conn", "reason")
        stream.write(json.dumps({f: getattr(miss, f) for f in fields}, sort_keys=True) + "\n")
        stream.flush()
        if then is not None:
            then(miss)

    return on_miss


def run(args: argparse.Namespace) -> int:
    from twisted.internet import reactor

    from rrlab.rr.codecs import Proto
    from rrlab.rr.protocols import client_kind
    from rrlab.rr.replay.recording import Recording

    from .app import ReplayServer, StartError
    from .rules import load_rules

    limits, max_frame_bytes = limits_from(args)
    check_outputs(args)
    try:
        recording = Recording.open(args.cassette, classify=client_kind)
    except CassetteError as exc:
        print(f"rrlab serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if any(proto == Proto.KAFKA for proto, _port in recording.listeners()):
        # (opening reads summaries only: no batch is unpacked before this; a cassette with no
        # Kafka listener never imports the Kafka stack)
        from rrlab.rr.protocols.kafka.records import set_decompression_budget

        # what a recorded or live Kafka batch may unpack to: the profile's own limit, else the
        # frame budget (as the proxy sets it from its policy)
        set_decompression_budget(limits.max_decompressed_bytes or max_frame_bytes)
    ports = port_map([p for _proto, p in recording.listeners()], args.port_offset, args.listen)
    rules = load_rules(recording.path, args.ignore_field, args.ignore_header)
    options = ReplayOptions(
        match=MatchMode(args.match),
        pace=Pace(args.pace),
        strict=bool(args.strict),
        ignore_fields=rules["ignore_fields"],
        ignore_headers=rules["ignore_headers"],
        exact_clock_fields=rules["exact_clock_fields"],
    )
    console = Console(fmt=args.log_format)
    low_files = open_file_limit_note(*raise_open_file_limit())
    server = ReplayServer(
        recording,
        options,
        ports,
        reactor=reactor,
        say=lambda line: console.note(line, "serve"),
        warn=console.warn,
        limits=limits,
        max_frame_bytes=max_frame_bytes,
        reopen=(lambda: Recording.open(args.cassette, classify=client_kind))
        if args.repeat
        else None,
    )
    if console.json:
        server.report.on_miss = lambda miss: console.event(
            {
                "time": time.time(),
                "event": "miss",
                "level": "warn",
                "proto": str(miss.proto),
                "api": miss.api,
                "live_conn": miss.live_conn,
                "recorded_conn": miss.recorded_conn,
                "reason": miss.reason,
                "text": miss.line(),
            }
        )
    if args.miss_log:
        server.report.on_miss = _also_logging_misses(server.report.on_miss, Path(args.miss_log))
    try:
        server.listen_all(early_listen.parse(args.listen_fd))
    except StartError as exc:  # one line on the terminal (rrlab's usage error); the
        _log_start_failure(args.log_file, exc)  # traceback in --log-file only
        raise
    if args.metrics_port is not None:
        server.serve_metrics(args.metrics_port)
    observer = start_logging(
        console,
        Path(args.log_file) if args.log_file else None,
        quiet=("idle_timeout",),
        reactor=reactor,
    )
    if low_files:
        console.warn(f"rrlab serve: warning: {low_files}")

    def stop() -> Deferred[None]:
        server.stop_listening()
        return server.finish_settled()

    reactor.addSystemEventTrigger("before", "shutdown", stop)
    reactor.callWhenRunning(server.announce)
    if args.metrics_file:
        # prometheus-client loaded once listening, while the client starts: neither before
        # listening nor at exit, when the report is awaited
        reactor.callWhenRunning(reactor.callLater, 0, lambda: server.report.registry)
    reactor.run()
    server.finish()
    observer.flush()
    server.report.not_accepted = observer.accept_failures
    if server.report.not_accepted:
        console.warn(
            f"rrlab serve: {server.report.not_accepted} connections could not be accepted "
            "(too many open files): a client may have failed for it; raise the open-file limit"
        )
    server.write_outputs(
        Path(args.report) if args.report else None,
        Path(args.metrics_file) if args.metrics_file else None,
    )
    closing = server.report.closing_line(options.strict)
    if args.repeat:
        closing += f" ({server.sessions} sessions, --repeat)"
    console.say(closing)
    console.event(
        {
            "time": time.time(),
            "event": "closed",
            "level": "info",
            "text": closing,
            **server.report.totals(),
        }
    )
    return server.exit_code()


def _log_start_failure(log_file: str | None, exc: Exception) -> None:
    if not log_file:
        return
    record = {
        "event": "start_failed",
        "level": "error",
        "text": str(exc),
        "time": time.time(),
        "traceback": getattr(exc, "details", ""),
    }
    with open(log_file, "a", encoding="utf-8") as out:
        out.write(json.dumps(record, sort_keys=True) + "\n")
