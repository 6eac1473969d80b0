"""A kafka-python producer and a consumer loop with no timeout of its own, as many services are.

Produces COUNT records like kafka_batching_client.py (the cassette kafka-batching-tansu holds
them), optionally with record CHANGE's value altered, ignores delivery errors, then polls until
it has read back every value it produced, however long that takes. Against a fake broker that
missed the changed record the loop never ends by itself: `rrlab replay --miss-grace` must end it.

    python kafka_endless_consumer.py [--count N] [--change I] --out FILE
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", default="127.0.0.1:19092")
    p.add_argument("--topic", default="rrlab.batching")
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--change", type=int, default=None, metavar="I", help="alter record I")
    p.add_argument("--out", required=True)
    a = p.parse_args()

    admin = KafkaAdminClient(bootstrap_servers=a.bootstrap)
    try:
        admin.create_topics([NewTopic(a.topic, num_partitions=1, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()

    producer = KafkaProducer(bootstrap_servers=a.bootstrap, acks="all")
    unread: set[bytes] = set()
    for i in range(a.count):
        text = "x" * (i % 50) + ("changed" if i == a.change else "")
        value = json.dumps({"n": i, "text": text}, sort_keys=True).encode()
        unread.add(value)
        producer.send(
            a.topic, key=f"k{i % 7}".encode(), value=value, headers=[("seq", str(i).encode())]
        )
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        bootstrap_servers=a.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=10,
    )
    tp = TopicPartition(a.topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, 0)
    lines: list[str] = []
    while unread:  # no deadline: this loop ends when every value it wrote was read back
        for records in consumer.poll(timeout_ms=200).values():
            for r in records:
                unread.discard(r.value)
                headers = [[k, v.decode()] for k, v in r.headers]
                row = [r.offset, r.key.decode(), r.value.decode(), headers]
                lines.append(json.dumps(row, sort_keys=True))
    consumer.close()
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
