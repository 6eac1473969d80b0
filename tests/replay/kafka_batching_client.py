"""A kafka-python client whose batching and pace are set from the command line.

Used to prove that replay does not depend on batch boundaries or timing: recorded once with
kafka-python's default batching, replayed with many small batches, or with a slow consumer
whose extra polls, heartbeats and empty fetches the recording never saw.

    python kafka_batching_client.py --bootstrap H:P --topic T --count N --out FILE
        [--batch-size B] [--linger-ms L] [--slow-ms S] [--group G] [--compression C]
        [--api-version 0.11] [--change-record N] [--abrupt]

--api-version pins kafka-python to an older broker's protocol versions (0.11: Produce v3,
Fetch v5, Metadata v4, JoinGroup v2, ...); --change-record N produces record N with another
value (a replay of a recording without it must miss naming the field).

FILE gets one line per consumed record (offset, key, value, headers) and nothing from a clock.
--abrupt exits without closing the consumer (no final commit, no LeaveGroup), as a process
killed after its work does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", default="127.0.0.1:19092")
    p.add_argument("--topic", default="rrlab.batching")
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--out", required=True)
    p.add_argument("--batch-size", type=int, default=16384)
    p.add_argument("--linger-ms", type=int, default=0)
    p.add_argument("--slow-ms", type=int, default=0)
    p.add_argument("--group", default=None)
    p.add_argument("--api-version", default=None, help="e.g. 0.11 (default: negotiated)")
    p.add_argument("--change-record", type=int, default=None, metavar="N")
    p.add_argument("--compression", default=None, help="gzip, snappy, lz4 or zstd")
    p.add_argument("--abrupt", action="store_true", help="exit without closing the consumer")
    a = p.parse_args()
    pinned = {}
    if a.api_version:
        pinned["api_version"] = tuple(int(x) for x in a.api_version.split("."))

    admin = KafkaAdminClient(bootstrap_servers=a.bootstrap, request_timeout_ms=10_000, **pinned)
    try:
        admin.create_topics([NewTopic(a.topic, num_partitions=1, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()

    producer = KafkaProducer(
        bootstrap_servers=a.bootstrap,
        batch_size=a.batch_size,
        linger_ms=a.linger_ms,
        acks="all",
        compression_type=a.compression,
        **pinned,
    )
    futures = [
        producer.send(
            a.topic,
            key=f"k{i % 7}".encode(),
            value=json.dumps(
                {"n": i + (1000 if i == a.change_record else 0), "text": "x" * (i % 50)},
                sort_keys=True,
            ).encode(),
            headers=[("seq", str(i).encode())],
        )
        for i in range(a.count)
    ]
    producer.flush(30)
    offsets = sorted(f.get(timeout=30).offset for f in futures)
    producer.close(10)
    first, last = offsets[0], offsets[-1]

    consumer = KafkaConsumer(
        bootstrap_servers=a.bootstrap,
        group_id=a.group,
        enable_auto_commit=a.group is not None,
        auto_offset_reset="earliest",
        max_poll_records=10,
        **pinned,
    )
    tp = TopicPartition(a.topic, 0)
    if a.group is None:
        consumer.assign([tp])
        consumer.seek(tp, first)
    else:
        consumer.subscribe([a.topic])
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while len(lines) < a.count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            for r in records:
                if first <= r.offset <= last:
                    headers = [[k, v.decode()] for k, v in r.headers]
                    row = [r.offset - first, r.key.decode(), r.value.decode(), headers]
                    lines.append(json.dumps(row, sort_keys=True))
                if a.slow_ms:
                    time.sleep(a.slow_ms / 1000)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    if a.abrupt:
        os._exit(0 if len(lines) == a.count else 1)  # no commit, no LeaveGroup
    consumer.close()
    return 0 if len(lines) == a.count else 1


if __name__ == "__main__":
    sys.exit(main())
