"""`rrlab brokers up|down|status [kafka] [amqp] [mqtt]`: local brokers for recording and tests."""

from __future__ import annotations

import argparse

from rrlab.brokers import control, kafka


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "brokers",
        help="start/stop/inspect real local brokers (Kafka, RabbitMQ, MQTT) on 127.0.0.1",
        description="Run real brokers on 127.0.0.1 (Kafka 9092, AMQP 5672, MQTT 1883); "
        "state and logs under .rrlab/brokers/ (or $RRLAB_STATE_DIR/brokers/).",
    )
    parser.add_argument(
        "action",
        choices=("up", "down", "status"),
        help="up: start and wait until each answers; down: stop (its log kept until the next "
        "up); status: one row per broker, naming a foreign process on its port",
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="kafka, amqp, mqtt (default: all three)"
    )
    parser.add_argument(
        "--kafka-impl",
        default=kafka.AUTO,
        choices=(kafka.AUTO, *kafka.IMPLS),
        help="auto: apache where it can run (java on PATH, and mvn on PATH or the broker jars "
        "cached), else tansu; `up` prints which it chose and why, and keeps a Kafka rrlab "
        "already runs whichever it is. apache: Apache Kafka (KRaft, Java; consumer groups join "
        "at once; first use fetches its jars with Maven). tansu: a Kafka-compatible binary, "
        "ready at once, but it holds every consumer group JoinGroup for half the client's "
        "session timeout (~23 s with kafka-python's 45 s; no Tansu setting changes it)",
    )
    parser.add_argument(
        "--mqtt-impl",
        default="amqtt",
        choices=("amqtt", "mosquitto"),
        help="amqtt: the Python broker; mosquitto: the Debian package",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=control.DEFAULT_TIMEOUT_S,
        metavar="S",
        help="seconds to wait for each broker to answer (default %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rrlab.rr.usage import UsageError

    try:
        if args.action == "up":
            control.up(
                args.names,
                kafka_impl=args.kafka_impl,
                mqtt_impl=args.mqtt_impl,
                timeout=args.timeout,
            )
        elif args.action == "down":
            control.down(args.names)
        else:
            print_status(control.status(args.names))
    except control.BrokerError as exc:
        raise UsageError(str(exc)) from None
    return 0


def print_status(rows: list[dict]) -> None:
    header = ("BROKER", "IMPL", "PORT", "PID", "STATE", "LOG")
    table = [header] + [
        (r["broker"], r["impl"], str(r["port"]), str(r["pid"] or "-"), r["state"], r["log"])
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        )
