"""Kafka record batch decompression (gzip, snappy, lz4, zstd), never past a byte budget.

A batch's attributes name its codec; the bytes after the batch header are the records, compressed
as one stream. Every codec here stops at `max_bytes` of output and raises DecompressionError, so a
small frame cannot unpack into far more memory than the largest frame allowed (a compression bomb):

- gzip (zlib, standard library): inflated a chunk at a time, every gzip member in turn.
- snappy (cramjam): raw snappy (librdkafka, Go clients) or the xerial framing Java clients and
  kafka-python write (a 16-byte header, then size-prefixed raw blocks). A raw snappy block states
  its decompressed length up front, and the decoder never writes past it: every block's length
  is read first and summed against the budget, then the blocks are decoded into one buffer of
  exactly that size.
- lz4 (python-lz4): the LZ4 frame format Kafka writes for v2 batches, decoded a chunk at a time
  (`max_length`). The broken header checksum of Kafka 0.8/0.9 LZ4 applies to legacy (magic 0)
  message sets only, which are not decoded (see `kafka_records`).
- zstd (zstandard): a streaming reader, a chunk at a time, across frames.

The result is a read-only view (kio's varint readers refuse writable buffers) over the one buffer
the output was built in: no second copy. Each codec's library is imported on its first batch, not
with this module: most sessions never compress, and the fake broker's start-up stays short.
"""

from __future__ import annotations

import struct
import zlib

#: decompressed bytes per step: memory stays near the budget, not above it
CHUNK = 1024 * 1024
XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = 16  # magic (8), version (4), minimum compatible version (4)
_BLOCK_SIZE = struct.Struct(">i")


class DecompressionError(ValueError):
    """Compressed records that do not decompress, or would exceed the budget."""


def decompress(codec: str, data: memoryview | bytes, max_bytes: int) -> memoryview:
    """`data` (a batch's records, compressed with `codec`) decompressed, at most `max_bytes`.

    `codec` is a `kafka_records.COMPRESSION` name other than "none". Raises DecompressionError.
    """
    unpack = _CODECS.get(codec)
    if unpack is None:
        raise DecompressionError(f"{codec} records cannot be decompressed (unknown codec)")
    return memoryview(unpack(data, max_bytes)).toreadonly()


def _over_budget(codec: str, max_bytes: int) -> DecompressionError:
    return DecompressionError(
        f"{codec} records decompress to more than the budget of {max_bytes} bytes "
        "(max_decompressed_bytes); records not read"
    )


def gunzip_bounded(data: memoryview | bytes, max_bytes: int) -> bytearray:
    """Every gzip member of `data`, decompressed a chunk at a time and never past `max_bytes`."""
    out = bytearray()
    rest: bytes = bytes(data)
    try:
        while rest:
            inflater = zlib.decompressobj(31)  # gzip wrapper; one member at a time
            pending = rest
            while not inflater.eof:
                room = max_bytes - len(out)
                chunk = inflater.decompress(pending, min(CHUNK, room + 1))
                out += chunk
                if len(out) > max_bytes:
                    raise _over_budget("gzip", max_bytes)
                pending = inflater.unconsumed_tail
                if not pending and not inflater.eof:
                    if chunk:
                        continue  # output was capped: more may come from buffered input
                    raise DecompressionError("gzip records do not decompress: truncated stream")
            rest = inflater.unused_data
    except zlib.error as err:
        raise DecompressionError(f"gzip records do not decompress: {err}") from err
    return out


def unsnappy_bounded(data: memoryview | bytes, max_bytes: int) -> bytearray:
    """Raw or xerial-framed snappy; every block's declared length is checked before decoding."""
    import cramjam

    blocks = _xerial_blocks(data) if bytes(data[:8]) == XERIAL_MAGIC else [data]
    try:
        sizes = [cramjam.snappy.decompress_raw_len(block) for block in blocks]
        if sum(sizes) > max_bytes:
            raise _over_budget("snappy", max_bytes)
        out = bytearray(sum(sizes))
        view, at = memoryview(out), 0
        for block, size in zip(blocks, sizes, strict=True):
            written = cramjam.snappy.decompress_raw_into(block, view[at : at + size])
            if written != size:
                raise DecompressionError(
                    f"snappy records do not decompress: a block of {written} bytes declared {size}"
                )
            at += size
    except cramjam.DecompressionError as err:
        raise DecompressionError(f"snappy records do not decompress: {err}") from err
    return out


def _xerial_blocks(data: memoryview | bytes) -> list[memoryview]:
    """The raw snappy blocks of a xerial stream (version fields not checked: some producers
    write them little-endian)."""
    view = memoryview(data)
    if len(view) < _XERIAL_HEADER:
        raise DecompressionError("snappy (xerial) records: truncated stream header")
    pos, blocks = _XERIAL_HEADER, []
    while pos < len(view):
        if len(view) - pos < 4:
            raise DecompressionError("snappy (xerial) records: truncated block size")
        (size,) = _BLOCK_SIZE.unpack_from(view, pos)
        pos += 4
        if size < 0 or pos + size > len(view):
            raise DecompressionError(
                f"snappy (xerial) records: a block of {size} bytes at byte {pos - 4} runs past "
                "the batch"
            )
        blocks.append(view[pos : pos + size])
        pos += size
    return blocks


def unlz4_bounded(data: memoryview | bytes, max_bytes: int) -> bytearray:
    """Every LZ4 frame of `data`, a chunk at a time and never past `max_bytes`."""
    import lz4.frame

    out = bytearray()
    rest = bytes(data)
    try:
        while rest:
            frame = lz4.frame.LZ4FrameDecompressor()
            pending = rest
            while not frame.eof:
                room = max_bytes - len(out)
                chunk = frame.decompress(pending, max_length=min(CHUNK, room + 1))
                pending = b""
                out += chunk
                if len(out) > max_bytes:
                    raise _over_budget("lz4", max_bytes)
                if frame.needs_input and not frame.eof:
                    raise DecompressionError("lz4 records do not decompress: truncated frame")
            rest = frame.unused_data
    except RuntimeError as err:  # python-lz4 reports bad frames as RuntimeError
        raise DecompressionError(f"lz4 records do not decompress: {err}") from err
    return out


def unzstd_bounded(data: memoryview | bytes, max_bytes: int) -> bytearray:
    """Every zstd frame of `data`, read a chunk at a time and never past `max_bytes`.

    A truncated last frame ends the output early (zstandard's reader does not say so); the
    record reader then finds records missing and says which.
    """
    import zstandard

    out = bytearray()
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
        with reader:
            while True:
                chunk = reader.read(min(CHUNK, max_bytes - len(out) + 1))
                if not chunk:
                    break
                out += chunk
                if len(out) > max_bytes:
                    raise _over_budget("zstd", max_bytes)
    except zstandard.ZstdError as err:
        raise DecompressionError(f"zstd records do not decompress: {err}") from err
    return out


_CODECS = {
    "gzip": gunzip_bounded,
    "snappy": unsnappy_bounded,
    "lz4": unlz4_bounded,
    "zstd": unzstd_bounded,
}
