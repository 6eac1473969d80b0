"""Kafka driver (kafka-python): explicit 1-partition topic, batched produce, assigned consume.

Why explicit partition assignment instead of a consumer group: Tansu takes ~20 s to form a
kafka-python group, while `assign` + `seek` is instant and needs no coordinator. Why the topic is
created explicitly: topics Tansu auto-creates may have several partitions. Why the consumer reads
exactly the offsets the producer got back: a rerun on the same broker appends to the same topic,
and reading only this run's range keeps the aggregate identical.
"""

from __future__ import annotations

import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from worker.drivers import DriverConfig, Transfer
from worker.envelope import Envelope, EnvelopeError, from_parts
from worker.errors import BrokerUnreachable, RunFailed

POLL_MS = 200
BATCH_BYTES = 256 * 1024


def _client_settings(config: DriverConfig) -> dict[str, object]:
    """Bounds every wait on the broker by --timeout, so a dead address fails fast."""
    ms = max(1, int(config.timeout * 1000))
    return {
        "bootstrap_servers": config.address,
        "bootstrap_timeout_ms": ms,
        "reconnect_backoff_max_ms": 1000,
    }


def _ensure_topic(config: DriverConfig) -> None:
    """Create the destination topic with one partition unless it already exists."""
    ms = max(1, int(config.timeout * 1000))
    try:
        admin = KafkaAdminClient(request_timeout_ms=ms, **_client_settings(config))
    except KafkaTimeoutError as exc:
        raise BrokerUnreachable(
            "kafka", config.address, f"no answer within {config.timeout:g} s"
        ) from exc
    try:
        admin.create_topics(
            {config.destination: {"num_partitions": 1, "replication_factor": 1}},
            timeout_ms=ms,
        )
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def _produce(config: DriverConfig, envelopes: list[Envelope], transfer: Transfer) -> dict:
    """Send everything, flush once, and return {partition: (first, last)} acknowledged offsets.

    Batches close only when full or at the flush (linger covers the whole send loop), and every
    record of the run carries the same CreateTime, so record sizes and thus batch boundaries
    depend on the envelopes alone, not on scheduling: the same seed sends the same batches.
    """
    ms = max(1, int(config.timeout * 1000))
    producer = KafkaProducer(
        acks="all",
        linger_ms=ms,
        batch_size=BATCH_BYTES,
        max_block_ms=ms,
        request_timeout_ms=ms,
        delivery_timeout_ms=2 * ms + 1000,
        **_client_settings(config),
    )
    created_ms = int(time.time() * 1000)
    try:
        futures = []
        for envelope in envelopes:
            transfer.mark_sent(envelope.seq)
            futures.append(
                producer.send(
                    config.destination,
                    key=envelope.key.encode("utf-8"),
                    value=envelope.payload,
                    headers=[(name, value.encode("utf-8")) for name, value in envelope.headers],
                    timestamp_ms=created_ms,
                )
            )
        producer.flush(timeout=config.timeout)
        ranges: dict[int, tuple[int, int]] = {}
        for future in futures:
            meta = future.get(timeout=config.timeout)
            first, last = ranges.get(meta.partition, (meta.offset, meta.offset))
            ranges[meta.partition] = (min(first, meta.offset), max(last, meta.offset))
        transfer.produced = len(futures)
        return ranges
    finally:
        producer.close(timeout=config.timeout)


def _consume(config: DriverConfig, ranges: dict, transfer: Transfer) -> None:
    """Read back exactly the acknowledged offset ranges; fail if the broker stalls."""
    consumer = KafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **_client_settings(config),
    )
    try:
        parts = {TopicPartition(config.destination, p): r for p, r in sorted(ranges.items())}
        consumer.assign(list(parts))
        for tp, (first, _last) in parts.items():
            consumer.seek(tp, first)
        pending = dict(parts)
        last_progress = time.monotonic()
        while pending:
            batches = consumer.poll(timeout_ms=POLL_MS)
            for tp, records in batches.items():
                first, last = parts[tp]
                for record in records:
                    if first <= record.offset <= last:
                        transfer.take(_decode(record))
                        last_progress = time.monotonic()
                if records and records[-1].offset >= last:
                    pending.pop(tp, None)
            if pending and time.monotonic() - last_progress > config.timeout:
                raise RunFailed(
                    f"kafka topic {config.destination!r}: consumed {len(transfer.consumed)} of "
                    f"{transfer.produced} messages, then nothing for {config.timeout:g} s"
                )
    finally:
        consumer.close(autocommit=False)


def _decode(record) -> Envelope:
    """Envelope from a consumer record (native Kafka headers)."""
    try:
        headers = [(name, value.decode("utf-8")) for name, value in record.headers]
        return from_parts(record.key.decode("utf-8"), headers, record.value)
    except (AttributeError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"kafka record at offset {record.offset} is malformed: {exc}") from exc


def run(config: DriverConfig, envelopes: list[Envelope]) -> Transfer:
    """Create the topic, produce all envelopes, consume them back."""
    transfer = Transfer()
    try:
        _ensure_topic(config)
        ranges = _produce(config, envelopes, transfer)
        if ranges:
            _consume(config, ranges, transfer)
    except KafkaError as exc:
        raise RunFailed(f"kafka broker at {config.address}: {type(exc).__name__}: {exc}") from exc
    return transfer
