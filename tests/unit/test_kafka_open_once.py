"""At open, the Kafka world reads each recorded Produce batch in one walk: its records (for the
partition log's digests) and their face digests (what a live Produce is matched by first,
`records.face_digests`) come from the same pass over the record bytes, and its decoder lists no
records in summaries (nothing reads them): a compressed batch is decompressed once, where main
did it three times (issue M: serve's open cost on big cassettes)."""

from __future__ import annotations

import datetime
import gzip
from pathlib import Path

import pytest
from kafka_samples import record_batch
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.static.primitive import Records, i16, i32

from rrlab.rr.cassette import CassetteWriter
from rrlab.rr.codecs import Direction
from rrlab.rr.policy import Budgets
from rrlab.rr.protocols import client_kind
from rrlab.rr.protocols.kafka import records as kafka_records
from rrlab.rr.protocols.kafka.codec import encode_request
from rrlab.rr.protocols.kafka.records import face_digests, read_records, scan_record_set
from rrlab.rr.protocols.kafka.world import KafkaWorld
from rrlab.rr.record import recorder_for
from rrlab.rr.replay.recording import Recording

GZIP = 1  # batch attributes: the codec


def plain_batch(values: list[bytes]) -> bytes:
    """A v2 batch of uncompressed records with these values (a key and a header each)."""
    return record_batch(0, values)


def gzip_batch(values: list[bytes]) -> bytes:
    """The same batch with its records gzip-compressed (the CRC is not checked)."""
    raw = bytearray(plain_batch(values))
    head, body = raw[:61], bytes(raw[61:])
    head[21:23] = GZIP.to_bytes(2, "big")
    out = head + gzip.compress(body)
    out[8:12] = (len(out) - 12).to_bytes(4, "big")
    return bytes(out)


def produce(batch: bytes) -> ProduceRequest:
    part = PartitionProduceData(index=i32(0), records=Records(batch))
    return ProduceRequest(
        transactional_id=None,
        acks=i16(0),  # no response: the records go into the log as sent
        timeout=datetime.timedelta(seconds=5),
        topic_data=(TopicProduceData(name="orders", partition_data=(part,)),),
    )


@pytest.fixture
def cassette(tmp_path: Path) -> tuple[Path, list[bytes]]:
    """A cassette of two Produce requests (acks=0): one gzip batch, one plain batch."""
    batches = [gzip_batch([b"a" * 300, b"b", b"c"]), plain_batch([b"d", b"e"])]
    writer = CassetteWriter.create(tmp_path / "c", budgets=Budgets())
    conn = writer.open_connection("kafka", "127.0.0.1:1", "127.0.0.1:2")
    rec = recorder_for(writer, conn, "kafka")
    for corr, data in enumerate(batches, start=7):
        rec.feed(Direction.C2S, encode_request(0, 9, corr, "p", produce(data)))
    rec.close("client closed")
    writer.finalize()
    return tmp_path / "c", batches


def test_a_compressed_produce_batch_is_decompressed_once_at_open(cassette, monkeypatch):
    path, batches = cassette
    recording = Recording.open(path, classify=client_kind)
    calls: list[str] = []
    unpack = kafka_records.decompress

    def counted(codec: str, data, max_bytes: int):
        calls.append(codec)
        return unpack(codec, data, max_bytes)

    monkeypatch.setattr(kafka_records, "decompress", counted)
    world = KafkaWorld(recording)
    assert calls == ["gzip"]  # main: three times (summary, records, faces)

    monkeypatch.setattr(kafka_records, "decompress", unpack)
    log = world.produce[("orders", 0)]
    scanned = [b for data in batches for b in scan_record_set(data).batches]
    records = [rec for b in scanned for rec in read_records(b)]
    assert [rec.value for rec in records] == [b"a" * 300, b"b", b"c", b"d", b"e"]
    assert log.digests == [world.digest(r.key, r.value, r.headers) for r in records]
    faces = [face for b in scanned for face in face_digests(b) or [None] * b.record_count]
    assert None not in faces
    assert log.faces == faces  # what face_digests gives, batch by batch


def test_records_left_over_after_the_declared_count_give_no_faces():
    """As `face_digests`: bytes after the last declared record and the walk cannot vouch for
    the records; they are still read (the long way matches them field by field)."""
    (whole,) = scan_record_set(plain_batch([b"x", b"y"])).batches
    assert whole.body is not None
    short = scan_record_set(plain_batch([b"x", b"y"])).batches[0]
    short.record_count = 1  # declares one record, holds two
    assert face_digests(short) is None
    records, faces = kafka_records.read_records_and_faces(short)
    assert [r.value for r in records] == [b"x"] and faces is None
    records, faces = kafka_records.read_records_and_faces(whole)
    assert faces == face_digests(whole) and [r.value for r in records] == [b"x", b"y"]
