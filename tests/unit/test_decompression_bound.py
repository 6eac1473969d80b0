"""A compression bomb in a Kafka Produce, for every codec (gzip, snappy, lz4, zstd): decompression
stops at the budget, the frame is recorded with a summary error, the connection goes on, and
memory stays near the budget (issue G.1; snappy, lz4 and zstd since I.2). Python's allocations are
traced with tracemalloc; the codecs' own native buffers are seen in a child process's peak RSS."""

from __future__ import annotations

import datetime
import gzip
import io
import json
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import cramjam
import lz4.frame
import pytest
import zstandard
from kio.records.schema import NewRecordBatch, Record
from kio.records.writers import write_batch
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.static.primitive import Records, TZAwareMicros, i8, i16, i32, i64

from rrlab.rr.cassette import CassetteReader, CassetteWriter
from rrlab.rr.codecs import Direction
from rrlab.rr.policy import Budgets, Limits, Policy, PolicyError
from rrlab.rr.protocols.kafka import records as kafka_records
from rrlab.rr.protocols.kafka.codec import encode_request
from rrlab.rr.protocols.kafka.compression import XERIAL_MAGIC, DecompressionError, decompress
from rrlab.rr.protocols.kafka.records import set_decompression_budget
from rrlab.rr.record import recorder_for

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


def produce(batch: bytes, acks: int = 1) -> ProduceRequest:
    part = PartitionProduceData(index=i32(0), records=Records(batch))
    return ProduceRequest(
        transactional_id=None,
        acks=i16(acks),
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


def snappy_bomb(mib: int) -> bytes:
    """xerial-framed snappy (as Java clients write it) of `mib` MiB of zeros: one raw block of
    a MiB, repeated. Snappy expands at most ~21 times, so this bomb is the largest of the four."""
    block = bytes(cramjam.snappy.compress_raw(bytes(MiB)))
    header = XERIAL_MAGIC + struct.pack(">ii", 1, 1)
    return header + (struct.pack(">i", len(block)) + block) * mib


def lz4_bomb(mib: int) -> bytes:
    """One LZ4 frame of `mib` MiB of zeros, independent blocks as Kafka writes them."""
    compressor = lz4.frame.LZ4FrameCompressor(block_linked=False)
    zeros = bytes(MiB)
    parts = [compressor.begin()] + [compressor.compress(zeros) for _ in range(mib)]
    return b"".join([*parts, compressor.flush()])


def zstd_bomb(mib: int) -> bytes:
    """One zstd frame of `mib` MiB of zeros, streamed (no content size in the header)."""
    compressor = zstandard.ZstdCompressor().compressobj()
    zeros = bytes(MiB)
    parts = [compressor.compress(zeros) for _ in range(mib)]
    return b"".join([*parts, compressor.flush()])


#: codec -> (attributes codec id, bomb maker, MiB the bomb unpacks to)
BOMBS: dict[str, tuple[int, Callable[[int], bytes], int]] = {
    "gzip": (1, gzip_bomb, BOMB_MIB),
    "snappy": (2, snappy_bomb, 100),
    "lz4": (3, lz4_bomb, BOMB_MIB),
    "zstd": (4, zstd_bomb, BOMB_MIB),
}


def compressed_batch(codec_id: int, body: bytes) -> bytes:
    """A v2 record batch declaring one record of codec `codec_id` whose compressed bytes are
    `body`."""
    raw = bytearray(record_batch()[:61])  # the fixed header only
    raw[21:23] = codec_id.to_bytes(2, "big")  # attributes: the codec (the CRC is not checked)
    raw += body
    raw[8:12] = (len(raw) - 12).to_bytes(4, "big")
    return bytes(raw)


@pytest.fixture
def budget() -> Iterator[int]:
    before = kafka_records.decompression_budget()
    set_decompression_budget(8 * MiB)
    yield 8 * MiB
    set_decompression_budget(before)


@pytest.mark.parametrize("codec", sorted(BOMBS))
def test_bomb_is_small_and_real(codec: str) -> None:
    _id, make, _mib = BOMBS[codec]
    bomb = make(3)
    assert len(bomb) < 200_000, len(bomb)
    assert decompress(codec, bomb, 3 * MiB) == bytes(3 * MiB)  # exactly the budget is allowed
    with pytest.raises(DecompressionError, match=f"{codec} .*more than the budget of 3145727 b"):
        decompress(codec, bomb, 3 * MiB - 1)
    if codec == "gzip":
        assert gzip.decompress(bomb) == bytes(3 * MiB)


@pytest.mark.parametrize("codec", sorted(BOMBS))
def test_bomb_recorded_with_an_error_in_bounded_memory_and_time(
    codec: str, tmp_path: Path, budget: int
) -> None:
    codec_id, make, mib = BOMBS[codec]
    bomb = make(mib)
    frame = encode_request(0, 9, 7, "p", produce(compressed_batch(codec_id, bomb)))
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
    # the frame itself is traced too (snappy's is a few MiB)
    assert peak < 4 * budget + 3 * len(frame), f"peak {peak / MiB:.0f} MiB, {budget // MiB} budget"
    assert elapsed < 20.0  # generous: unbounded, the bomb takes longer and ends in MemoryError
    assert rec.broken is None  # the connection keeps working: the broker decides, not us
    rec.close("client closed")
    writer.finalize()
    frames = list(CassetteReader.open(tmp_path / "c").frames())
    assert len(frames) == 2
    (part,) = frames[0].summary["records"]
    assert f"{codec} records decompress to more than the budget of 8388608 bytes" in part["error"]
    assert frames[1].summary["records"][0]["count"] == 1


#: Run in a child process, once: for each batch file in argv, a forked grandchild decompresses
#: it under an 8 MiB budget and prints its peak RSS (KiB) before and after. ru_maxrss sees the
#: codecs' native buffers, which tracemalloc does not; forking after the imports keeps each
#: codec's peak its own without paying for the imports four times.
_RSS_CHILD = """
import json, os, resource, sys
from rrlab.rr.protocols.kafka.records import RecordsError, read_records, scan_record_set
for path in sys.argv[1:]:
    batch = open(path, "rb").read()
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        del batch
        continue
    (scanned,) = scan_record_set(batch).batches
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        read_records(scanned, max_decompressed=8 * 1024 * 1024)
        error = None
    except RecordsError as err:
        error = str(err)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_kib": before, "after_kib": after, "error": error}), flush=True)
    os._exit(0)
"""


@pytest.fixture(scope="module")
def native_peaks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Each codec's bomb decompressed in a process of its own: {codec: what the child saw}."""
    folder = tmp_path_factory.mktemp("bombs")
    paths = []
    for codec, (codec_id, make, mib) in sorted(BOMBS.items()):
        paths.append(folder / codec)
        paths[-1].write_bytes(compressed_batch(codec_id, make(mib)))
    done = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(paths), done.stdout + done.stderr
    return {p.name: json.loads(line) for p, line in zip(paths, lines, strict=True)}


@pytest.mark.parametrize("codec", sorted(BOMBS))
def test_bomb_peak_memory_including_native_buffers(codec: str, native_peaks: dict) -> None:
    seen = native_peaks[codec]
    assert f"{codec} records decompress to more than the budget of 8388608 b" in seen["error"]
    grown = (seen["after_kib"] - seen["before_kib"]) * 1024
    # unbounded, it grows by the bomb's size (100-300 MiB); bounded, by about the budget
    assert grown < 4 * 8 * MiB, f"peak RSS grew {grown / MiB:.0f} MiB for an 8 MiB budget"


def test_a_recorded_bomb_is_a_note_when_the_fake_broker_prepares(tmp_path: Path, budget: int):
    """The proxy records a bomb (with its summary error) and carries on; the fake broker reading
    that cassette notes it and starts, rather than dying in `prepare`."""
    from rrlab.rr.protocols import client_kind
    from rrlab.rr.protocols.kafka.world import KafkaWorld
    from rrlab.rr.replay.recording import Recording

    writer = CassetteWriter.create(tmp_path / "c", budgets=Budgets())
    conn = writer.open_connection("kafka", "127.0.0.1:1", "127.0.0.1:2")
    rec = recorder_for(writer, conn, "kafka")
    _id, make, _mib = BOMBS["lz4"]
    bomb = encode_request(0, 9, 7, "p", produce(compressed_batch(3, make(64)), acks=0))
    rec.feed(C2S, bomb + encode_request(0, 9, 8, "p", produce(record_batch(), acks=0)))
    rec.close("client closed")
    writer.finalize()
    world = KafkaWorld(Recording.open(tmp_path / "c", classify=client_kind))
    (note,) = world.notes
    assert "frame 0: lz4 records decompress to more than the budget" in note
    assert len(world.produce[("orders", 0)].digests) == 1  # the good Produce is in the log


def test_policy_budget_defaults_to_the_frame_budget() -> None:
    assert Policy("p", "").max_decompressed_bytes == Budgets().max_frame_bytes
    small = Policy("p", "", budgets=Budgets(max_frame_bytes=1000))
    assert small.max_decompressed_bytes == 1000
    own = Policy("p", "", limits=Limits(max_decompressed_bytes=5000))
    assert own.max_decompressed_bytes == 5000
    with pytest.raises(PolicyError, match="max_decompressed_bytes"):
        Limits(max_decompressed_bytes=0)
