"""A kafka-python request/reply pair whose requester names its reply topic by its own client id,
for the client.id binding tests, written the ordinary way: the requester's `client_id` is
`svc-` + 8 random hex digits (new each run), and every client it makes (admin, producer,
consumer) uses it; it creates `PREFIXrequests` and `PREFIXreply.<client id>`, produces a request
keyed by its client id with a `reply_to` header naming its reply topic; the responder (a client
id of its own, fixed) reads the request and produces the answer to the topic `reply_to` names;
the requester reads its reply topic (with --group: subscribed in a consumer group named by
its client id, `PREFIXrpc.<client id>`, whose JoinGroup and SyncGroup name the reply topic in
their bytes). Writes `x squared = y` to OUT.

Usage: python tests/replay/kafka_client_id_rpc.py OUT [--x N] [--bootstrap H:P] [--prefix P]
       [--group]
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

RESPONDER_ID = "rrlab-responder"


def _read_one(
    bootstrap: str, client_id: str, topic: str, group: str | None = None
) -> tuple[dict, bytes]:
    """(headers, value) of the first record of `topic` (in consumer group `group`)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, client_id=client_id, enable_auto_commit=False,
        group_id=group, auto_offset_reset="earliest",
    )  # fmt: skip
    if group is not None:
        consumer.subscribe([topic])
    else:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    return dict(record.headers), record.value
        raise SystemExit(f"no record on {topic}")
    finally:
        consumer.close()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--x", type=int, default=7)
    p.add_argument("--bootstrap", default="127.0.0.1:19092")
    p.add_argument("--prefix", default="rrlab.", help="topic name prefix (fresh topics)")
    p.add_argument("--group", action="store_true", help="read the reply in a consumer group")
    args = p.parse_args(argv)
    client_id = f"svc-{secrets.token_hex(4)}"
    requests, reply = f"{args.prefix}requests", f"{args.prefix}reply.{client_id}"
    boot = args.bootstrap

    admin = KafkaAdminClient(bootstrap_servers=boot, client_id=client_id, request_timeout_ms=10_000)
    try:
        topics = [NewTopic(t, num_partitions=1, replication_factor=1) for t in (requests, reply)]
        admin.create_topics(topics)
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()

    requester = KafkaProducer(bootstrap_servers=boot, client_id=client_id, acks="all")
    request = json.dumps({"x": args.x}).encode()
    headers = [("reply_to", reply.encode())]
    requester.send(requests, key=client_id.encode(), value=request, headers=headers).get(30)
    requester.close(10)

    asked_headers, asked = _read_one(boot, RESPONDER_ID, requests)  # the responder
    responder = KafkaProducer(bootstrap_servers=boot, client_id=RESPONDER_ID, acks="all")
    answer = json.dumps({"y": json.loads(asked)["x"] ** 2}).encode()
    responder.send(asked_headers["reply_to"].decode(), value=answer).get(timeout=30)
    responder.close(10)

    group = f"{args.prefix}rpc.{client_id}" if args.group else None
    _headers, value = _read_one(boot, client_id, reply, group)  # the requester
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"{args.x} squared = {json.loads(value)['y']}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
