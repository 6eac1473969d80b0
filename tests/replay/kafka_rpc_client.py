"""A kafka-python request/reply pair for the binding tests, written the ordinary way: the
requester produces a request to `PREFIXrequests` with a fresh uuid4 in its `correlation_id`
header (and in its key); the responder reads it and produces the answer to `PREFIXreplies` with
the request's correlation id; the requester reads the replies and accepts only the one carrying
its own correlation id. Writes `x squared = y` to OUT.

Usage: python tests/replay/kafka_rpc_client.py OUT [--x N] [--bootstrap H:P] [--prefix P]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError


def _read_one(bootstrap: str, topic: str, want: bytes | None) -> tuple[bytes, bytes]:
    """(correlation id, value) of the first record of `topic` (with correlation id `want`)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    corr = dict(record.headers).get("correlation_id", b"")
                    if want is None or corr == want:
                        return corr, record.value
        raise SystemExit(f"no record on {topic}")
    finally:
        consumer.close()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--x", type=int, default=7)
    p.add_argument("--bootstrap", default="127.0.0.1:19092")
    p.add_argument("--prefix", default="rrlab.", help="topic name prefix (fresh topics)")
    args = p.parse_args(argv)
    requests, replies = f"{args.prefix}requests", f"{args.prefix}replies"

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=10_000)
    try:
        topics = [NewTopic(t, num_partitions=1, replication_factor=1) for t in (requests, replies)]
        admin.create_topics(topics)
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()

    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
    correlation_id = str(uuid.uuid4()).encode()
    request = json.dumps({"x": args.x}).encode()
    headers = [("correlation_id", correlation_id)]
    producer.send(requests, key=correlation_id, value=request, headers=headers).get(timeout=30)

    asked_corr, asked = _read_one(args.bootstrap, requests, None)  # the responder
    answer = json.dumps({"y": json.loads(asked)["x"] ** 2}).encode()
    producer.send(replies, value=answer, headers=[("correlation_id", asked_corr)]).get(timeout=30)
    producer.close(10)

    _corr, value = _read_one(args.bootstrap, replies, correlation_id)  # the requester
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"{args.x} squared = {json.loads(value)['y']}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
