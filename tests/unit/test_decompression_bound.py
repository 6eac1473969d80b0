"""A gzip bomb in a Kafka Produce: decompression stops at the budget, the frame is recorded with
a summary error, the connection goes on, and memory stays near the budget (issue G.1)."""

from __future__ import annotations

import datetime
import gzip
import io
import struct
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from kio.records.schema import NewRecordBatch, Record
from kio.records.writers import write_batch
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.static.primitive import Records, TZAwareMicros, i8, i16, i32, i64

from rr.cassette import CassetteReader, CassetteWriter
from rr.codecs import Direction, kafka_records
from rr.codecs.kafka import encode_request
from rr.codecs.kafka_records import RecordsError, gunzip_bounded, set_decompression_budget
from rr.policy import Budgets, Limits, Policy, PolicyError
from rr.record import recorder_for

C2S = Direction.C2S
MiB = 1024 * 1024
BOMB_MIB = 300  # decompressed size of the bomb


def record_batch() -> bytes:
    """A v2 batch of one uncompressed record (key b"k", value b"v"), written by kio."""
    now = TZAwareMicros.parse(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC))
    rec = Record(attributes=i8(0), timestamp=now, offset=i64(0), key=b"k", value=b"v", headers=())
    out = io.BytesIO()
    write_batch(
        out,
        NewRecordBatch(
            producer_id=i64(-1),
            producer_epoch=i16(-1),
            base_sequence=i32(-1),
            attributes=i16(0),
            records=(rec,),
        ),
    )
    return out.getvalue()


def produce(batch: bytes) -> ProduceRequest:
    part = PartitionProduceData(index=i32(0), records=Records(batch))
    return ProduceRequest(
        transactional_id=None,
        acks=i16(1),
        timeout=datetime.timedelta(seconds=5),
        topic_data=(TopicProduceData(name="orders", partition_data=(part,)),),
    )


def gzip_bomb(mib: int) -> bytes:
    """gzip of `mib` MiB of zeros, streamed: one independent deflate block per MiB (a full flush
    resets the window, so the block repeats verbatim), never the zeros in memory at once."""
    zeros = bytes(MiB)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)  # the final empty block
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", crc, (mib * MiB) & 0xFFFFFFFF)
    return header + block * mib + tail + trailer


def gzip_batch(body: bytes) -> bytes:
    """A v2 record batch declaring one gzip record whose compressed bytes are `body`."""
    raw = bytearray(record_batch()[:61])  # the fixed header only
    raw[21:23] = (1).to_bytes(2, "big")  # attributes: gzip (the CRC is not checked)
    raw += body
    raw[8:12] = (len(raw) - 12).to_bytes(4, "big")
    return bytes(raw)


@pytest.fixture
def budget() -> Iterator[int]:
    before = kafka_records.decompression_budget()
    set_decompression_budget(8 * MiB)
    yield 8 * MiB
    set_decompression_budget(before)


def test_bomb_is_small_and_real() -> None:
    bomb = gzip_bomb(3)
    assert len(bomb) < 10_000 and gzip.decompress(bomb) == bytes(3 * MiB)
    assert gunzip_bounded(bomb, 3 * MiB) == bytes(3 * MiB)  # exactly the budget is allowed
    with pytest.raises(RecordsError, match="more than the budget of 3145727 bytes"):
        gunzip_bounded(bomb, 3 * MiB - 1)


def test_gzip_bomb_recorded_with_an_error_in_bounded_memory_and_time(
    tmp_path: Path, budget: int
) -> None:
    bomb = gzip_bomb(BOMB_MIB)
    frame = encode_request(0, 9, 7, "p", produce(gzip_batch(bomb)))
    normal = encode_request(0, 9, 8, "p", produce(record_batch()))
    writer = CassetteWriter.create(tmp_path / "c", budgets=Budgets())
    conn = writer.open_connection("kafka", "127.0.0.1:1", "127.0.0.1:2")
    rec = recorder_for(writer, conn, "kafka")
    tracemalloc.start()
    started = time.perf_counter()
    try:
        rec.feed(C2S, frame + normal)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    assert peak < 4 * budget, f"peak {peak / MiB:.0f} MiB for a {budget // MiB} MiB budget"
    assert elapsed < 2.0
    assert rec.broken is None  # the connection keeps working: the broker decides, not us
    rec.close("client closed")
    writer.finalize()
    frames = list(CassetteReader.open(tmp_path / "c").frames())
    assert len(frames) == 2
    (part,) = frames[0].summary["records"]
    assert "more than the budget of 8388608 bytes" in part["error"]
    assert frames[1].summary["records"][0]["count"] == 1


def test_policy_budget_defaults_to_the_frame_budget() -> None:
    assert Policy("p", "").max_decompressed_bytes == Budgets().max_frame_bytes
    small = Policy("p", "", budgets=Budgets(max_frame_bytes=1000))
    assert small.max_decompressed_bytes == 1000
    own = Policy("p", "", limits=Limits(max_decompressed_bytes=5000))
    assert own.max_decompressed_bytes == 5000
    with pytest.raises(PolicyError, match="max_decompressed_bytes"):
        Limits(max_decompressed_bytes=0)
