"""`python -m worker` / `rrlab-worker`: one seeded produce → consume → aggregate run.

Configured only by flags and environment variables; the broker defaults are the worker-facing
ports (19092, 15673, 11883) where a recording proxy or a fake broker may listen. Output:
`aggregate.json` (deterministic), `report.json` (with timings) and `metrics.txt` (OpenMetrics).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from worker import aggregate, metrics, output
from worker.drivers import DRIVERS, DriverConfig, redact_url
from worker.envelope import EnvelopeError, make_envelopes
from worker.errors import FAILED, BrokerUnreachable, WorkerError

PROG = "rrlab-worker"
DEFAULT_KAFKA = "127.0.0.1:19092"
DEFAULT_AMQP = "amqp://rrlab:rrlab-secret-pw@127.0.0.1:15673/rrlab"
DEFAULT_MQTT = "mqtt://127.0.0.1:11883"
TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,200}")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise WorkerError(f"{message} (see {PROG} --help)")


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--driver", default="kafka", help="kafka | amqp | mqtt (default kafka)")
    p.add_argument(
        "--kafka-bootstrap",
        default=env("KAFKA_BOOTSTRAP", DEFAULT_KAFKA),
        help=f"host:port (env KAFKA_BOOTSTRAP, default {DEFAULT_KAFKA})",
    )
    p.add_argument(
        "--kafka-group",
        default=env("KAFKA_GROUP") or None,
        metavar="ID",
        help="consume in this consumer group with auto-commit (env KAFKA_GROUP; default: none, "
        "partitions are assigned directly)",
    )
    p.add_argument(
        "--amqp-url",
        default=env("AMQP_URL", DEFAULT_AMQP),
        help=f"AMQP URL (env AMQP_URL, default {DEFAULT_AMQP})".replace("%", "%%"),
    )
    p.add_argument(
        "--mqtt-url",
        default=env("MQTT_URL", DEFAULT_MQTT),
        help=f"MQTT URL (env MQTT_URL, default {DEFAULT_MQTT})",
    )
    p.add_argument("--count", type=int, default=100, help="messages to produce (default 100)")
    p.add_argument("--seed", type=int, default=1, help="seed of the envelopes (default 1)")
    p.add_argument(
        "--topic",
        default="rrlab.worker",
        help="base name; the Kafka topic, AMQP queue or MQTT topic is TOPIC.SEED",
    )
    p.add_argument("--out", type=Path, default=Path("out"), help="output directory (default out)")
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the broker at any step: connect, ack, next delivery (default 30)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="client library logs, tracebacks")
    return p


def _validate(args: argparse.Namespace) -> None:
    if args.driver not in DRIVERS:
        raise WorkerError(
            f"unknown driver {args.driver!r}: choose one of {', '.join(DRIVERS)} (--driver)"
        )
    if args.count < 0:
        raise WorkerError(f"--count must be 0 or more, got {args.count}")
    if not args.timeout > 0:
        raise WorkerError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if args.kafka_group is not None and not TOPIC_RE.fullmatch(args.kafka_group):
        raise WorkerError(
            f"--kafka-group {args.kafka_group!r}: use 1-200 of A-Z a-z 0-9 . _ - (or leave it out)"
        )
    if not TOPIC_RE.fullmatch(args.topic):
        raise WorkerError(
            f"--topic {args.topic!r} is not usable on every broker: use 1-200 of A-Z a-z 0-9 . _ -"
        )


def _check_address(args: argparse.Namespace) -> None:
    """Catch a malformed address before any connection attempt."""
    if args.driver == "kafka":
        for server in args.kafka_bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise WorkerError(
                    f"--kafka-bootstrap {args.kafka_bootstrap!r}: expected host:port[,host:port]"
                )
        return
    flag, schemes = {
        "amqp": ("--amqp-url", ("amqp", "amqps")),
        "mqtt": ("--mqtt-url", ("mqtt", "mqtts", "ws", "wss")),
    }[args.driver]
    url = _address(args)
    scheme = urlsplit(url).scheme
    if scheme not in schemes:
        raise WorkerError(
            f"{flag} {redact_url(url)!r}: the scheme must be one of {', '.join(schemes)}"
        )


def _address(args: argparse.Namespace) -> str:
    return {"kafka": args.kafka_bootstrap, "amqp": args.amqp_url, "mqtt": args.mqtt_url}[
        args.driver
    ]


def _refused_if_so(exc: BrokerUnreachable, driver: str, address: str) -> BrokerUnreachable:
    """A driver that only saw a timeout (kafka-python retries a refused bootstrap until then)
    is told apart from a silent broker by one more connect: refused means nothing listens, and
    then it is worded like every other driver's refusal. (A connect that succeeds is closed at
    once; the run has already failed.)"""
    if "no answer within" not in str(exc) or driver != "kafka":
        return exc
    host, _, port = address.split(",", 1)[0].strip().rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=1).close()
    except ConnectionRefusedError:
        return BrokerUnreachable(driver, redact_url(address), "connection refused")
    except OSError:
        pass
    return exc


def run(args: argparse.Namespace) -> None:
    """Produce, consume, aggregate, write the three output files."""
    _validate(args)
    _check_address(args)
    out = output.prepare(args.out)
    facts = aggregate.RunFacts(
        driver=args.driver,
        destination=f"{args.topic}.{args.seed}",
        seed=args.seed,
        count=args.count,
    )
    group = args.kafka_group if args.driver == "kafka" else None
    config = DriverConfig(_address(args), facts.destination, args.timeout, group)
    envelopes = make_envelopes(args.seed, args.count)
    driver = importlib.import_module(f"worker.drivers.{args.driver}")
    started = time.perf_counter()
    try:
        transfer = driver.run(config, envelopes)
    except BrokerUnreachable as exc:
        raise _refused_if_so(exc, args.driver, config.address) from exc
    except EnvelopeError as exc:
        raise WorkerError(f"{args.driver}: {exc}", FAILED) from exc
    elapsed = time.perf_counter() - started
    consumed = [transfer.consumed[seq] for seq in sorted(transfer.consumed)]
    agg = aggregate.build_aggregate(facts, transfer.produced, consumed)
    report = aggregate.build_report(
        facts,
        agg,
        address=redact_url(config.address),
        duplicates=transfer.duplicates,
        elapsed=elapsed,
        latencies=transfer.latencies,
    )
    text = metrics.render(args.driver, transfer.produced, len(consumed), transfer.latencies)
    try:
        output.write_atomic(out / "aggregate.json", agg)
        output.write_atomic(out / "report.json", report)
        output.write_atomic(out / "metrics.txt", text)
    except OSError as exc:
        raise WorkerError(f"cannot write results to {str(out)!r}: {exc.strerror or exc}") from exc
    # stdout, one line: stderr stays empty on success (errors only), tools read the files
    print(
        f"{PROG}: ok: {args.driver} at {redact_url(config.address)}: produced "
        f"{transfer.produced}, consumed {len(consumed)} in {elapsed:.1f} s -> {out}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit 0 ok, 1 run failed at the broker, 2 usage/config/unreachable broker."""
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = "-v" in argv or "--verbose" in argv
    if verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    else:  # client libraries print nothing (no handler: not even Python's last resort), but
        # their records still pass filters (the Kafka driver's fail-fast on a refused bootstrap)
        logging.getLogger().addHandler(logging.NullHandler())
    try:
        run(_parser().parse_args(argv))
    except WorkerError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if verbose:
            raise
        detail = f"unexpected {type(exc).__name__}: {exc} (rerun with -v for details)"
        print(f"{PROG}: error: {detail}", file=sys.stderr)
        return FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
