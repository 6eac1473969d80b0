"""How long a kafka-python consumer group takes to join on each local Kafka (issue L.6).

Recording a consumer group on Tansu (the default broker until `--kafka-impl auto`) took ~20 s
per join against ~5 s on Apache Kafka. Tansu answers a JoinGroup only after half the group's
session timeout (a constant in its coordinator: brokers/kafka.py says where), so the join time
follows the client's session.timeout.ms; Apache Kafka here runs with
group.initial.rebalance.delay.ms=0. For each
broker (on free ports, state in a temp dir) and session timeout: one topic of one partition, 5
records, then a fresh group's consumer from subscribe to the 5th record; the table prints the
seconds and the ratio to Apache Kafka with the client's default.

    .venv/bin/python bench/bench_group_join.py [--impl tansu apache] [--session-ms 45000 10000]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kafka import KafkaConsumer, KafkaProducer  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402

from rrlab.brokers import control  # noqa: E402

DEFAULT_SESSION_MS = 45_000  # kafka-python's session_timeout_ms


def free_port() -> int:
    """A port whose next one is free too (Apache Kafka's controller listener)."""
    while True:
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port


def join_seconds(bootstrap: str, name: str, session_ms: int) -> float:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(name, 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(5):
        producer.send(name, b"record %d" % i)
    producer.flush()
    producer.close()
    began = time.monotonic()
    consumer = KafkaConsumer(
        name,
        bootstrap_servers=bootstrap,
        group_id=f"group-{name}",
        auto_offset_reset="earliest",
        session_timeout_ms=session_ms,
        consumer_timeout_ms=120_000,
    )
    seen = 0
    for _record in consumer:
        seen += 1
        if seen == 5:
            break
    took = time.monotonic() - began
    consumer.close()
    if seen != 5:
        raise RuntimeError(f"{name}: only {seen} of 5 records within 120 s")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", nargs="+", default=["tansu", "apache"], help="brokers to run")
    parser.add_argument(
        "--session-ms",
        nargs="+",
        type=int,
        default=[DEFAULT_SESSION_MS, 10_000],
        help="consumer session.timeout.ms values to try",
    )
    args = parser.parse_args()
    rows: list[tuple[str, int, float]] = []
    for impl in args.impl:
        with tempfile.TemporaryDirectory(prefix=f"rrlab-bench-{impl}-") as home:
            port = free_port()
            record = control.start_kafka(Path(home), port, impl=impl, timeout=180)
            try:
                for n, session_ms in enumerate(args.session_ms):
                    took = join_seconds(f"127.0.0.1:{port}", f"t{n}", session_ms)
                    rows.append((impl, session_ms, took))
            finally:
                control.stop(record)
    base = next((t for i, s, t in rows if i == "apache" and s == DEFAULT_SESSION_MS), None)
    print(f"{'broker':8} {'session.timeout.ms':>18} {'join + 5 records (s)':>21} {'x apache':>9}")
    for impl, session_ms, took in rows:
        ratio = f"{took / base:9.1f}" if base else f"{'-':>9}"
        print(f"{impl:8} {session_ms:>18} {took:>21.1f} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
