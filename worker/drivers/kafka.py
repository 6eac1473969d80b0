"""Kafka driver (kafka-python): explicit 1-partition topic, ordinary produce, then consume back.

Written the ordinary way: the producer keeps kafka-python's default linger and batch size (so
batch boundaries follow scheduling and differ between runs) and waits for `acks=all`. The topic
is created explicitly because topics Tansu auto-creates may have several partitions.

Consuming: with `--kafka-group` the consumer subscribes in that group with auto-commit (the
usual service shape; Apache Kafka joins a group at once, Tansu takes ~20 s with kafka-python);
without a group it assigns the partitions and seeks, which needs no coordinator. Either way only
this run's records count, the offsets the producer got back: a rerun on the same broker appends
to the same topic, and older records must not change the aggregate.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from worker.drivers import DriverConfig, Transfer
from worker.envelope import Envelope, EnvelopeError, from_parts
from worker.errors import BrokerUnreachable, RunFailed

POLL_MS = 200
Ranges = dict[int, tuple[int, int]]


def _client_settings(config: DriverConfig) -> dict[str, object]:
    """Bounds every wait on the broker by --timeout, so a dead address fails fast."""
    ms = max(1, int(config.timeout * 1000))
    return {
        "bootstrap_servers": config.address,
        "bootstrap_timeout_ms": ms,
        "reconnect_backoff_max_ms": 1000,
    }


class _Refused(Exception):
    pass


class _RefusalFilter(logging.Filter):
    """kafka-python retries a refused bootstrap until its timeout; AMQP and MQTT clients fail at
    once. Its warning about the refusal is the first sign, so raise from it: the exception leaves
    through kafka-python's own log call and the client's constructor (measured: 0.01 s instead of
    the whole --timeout). If the wording ever changes, the timeout still applies."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text.startswith("Bootstrap connection") and "ECONNREFUSED" in text:
            raise _Refused(text)
        return True


@contextlib.contextmanager
def _fail_fast_on_refusal(config: DriverConfig) -> Iterator[None]:
    """Only for one bootstrap address (with several, another may answer)."""
    if "," in config.address:
        yield
        return
    logger = logging.getLogger("kafka.net.manager")
    refusal = _RefusalFilter()
    logger.addFilter(refusal)
    try:
        yield
    except _Refused as exc:
        raise BrokerUnreachable("kafka", config.address, "connection refused") from exc
    finally:
        logger.removeFilter(refusal)


def _ensure_topic(config: DriverConfig) -> None:
    """Create the destination topic with one partition unless it already exists."""
    ms = max(1, int(config.timeout * 1000))
    try:
        with _fail_fast_on_refusal(config):
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


def _produce(config: DriverConfig, envelopes: list[Envelope], transfer: Transfer) -> Ranges:
    """Send everything and return {partition: (first, last)} acknowledged offsets; fail once
    nothing is acknowledged for --timeout (the broker died mid-run)."""
    ms = max(1, int(config.timeout * 1000))
    producer = KafkaProducer(
        acks="all",
        max_block_ms=ms,
        request_timeout_ms=ms,
        delivery_timeout_ms=2 * ms + 1000,
        **_client_settings(config),
    )
    acked = [time.monotonic()]  # when the broker last acknowledged anything (sender thread)

    def on_ack(_meta: object) -> None:
        acked[0] = time.monotonic()

    def stalled() -> RunFailed:
        unacked = sum(1 for f in futures if not f.succeeded())
        return RunFailed(
            f"kafka broker at {config.address}: {unacked} of {len(futures)} messages not "
            f"acknowledged, nothing for {config.timeout:g} s (broker gone?)"
        )

    done = False
    futures: list = []
    try:
        for envelope in envelopes:
            transfer.mark_sent(envelope.seq)
            future = producer.send(
                config.destination,
                key=envelope.key.encode("utf-8"),
                value=envelope.payload,
                headers=[(name, value.encode("utf-8")) for name, value in envelope.headers],
            )
            future.add_callback(on_ack)
            futures.append(future)
            if time.monotonic() - acked[0] > config.timeout:
                raise stalled()  # the broker went away while we were still sending
        ranges: Ranges = {}
        for future in futures:
            while True:
                left = acked[0] + config.timeout - time.monotonic()
                try:
                    meta = future.get(timeout=max(0.0, left))
                    break
                except KafkaTimeoutError:
                    if future.is_done or acked[0] + config.timeout <= time.monotonic():
                        raise stalled() from None
            first, last = ranges.get(meta.partition, (meta.offset, meta.offset))
            ranges[meta.partition] = (min(first, meta.offset), max(last, meta.offset))
        transfer.produced = len(futures)
        done = True
        return ranges
    finally:
        if done:
            producer.close(timeout=config.timeout)
        else:
            _abandon(producer)


def _abandon(producer: KafkaProducer) -> None:
    """Close a producer whose broker stopped answering, without waiting for it.

    kafka-python's close() flushes first and raises when that times out, leaving the producer
    open: its __del__ then closes again at exit and prints a traceback. Its sender is told to
    drop what is pending (kafka-python has no public way to do that), then close() has nothing
    left to wait for.
    """
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()
        sender.join(1)
    try:
        producer.close(timeout=0)
    except KafkaError:
        pass  # nothing more to do: the run has already failed with its own message


def _consumer(config: DriverConfig, ranges: Ranges) -> KafkaConsumer:
    """A consumer positioned to read `ranges`: subscribed in the group, or assigned and sought."""
    if config.group:
        consumer = KafkaConsumer(
            group_id=config.group,
            enable_auto_commit=True,
            auto_offset_reset="earliest",
            **_client_settings(config),
        )
        consumer.subscribe([config.destination])
        return consumer
    consumer = KafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **_client_settings(config),
    )
    parts = [TopicPartition(config.destination, p) for p in sorted(ranges)]
    consumer.assign(parts)
    for tp in parts:
        consumer.seek(tp, ranges[tp.partition][0])
    return consumer


def _consume(config: DriverConfig, ranges: Ranges, transfer: Transfer) -> None:
    """Read until every acknowledged offset range was seen; fail if the broker stalls."""
    consumer = _consumer(config, ranges)
    try:
        pending = dict(ranges)
        last_progress = time.monotonic()
        while pending:
            batches = consumer.poll(timeout_ms=POLL_MS)
            for tp, records in batches.items():
                if tp.topic != config.destination or tp.partition not in ranges:
                    continue
                first, last = ranges[tp.partition]
                for record in records:
                    if first <= record.offset <= last:
                        transfer.take(_decode(record))
                        last_progress = time.monotonic()
                if records and records[-1].offset >= last:
                    pending.pop(tp.partition, None)
            if pending and time.monotonic() - last_progress > config.timeout:
                raise RunFailed(
                    f"kafka topic {config.destination!r}: consumed {len(transfer.consumed)} of "
                    f"{transfer.produced} messages, then nothing for {config.timeout:g} s"
                )
    finally:
        # with a group: commits the final offsets (auto-commit), bounded like every other wait
        consumer.close(timeout_ms=max(1, int(config.timeout * 1000)))


def _decode(record) -> Envelope:
    """Envelope from a consumer record (native Kafka headers)."""
    try:
        headers = [(name, value.decode("utf-8")) for name, value in record.headers]
        return from_parts(record.key.decode("utf-8"), headers, record.value)
    except (AttributeError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"kafka record at offset {record.offset} is malformed: {exc}") from exc


def run(config: DriverConfig, envelopes: list[Envelope]) -> Transfer:
    """Create the topic, produce all envelopes, consume them back (in config.group if given)."""
    transfer = Transfer()
    try:
        _ensure_topic(config)
        ranges = _produce(config, envelopes, transfer)
        if ranges:
            _consume(config, ranges, transfer)
    except KafkaError as exc:
        raise RunFailed(f"kafka broker at {config.address}: {_describe(exc)}") from exc
    return transfer


def _describe(exc: KafkaError) -> str:
    """kafka-python's errors already start with their class name: say it once."""
    text = str(exc)
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}"
