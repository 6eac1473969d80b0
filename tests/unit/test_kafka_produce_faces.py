"""A live Produce is matched by each record's face (key, value, headers as bytes) before any
record is read field by field: kafka-python keeps one Produce in flight per partition, so the
fake broker's time per request is on the client's critical path. Reading every record cost
~2.5 ms per 16 KB request (~25 us a record) where Tansu answered in ~1 ms, and made the Kafka
worker's replay ~10% slower than its recording (issue M). Playbooks on the committed
worker-kafka-tansu cassette: its 200 recorded records re-batched and re-timed as another run of
the same client sends them."""

from __future__ import annotations

import dataclasses
import datetime
import io

import pytest
from kio.records.schema import NewRecordBatch, Record, RecordHeader
from kio.records.writers import write_batch
from kio.static.primitive import Records, TZAwareMicros, i8, i16, i32, i64
from replay_playbook import connect, frames, sent, serve

from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols.kafka import records as kafka_records
from rrlab.rr.protocols.kafka.apis import PRODUCE
from rrlab.rr.protocols.kafka.codec import decode_request, decode_response_body, encode_request
from rrlab.rr.protocols.kafka.records import face_digests, read_records, scan_record_set

C2S = Direction.C2S
PRODUCER_CONN = 4  # worker-kafka-tansu: ApiVersions, InitProducerId, two Produce requests


def batch(records: list, millis: int) -> bytes:
    """One uncompressed v2 batch of `records` (key, value, headers), timestamps from `millis`
    one millisecond apart: what another run of the client writes for the same records."""
    start = datetime.datetime(2026, 12, 3, tzinfo=datetime.UTC)
    out = io.BytesIO()
    kio_records = tuple(
        Record(
            attributes=i8(0),
            timestamp=TZAwareMicros.parse(start + datetime.timedelta(milliseconds=millis + n)),
            offset=i64(n),
            key=rec.key,
            value=rec.value,
            headers=tuple(RecordHeader(key=k.encode(), value=v) for k, v in rec.headers),
        )
        for n, rec in enumerate(records)
    )
    write_batch(
        out,
        NewRecordBatch(
            producer_id=i64(7),
            producer_epoch=i16(0),
            base_sequence=i32(0),
            attributes=i16(0),
            records=kio_records,
        ),
    )
    return out.getvalue()


def recorded_produce(ctx):
    """The recorded Produce requests' header and body, and their records in order."""
    requests = [
        decode_request(f.raw)
        for f in frames(ctx, PRODUCER_CONN, C2S)
        if f.summary.get("api") == "Produce"
    ]
    records = [
        rec
        for request in requests
        for topic in request.body.topic_data
        for part in topic.partition_data
        for b in scan_record_set(part.records).batches
        for rec in read_records(b)
    ]
    return requests[0], records


def rebatched(request, records: list, size: int, first_corr: int) -> list[bytes]:
    """`records` sent again in Produce requests of `size` records each (another batching)."""
    body = request.body
    topic = body.topic_data[0]
    out = []
    for n, at in enumerate(range(0, len(records), size)):
        data = batch(records[at : at + size], millis=1000 * n)
        part = dataclasses.replace(topic.partition_data[0], records=Records(data))
        new = dataclasses.replace(
            body, topic_data=(dataclasses.replace(topic, partition_data=(part,)),)
        )
        out.append(encode_request(PRODUCE, 9, first_corr + n, request.header.client_id, new))
    return out


@pytest.fixture
def field_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many records the per-field reader (`records._raw_record`) read, once armed."""
    calls = [0]
    read = kafka_records._raw_record

    def counting(buf, pos):
        calls[0] += 1
        return read(buf, pos)

    monkeypatch.setattr(kafka_records, "_raw_record", counting)
    return calls


def test_a_produce_rebatched_and_retimed_is_matched_without_reading_a_record(field_reads):
    ctx = serve("worker-kafka-tansu")  # (its records read at open: counted from here on)
    request, records = recorded_produce(ctx)
    assert len(records) == 200
    field_reads[0] = 0
    session, link = connect(ctx, Proto.KAFKA, 19093)
    session.data_received(frames(ctx, PRODUCER_CONN, C2S)[0].raw)  # ApiVersions
    link.take()
    bases = []
    for corr, raw in enumerate(rebatched(request, records, 50, first_corr=20), start=20):
        session.data_received(raw)
        data = sent(link.take())
        assert int.from_bytes(data[4:8], "big") == corr
        (part,) = decode_response_body(PRODUCE, 9, data).responses[0].partition_responses
        assert int(part.error_code) == 0
        bases.append(int(part.base_offset))
    assert bases == [0, 50, 100, 150]  # the recorded offsets of each request's first record
    assert ctx.report.matched_by["Produce"] == 4 and ctx.report.misses == []
    assert field_reads[0] == 0  # main read all 200 field by field


def test_a_record_that_differs_is_still_read_and_reported_with_its_difference(field_reads):
    ctx = serve("worker-kafka-tansu")
    request, records = recorded_produce(ctx)
    records[60] = dataclasses.replace(records[60], value=b"not what was recorded")
    session, link = connect(ctx, Proto.KAFKA, 19093)
    session.data_received(frames(ctx, PRODUCER_CONN, C2S)[0].raw)
    link.take()
    first, second = rebatched(request, records, 50, first_corr=20)[:2]
    session.data_received(first)
    link.take()
    field_reads[0] = 0
    session.data_received(second)
    answer = decode_response_body(PRODUCE, 9, sent(link.take()))
    (part,) = answer.responses[0].partition_responses
    assert int(part.error_code) != 0
    (miss,) = ctx.report.misses
    assert "record 60 differs from the recorded one" in miss.reason
    assert field_reads[0] > 0  # the long way, which names the difference


def test_faces_equal_across_timestamps_and_differ_with_a_value():
    rec = kafka_records.Record(0, 0, b"k", b"v", (("h", b"1"),))
    other = dataclasses.replace(rec, value=b"w")
    (one,) = scan_record_set(batch([rec, rec], millis=5)).batches
    (two,) = scan_record_set(batch([rec, other], millis=90_000)).batches
    a, b = face_digests(one), face_digests(two)
    assert a is not None and b is not None
    assert a[0] == a[1] == b[0] and b[1] != a[1]


def test_faces_of_records_cut_short_are_none():
    rec = kafka_records.Record(0, 0, b"k", b"v", ())
    (whole,) = scan_record_set(batch([rec, rec], millis=0)).batches
    assert whole.body is not None
    cut = dataclasses.replace(whole, body=whole.body[:-3])
    assert face_digests(cut) is None
