"""Compressed Kafka record batches (gzip, snappy, lz4, zstd) read back record by record.

The batches are written by kafka-python's own batch builder (what `compression_type=` sends);
raw snappy, as librdkafka and Go clients write it, by cramjam. Bombs and budgets: see
test_decompression_bound.py; real clients through a real broker: tests/live/.
"""

from __future__ import annotations

import datetime
import gzip
import struct

import cramjam
import lz4.frame
import pytest
import zstandard
from kafka.record.default_records import DefaultRecordBatchBuilder
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.static.primitive import Records, i16, i32

from rrlab.rr.codecs import Direction
from rrlab.rr.protocols import decoder_for
from rrlab.rr.protocols.kafka.codec import encode_request, records_of
from rrlab.rr.protocols.kafka.compression import XERIAL_MAGIC, DecompressionError, decompress
from rrlab.rr.protocols.kafka.records import RecordsError, read_record_set

CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
COUNT = 60


def values() -> list[bytes]:
    return [b'{"n":%d,"text":"%s"}' % (i, b"x" * (i % 40)) for i in range(COUNT)]


def client_batch(codec: str) -> bytes:
    """A v2 batch of COUNT records as kafka-python builds it for `compression_type=codec`."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=CODEC_IDS[codec],
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for i, value in enumerate(values()):
        headers = [("seq", str(i).encode())]
        key = b"k%d" % (i % 7)
        builder.append(i, timestamp=1_700_000_000_000 + i, key=key, value=value, headers=headers)
    return bytes(builder.build())


def with_body(batch: bytes, codec: str, body: bytes) -> bytes:
    """`batch` (an uncompressed v2 batch) with its records replaced by `body`, as `codec`."""
    raw = bytearray(batch[:61])
    raw[21:23] = CODEC_IDS[codec].to_bytes(2, "big")
    raw += body
    raw[8:12] = (len(raw) - 12).to_bytes(4, "big")
    return bytes(raw)


def produce(batch: bytes) -> bytes:
    part = PartitionProduceData(index=i32(0), records=Records(batch))
    body = ProduceRequest(
        transactional_id=None,
        acks=i16(1),
        timeout=datetime.timedelta(seconds=5),
        topic_data=(TopicProduceData(name="orders", partition_data=(part,)),),
    )
    return encode_request(0, 9, 3, "p", body)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_client_compressed_batch_reads_every_record(codec):
    raw = client_batch(codec)
    (batch,) = read_record_set(raw).batches
    assert batch.compression == codec and batch.note is None
    assert [r.value for r in batch.records] == values()
    assert batch.records[49].headers == (("seq", b"49"),)
    assert batch.records[49].timestamp_ms == 1_700_000_000_049
    decoded = decoder_for("kafka").decode(Direction.C2S, produce(raw))
    (part,) = decoded.summary["records"]
    assert "notes" not in part and "error" not in part
    assert part["count"] == COUNT and len(part["records"]) == 10
    listed = {"offset": 3, "key": "k3", "value_len": len(values()[3]), "headers": ["seq"]}
    assert part["records"][3] == listed
    assert [r["value"] for r in records_of(decoded)] == values()


def test_raw_snappy_as_librdkafka_writes_it():
    plain = client_batch("none")
    body = bytes(cramjam.snappy.compress_raw(plain[61:]))
    assert not body.startswith(XERIAL_MAGIC)
    (batch,) = read_record_set(with_body(plain, "snappy", body)).batches
    assert [r.value for r in batch.records] == values()


@pytest.mark.parametrize(
    ("codec", "split"),
    [
        ("gzip", lambda a, b: gzip.compress(a) + gzip.compress(b)),
        ("lz4", lambda a, b: lz4.frame.compress(a) + lz4.frame.compress(b)),
        ("zstd", lambda a, b: zstandard.compress(a) + zstandard.compress(b)),
        (
            "snappy",  # xerial framing: blocks of any size, each a raw snappy block
            lambda a, b: (
                XERIAL_MAGIC
                + struct.pack(">ii", 1, 1)
                + b"".join(
                    struct.pack(">i", len(c)) + c
                    for c in (bytes(cramjam.snappy.compress_raw(x)) for x in (a, b))
                )
            ),
        ),
    ],
)
def test_records_split_over_frames_or_blocks(codec, split):
    plain = client_batch("none")
    records = plain[61:]
    half = len(records) // 3
    (batch,) = read_record_set(
        with_body(plain, codec, split(records[:half], records[half:]))
    ).batches
    assert [r.value for r in batch.records] == values()


def test_every_codec_names_itself_in_its_error():
    plain = client_batch("none")
    broken = {
        "gzip": gzip.compress(plain[61:])[:-12],
        "snappy": b"\xff\xff\x03garbage",
        "lz4": lz4.frame.compress(plain[61:])[:-9],
        "zstd": b"not zstd at all",
    }
    for codec, body in broken.items():
        with pytest.raises(RecordsError, match=f"^{codec}.* do not decompress"):
            read_record_set(with_body(plain, codec, body))
    # a xerial block that runs past the batch
    truncated = XERIAL_MAGIC + struct.pack(">iii", 1, 1, 500) + b"short"
    with pytest.raises(DecompressionError, match="runs past the batch"):
        decompress("snappy", truncated, 1 << 20)
    with pytest.raises(DecompressionError, match="truncated stream header"):
        decompress("snappy", XERIAL_MAGIC + b"\x00\x00", 1 << 20)


def test_a_truncated_zstd_stream_leaves_records_missing_and_says_which():
    plain = client_batch("none")
    body = zstandard.compress(plain[61:])[:-40]
    with pytest.raises(RecordsError, match=f"^record \\d+ of {COUNT}"):
        read_record_set(with_body(plain, "zstd", body))


def test_an_unknown_codec_is_a_note_not_an_error():
    plain = client_batch("none")
    raw = bytearray(plain)
    raw[21:23] = (5).to_bytes(2, "big")
    (batch,) = read_record_set(bytes(raw)).batches
    assert batch.note == "codec 5-compressed records not read" and batch.records == []
