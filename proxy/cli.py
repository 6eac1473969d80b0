"""`rrlab proxy`: the recording proxy as a sidecar, until SIGTERM/SIGINT finalize the cassette.

Everything a user can get wrong is checked here, before a socket is bound or a file written:
route syntax, loopback-only listeners (Kafka broker listeners included: none may land on another
route's port), the profile's upstream allow-list and write roots.
Once running, what it prints is `rrlab.console`'s: human lines (stdout: listening addresses, metrics
URL, a progress line on a terminal, the closing line; stderr: log events, warnings standing out)
or, with `--log-format json`, JSON lines only; `--log-file` adds JSON lines to a file.
Logs hold clock values and error text, so they stay out of the cassette directory, which must
stay deterministic; a supervisor collects stderr without us choosing a path for it.
"""

from __future__ import annotations

import argparse
import dataclasses
import socket
import sys

from rrlab.options import (
    add_allow_upstream,
    add_logging,
    add_recording,
    add_write_root,
)
from rrlab.rr.codecs import Proto
from rrlab.rr.policy import (
    Budgets,
    Limits,
    PolicyError,
    check_writable,
    get_profile,
    parse_compact_over,
    project_compact_over,
)
from rrlab.rr.usage import UsageError

DEFAULT_LISTEN_HOST = "127.0.0.1"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclasses.dataclass(frozen=True, slots=True)
class RouteSpec:
    proto: str
    listen_host: str
    listen_port: int
    upstream_host: str
    upstream_port: int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "proxy",
        help="record broker traffic through a loopback proxy into a cassette (until SIGTERM)",
        description="Forward each route LISTEN=UPSTREAM (LISTEN: [host:]port, UPSTREAM: "
        "host:port) and record every frame into the cassette directory. SIGTERM/SIGINT "
        "finalize the cassette. Kafka broker addresses are rewritten to extra listeners from "
        "--kafka-node-base-port upward.",
    )
    add_recording(p, rewrite="replace it")
    p.add_argument(
        "--metrics-port", type=int, metavar="P", help="serve /metrics on 127.0.0.1:P (0: any)"
    )
    add_allow_upstream(p)
    add_write_root(p)
    p.add_argument(
        "--allow-non-loopback-listen",
        action="store_true",
        help="permit listeners on addresses other than loopback",
    )
    p.add_argument(
        "--kafka-node-base-port",
        type=int,
        metavar="P",
        help="first port for Kafka broker listeners (default: first Kafka listen port + 1)",
    )
    add_logging(p, stdout="addresses, progress, closing line", stderr="events")
    budgets = Budgets()
    for name, what in (
        ("max_frames", "frames in the cassette"),
        ("max_cassette_bytes", "bytes of frames.jsonl and frames.raw"),
        ("max_frame_bytes", "raw bytes of one frame"),
    ):
        p.add_argument(
            "--" + name.replace("_", "-"),
            type=int,
            metavar="N",
            help=f"budget: most {what} (profile default {getattr(budgets, name)})",
        )
    limits = Limits()
    p.add_argument(
        "--max-buffered-bytes",
        type=int,
        metavar="N",
        help="limit: bytes of unfinished frames held across all connections before reads pause "
        f"(profile default {limits.max_buffered_bytes})",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        metavar="SECONDS",
        help="limit: close a connection with no bytes either way for this long (default: never)",
    )
    p.add_argument(
        "--max-decompressed-bytes",
        type=int,
        metavar="N",
        help="limit: bytes one compressed Kafka batch may unpack to (default: the frame budget)",
    )
    p.set_defaults(func=run)


def parse_hostport(text: str, what: str, default_host: str | None = None) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        if default_host is None:
            raise UsageError(f"{what} {text!r} must be host:port")
        host, port = default_host, text
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{what} {text!r} must be host:port with a port in 1-65535")
    return host, int(port)


def parse_route(proto: str, text: str) -> RouteSpec:
    listen, sep, upstream = text.partition("=")
    if not sep:
        raise UsageError(f"--{proto} {text!r}: expected LISTEN=UPSTREAM, e.g. 19092=127.0.0.1:9092")
    lh, lp = parse_hostport(listen, f"--{proto} listen address", DEFAULT_LISTEN_HOST)
    uh, up = parse_hostport(upstream, f"--{proto} upstream")
    return RouteSpec(proto, lh, lp, uh, up)


def run(args: argparse.Namespace) -> int:
    routes = [
        parse_route(proto, t) for proto in ("kafka", "amqp", "mqtt") for t in getattr(args, proto)
    ]
    if not routes:
        raise UsageError(
            "no route given; add at least one of --kafka/--amqp/--mqtt LISTEN=UPSTREAM"
        )
    try:
        policy = get_profile(args.profile)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    for extra in args.allow_upstream:
        parse_hostport(extra, "--allow-upstream")
    allowed = set(policy.upstream_allow) | set(args.allow_upstream)
    seen: set[tuple[str, int]] = set()
    for r in routes:
        if r.listen_host not in LOOPBACK and not args.allow_non_loopback_listen:
            raise UsageError(
                f"--{r.proto} listens on {r.listen_host}: policy binds loopback only "
                "(pass --allow-non-loopback-listen to permit it)"
            )
        upstream = f"{r.upstream_host}:{r.upstream_port}"
        if upstream not in allowed:
            raise UsageError(
                f"--{r.proto} upstream {upstream} is not allowed by profile {policy.name} "
                f"(upstream allow-list: {', '.join(sorted(allowed)) or 'none'}); "
                f"add --allow-upstream {upstream} if this broker is yours"
            )
        if (r.listen_host, r.listen_port) in seen:
            raise UsageError(f"listen address {r.listen_host}:{r.listen_port} used twice")
        seen.add((r.listen_host, r.listen_port))
    budgets = policy.budgets
    overrides = {
        k: v
        for k, v in (
            ("max_frames", args.max_frames),
            ("max_cassette_bytes", args.max_cassette_bytes),
            ("max_frame_bytes", args.max_frame_bytes),
        )
        if v is not None
    }
    try:
        budgets = dataclasses.replace(budgets, **overrides)
        compact_over = (
            project_compact_over(policy.compact_over_bytes)
            if args.compact_over is None
            else parse_compact_over(args.compact_over)
        )
        policy = dataclasses.replace(
            policy.with_write_roots(args.write_root),
            budgets=budgets,
            compact_over_bytes=compact_over,
            limits=dataclasses.replace(
                policy.limits,
                **{
                    k: v
                    for k, v in (
                        ("max_buffered_bytes", args.max_buffered_bytes),
                        ("idle_timeout_s", args.idle_timeout),
                        ("max_decompressed_bytes", args.max_decompressed_bytes),
                    )
                    if v is not None
                },
            ),
        )
        log_path = policy.check_write_path(args.log_file) if args.log_file else None
        if log_path is not None:
            check_writable(args.log_file, "--log-file", parents=False)
        check_writable(args.cassette, "--cassette", directory=True)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    kafka = [r for r in routes if r.proto == Proto.KAFKA]
    node_base = args.kafka_node_base_port or (kafka[0].listen_port + 1 if kafka else 19093)
    if kafka:
        check_node_listener(routes, kafka[0], node_base, explicit=bool(args.kafka_node_base_port))
        if args.metrics_port == node_base:
            raise UsageError(
                f"--metrics-port {node_base} is where the first Kafka broker listener goes "
                "(--kafka-node-base-port, default the first Kafka port + 1); pick another port"
            )

    from .main import serve  # the Twisted side; imported only when actually serving

    return serve(
        routes=routes,
        cassette=args.cassette,
        policy=policy,
        mode=args.mode,
        allowed_upstreams=sorted(allowed),
        metrics_port=args.metrics_port,
        kafka_node_base_port=node_base,
        log_path=log_path,
        log_format=args.log_format,
        argv=sys.argv[1:],
    )


def _route_arg(r: RouteSpec) -> str:
    return f"--{r.proto} {r.listen_host}:{r.listen_port}={r.upstream_host}:{r.upstream_port}"


def check_node_listener(
    routes: list[RouteSpec], first_kafka: RouteSpec, node_base: int, *, explicit: bool
) -> None:
    """The first Kafka broker listener (where clients are sent after bootstrap) must be free
    and no route's: found out later, the worker fails with a bare `socket disconnected`."""
    origin = (
        f"--kafka-node-base-port {node_base}"
        if explicit
        else f"{_route_arg(first_kafka)} (its broker listeners start at port {node_base})"
    )
    for r in routes:
        if r.listen_port == node_base:
            raise UsageError(
                f"{origin} collides with {_route_arg(r)}: both need port {node_base}; "
                "move the route or pass --kafka-node-base-port P"
            )
    try:
        with socket.socket(
            socket.AF_INET6 if ":" in first_kafka.listen_host else socket.AF_INET
        ) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((first_kafka.listen_host, node_base))
    except OSError as exc:
        raise UsageError(
            f"{origin}: cannot listen on {first_kafka.listen_host}:{node_base}: {exc.strerror}; "
            "stop what holds it or pass --kafka-node-base-port P"
        ) from None
