"""Kafka record batch (magic 2) reader: enough to see keys, values, headers and timestamps.

kio ships `kio.records.readers.read_batch`, but it truncates record timestamps to whole seconds,
insists on a valid CRC-32C and raises on the partial trailing batch a Fetch response may carry.
Matching and replay need exact millisecond timestamps and must survive all three, so the layout
is read here, on top of kio's primitive readers (varints, fixed-width ints).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kio.serial.errors import SerialError
from kio.serial.readers import (
    read_int8,
    read_int16,
    read_int32,
    read_int64,
    read_signed_varint,
    read_signed_varlong,
)
from kio.serial.writers import write_signed_varint

from .compression import DecompressionError, decompress

_BATCH_OVERHEAD = 61  # bytes from base offset up to and including the record count
_LENGTH_PREFIX = 12  # base offset (8) + batch length (4)
COMPRESSION = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}

#: bytes a compressed batch may decompress to: the default frame budget (rr.policy), so a small
#: frame cannot unpack into far more memory than the largest frame allowed (a compression bomb).
DEFAULT_MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024
_decompression_budget = DEFAULT_MAX_DECOMPRESSED_BYTES


class RecordsError(ValueError):
    """Record bytes that do not follow the v2 batch layout."""


@dataclass(frozen=True, slots=True)
class Record:
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


@dataclass(slots=True)
class Batch:
    base_offset: int
    magic: int
    attributes: int = 0
    base_timestamp_ms: int = 0
    max_timestamp_ms: int = 0
    producer_id: int = -1
    producer_epoch: int = -1
    base_sequence: int = -1
    record_count: int = 0  # as the batch header declares it
    records: list[Record] = field(default_factory=list)  # empty until read (see read_records)
    note: str | None = None  # why records were not read (legacy format, unknown codec)
    body: memoryview | None = None  # the record bytes after the header (compressed or not)

    @property
    def compression(self) -> str:
        return COMPRESSION.get(self.attributes & 0x07, f"codec {self.attributes & 0x07}")

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & 0x20)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & 0x10)


@dataclass(slots=True)
class RecordSet:
    batches: list[Batch]
    partial_tail: bool  # a truncated last batch (normal at the end of a Fetch response)


def read_record_set(data: bytes | None) -> RecordSet:
    """Read every batch in a Produce/Fetch `records` field. Raises RecordsError on bad layout."""
    record_set = scan_record_set(data)
    for batch in record_set.batches:
        batch.records = read_records(batch)
    return record_set


def scan_record_set(data: bytes | None) -> RecordSet:
    """The batches' headers only (counts, offsets, attributes): no record is decoded.

    A recorder summarising a Fetch of thousands of records needs the counts and a few of them;
    `read_records` decodes a batch's records when they are wanted. Raises RecordsError on a bad
    batch layout (not on bad records: those are found when read).
    """
    if not data:
        return RecordSet([], False)
    buf = memoryview(data).toreadonly()  # kio readers refuse writable buffers
    pos, batches = 0, []
    while pos < len(buf):
        if len(buf) - pos < _LENGTH_PREFIX:
            return RecordSet(batches, True)
        base_offset = _i64(buf, pos)
        (length, _) = read_int32(buf, pos + 8)
        end = pos + _LENGTH_PREFIX + length
        if length < 0:
            raise RecordsError(f"negative batch length {length} at byte {pos}")
        if end > len(buf):
            return RecordSet(batches, True)
        batches.append(_scan_batch(buf[pos:end], base_offset))
        pos = end
    return RecordSet(batches, False)


def _i64(buf: memoryview, pos: int) -> int:
    return read_int64(buf, pos)[0]


def _scan_batch(buf: memoryview, base_offset: int) -> Batch:
    magic = read_int8(buf, 16)[0] if len(buf) > 16 else -1
    if magic != 2:
        return Batch(base_offset, magic, note=f"legacy message set (magic {magic}) not read")
    if len(buf) < _BATCH_OVERHEAD:
        raise RecordsError("record batch shorter than its fixed header")
    batch = Batch(
        base_offset=base_offset,
        magic=magic,
        attributes=read_int16(buf, 21)[0],
        base_timestamp_ms=_i64(buf, 27),
        max_timestamp_ms=_i64(buf, 35),
        producer_id=_i64(buf, 43),
        producer_epoch=read_int16(buf, 51)[0],
        base_sequence=read_int32(buf, 53)[0],
        record_count=read_int32(buf, 57)[0],
        body=buf[_BATCH_OVERHEAD:],
    )
    if batch.attributes & 0x07 not in COMPRESSION:
        batch.note = f"{batch.compression}-compressed records not read"
    return batch


def set_decompression_budget(max_bytes: int) -> None:
    """Set the process-wide decompression budget (the proxy and fake broker take it from their
    policy at start-up; the decoders that call `read_records` carry no policy of their own)."""
    global _decompression_budget
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ValueError(f"decompression budget must be a positive integer, got {max_bytes!r}")
    _decompression_budget = max_bytes


def decompression_budget() -> int:
    return _decompression_budget


def read_records(
    batch: Batch, limit: int | None = None, *, max_decompressed: int | None = None
) -> list[Record]:
    """The first `limit` (default: all declared) records of a batch from `scan_record_set`.

    Empty for a batch with a `note` (legacy format, unknown codec). Compressed records (gzip,
    snappy, lz4, zstd: `kafka_compression`) are decompressed first. Raises RecordsError when
    the records do not follow the layout, do not decompress, or decompress to more than
    `max_decompressed` bytes (default: the process-wide budget).
    """
    body = _plain_body(batch, max_decompressed)
    if body is None:
        return []
    count = batch.record_count if limit is None else min(limit, batch.record_count)
    return _read_records(body, batch, count)[0]


def record_glimpses(batch: Batch, limit: int) -> list[tuple[int, bytes | None, int, list[str]]]:
    """What a summary shows of the first `limit` records, as `read_records(batch, limit)` reads
    them: (offset, key, value length or -1 for a null value, header keys in record order).

    The same walk of the same bytes with the same checks, without copying values or building
    records (a Produce request's summary reads ten of them before the proxy forwards it). Where
    the walk fails, `read_records` is asked: its RecordsError, as ever, or its records.
    """
    body = _plain_body(batch, None)
    if body is None:
        return []
    try:
        return _glimpses(body, batch.base_offset, min(limit, batch.record_count))
    except Exception:  # noqa: BLE001 - read_records says what is wrong, in its own words
        pass
    return [
        (
            rec.offset,
            rec.key,
            -1 if rec.value is None else len(rec.value),
            [k for k, _ in rec.headers],
        )
        for rec in read_records(batch, limit)
    ]


def _glimpses(buf: memoryview, base_offset: int, count: int) -> list[tuple[Any, ...]]:
    """`_read_records`' walk (`_raw_record`, `_varbytes`) for `record_glimpses`."""
    out = []
    size = len(buf)
    pos = 0
    for _ in range(count):
        length, n = read_signed_varint(buf, pos)
        start = pos + n
        end = start + length
        pos = start + read_int8(buf, start)[1]  # record attributes: unused
        pos += read_signed_varlong(buf, pos)[1]  # timestamp delta: not shown
        offset_delta, n = read_signed_varint(buf, pos)
        pos += n
        key_len, n = read_signed_varint(buf, pos)
        pos += n
        key = None
        if key_len >= 0:
            if pos + key_len > size:
                raise RecordsError("record field runs past the end of the batch")
            key = bytes(buf[pos : pos + key_len])
            pos += key_len
        value_len, n = read_signed_varint(buf, pos)
        pos += n
        if value_len < 0:
            value_len = -1
        elif pos + value_len > size:
            raise RecordsError("record field runs past the end of the batch")
        else:
            pos += value_len
        n_headers, n = read_signed_varint(buf, pos)
        pos += n
        header_keys = []
        for _ in range(n_headers):
            hkey, pos = _varbytes(buf, pos)
            _hval, pos = _varbytes(buf, pos)
            header_keys.append((hkey or b"").decode("utf-8", "replace"))
        if pos != end:
            raise RecordsError(f"record length {length} disagrees with its fields")
        out.append((base_offset + offset_delta, key, value_len, header_keys))
    return out


def read_records_and_faces(
    batch: Batch, *, max_decompressed: int | None = None
) -> tuple[list[Record], list[bytes] | None]:
    """`read_records(batch)` and `face_digests(batch)` in one walk of the record bytes (a
    compressed batch decompressed once): what the fake broker learns of each recorded Produce
    batch at open. Raises as `read_records` does; the faces are None where `face_digests`
    would give None for records that read (bytes left over after the last one)."""
    body = _plain_body(batch, max_decompressed)
    if body is None:
        return [], None
    records, raws, end = _read_records(body, batch, batch.record_count, keep_raw=True)
    if end != len(body):
        return records, None
    sha1 = hashlib.sha1
    return records, [sha1(body[r.fixed_end : r.end], usedforsecurity=False).digest() for r in raws]


def _plain_body(batch: Batch, max_decompressed: int | None) -> memoryview | None:
    """A batch's record bytes, decompressed (None: a batch with a note, nothing to read)."""
    if batch.note is not None or batch.body is None:
        return None
    body = batch.body
    if batch.compression != "none":
        budget = _decompression_budget if max_decompressed is None else max_decompressed
        try:
            body = decompress(batch.compression, body, budget)
        except DecompressionError as err:
            raise RecordsError(str(err)) from err
    return body


#: the smallest record: length, attributes, timestamp delta, offset delta, key and value
#: lengths and header count, one byte each
MIN_RECORD_BYTES = 7


@dataclass(frozen=True, slots=True)
class _RawRecord:
    """One record of a magic 2 batch as it lies in the bytes: where its length-prefixed body
    starts and ends, where the fields before the key (attributes, deltas) end, and its key,
    value and headers undecoded."""

    start: int
    fixed_end: int
    end: int
    timestamp_delta: int
    offset_delta: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[bytes | None, bytes | None], ...]


def _raw_record(buf: memoryview, pos: int) -> _RawRecord:
    """The record whose length prefix is at `pos`; RecordsError when its fields disagree with
    its length (kio's readers raise on bytes that end too soon)."""
    length, n = read_signed_varint(buf, pos)
    start = pos + n
    end = start + length
    pos = start + read_int8(buf, start)[1]  # record attributes: unused
    ts_delta, n = read_signed_varlong(buf, pos)
    pos += n
    off_delta, n = read_signed_varint(buf, pos)
    pos += n
    fixed_end = pos
    key, pos = _varbytes(buf, pos)
    value, pos = _varbytes(buf, pos)
    n_headers, n = read_signed_varint(buf, pos)
    pos += n
    headers = []
    for _ in range(n_headers):
        hkey, pos = _varbytes(buf, pos)
        hval, pos = _varbytes(buf, pos)
        headers.append((hkey, hval))
    if pos != end:
        raise RecordsError(f"record length {length} disagrees with its fields")
    return _RawRecord(start, fixed_end, end, ts_delta, off_delta, key, value, tuple(headers))


def _read_records(
    buf: memoryview, batch: Batch, count: int, *, keep_raw: bool = False
) -> tuple[list[Record], list[_RawRecord], int]:
    """The first `count` records, (with `keep_raw`) where each lies, and where the last ends."""
    pos, out, raws = 0, [], []
    try:
        for _ in range(count):
            raw = _raw_record(buf, pos)
            pos = raw.end
            if keep_raw:
                raws.append(raw)
            out.append(
                Record(
                    offset=batch.base_offset + raw.offset_delta,
                    timestamp_ms=batch.base_timestamp_ms + raw.timestamp_delta,
                    key=raw.key,
                    value=raw.value,
                    headers=tuple(
                        ((hkey or b"").decode("utf-8", "replace"), hval)
                        for hkey, hval in raw.headers
                    ),
                )
            )
    except (IndexError, ValueError, SerialError) as err:
        if isinstance(err, RecordsError):
            raise
        raise RecordsError(f"record {len(out)} of {batch.record_count}: {err}") from err
    return out, raws, pos


def _varbytes(buf: memoryview, pos: int) -> tuple[bytes | None, int]:
    length, n = read_signed_varint(buf, pos)
    pos += n
    if length < 0:
        return None, pos
    if pos + length > len(buf):
        raise RecordsError("record field runs past the end of the batch")
    return bytes(buf[pos : pos + length]), pos + length


def face_digests(batch: Batch, *, max_decompressed: int | None = None) -> list[bytes] | None:
    """A digest of each record's face, its bytes from the key on (key, value and headers as they
    lie in the batch, never its timestamp or offset delta), without decoding the record.

    Equal face digests mean the same key, value and headers in the same order: the fake broker
    takes a live Produce whose faces all equal the recorded ones without reading its records one
    field at a time (~10x the walk's cost, on the produce round trip a client waits for). None
    when the walk cannot vouch for the records (a note, a length past the batch's end, bytes
    left over): the caller reads them the long way, which says what is wrong.
    """
    if batch.note is not None or batch.body is None:
        return None
    body = batch.body
    if batch.compression != "none":
        budget = _decompression_budget if max_decompressed is None else max_decompressed
        try:
            body = memoryview(decompress(batch.compression, body, budget))
        except DecompressionError:
            return None
    sha1 = hashlib.sha1
    size = len(body)
    out: list[bytes] = []
    pos = 0
    try:
        for _ in range(batch.record_count):
            length, pos = _uvarint(body, pos)
            end = pos + ((length >> 1) ^ -(length & 1))  # zigzag: the record's signed length
            if end > size or end <= pos:
                return None
            pos += 1  # attributes
            pos = _skip_varint(body, pos)  # timestamp delta
            pos = _skip_varint(body, pos)  # offset delta
            if pos >= end:
                return None
            out.append(sha1(body[pos:end], usedforsecurity=False).digest())
            pos = end
    except IndexError:  # a varint running past the end
        return None
    return out if pos == size else None


def _uvarint(buf: memoryview, pos: int) -> tuple[int, int]:
    """An unsigned varint at `pos` and the position after it (one byte in the common case)."""
    byte = buf[pos]
    if byte < 0x80:
        return byte, pos + 1
    value, shift = byte & 0x7F, 7
    while True:
        pos += 1
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        if byte < 0x80 or shift > 63:
            return value, pos + 1
        shift += 7


def _skip_varint(buf: memoryview, pos: int) -> int:
    """The position after the varint at `pos` (at most 10 bytes read)."""
    for n in range(10):
        if buf[pos + n] < 0x80:
            return pos + n + 1
    return pos + 10


# -- display (`rrlab inspect --payload text`) ---------------------------------------------------


def show_bytes(data: bytes | None) -> str:
    """A key, value or header value on one line: UTF-8 text with control characters escaped,
    `null` for none, else `0x` and its hex (binary is never guessed at)."""
    if data is None:
        return "null"
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + bytes(data).hex()
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def record_lines(record: Mapping[str, Any]) -> list[str]:
    """One decoded record (`codec.records_of`: topic, partition, offset, timestamp_ms, key,
    value, headers) as lines: where it is, then key, each header and the value."""
    lines = [
        f"record {record['topic']}[{record['partition']}] offset {record['offset']} "
        f"timestamp {record['timestamp_ms']}",
        f"  key: {show_bytes(record['key'])}",
    ]
    lines += [f"  header {name}: {show_bytes(value)}" for name, value in record["headers"]]
    lines.append(f"  value: {show_bytes(record['value'])}")
    return lines


# --- rewriting (bindings stamped into served batches) -------------------------------------------


def _varint(n: int) -> bytes:
    """A signed varint as Kafka writes it (kio's writer)."""
    out = io.BytesIO()
    write_signed_varint(out, n)
    return out.getvalue()


def _field(data: bytes | None) -> bytes:
    return _varint(-1) if data is None else _varint(len(data)) + data


def restamp_batch(batch: bytes, fn: Callable[[bytes], bytes]) -> bytes:
    """One uncompressed magic 2 batch with every record's key, value, header names and values
    passed through `fn` (the run's bound recorded values -> live ones): the records, the batch
    length and its CRC-32C written again, offsets and timestamps kept. Anything else (a legacy
    message set, a compressed or partial batch) is returned as it is."""
    buf = memoryview(batch).toreadonly()
    if len(buf) < _BATCH_OVERHEAD or buf[16] != 2 or read_int16(buf, 21)[0] & 0x07:
        return batch
    if _LENGTH_PREFIX + read_int32(buf, 8)[0] != len(buf):
        return batch
    head = _scan_batch(buf, _i64(buf, 0))
    body = buf[_BATCH_OVERHEAD:]
    out = bytearray()
    pos = 0
    changed = False
    for _ in range(head.record_count):
        try:
            raw = _raw_record(body, pos)
        except RecordsError:
            return batch
        parts = [bytes(body[raw.start : raw.fixed_end])]
        parts += [_field(_map(raw.key, fn)), _field(_map(raw.value, fn)), _varint(len(raw.headers))]
        parts += [_field(_map(h, fn)) + _field(_map(v, fn)) for h, v in raw.headers]
        record = b"".join(parts)
        changed = changed or record != bytes(body[raw.start : raw.end])
        out += _varint(len(record)) + record
        pos = raw.end
    if not changed:
        return batch
    import crc32c  # here, not at start-up: only a rewritten batch needs a new CRC

    tail = bytes(buf[21:_BATCH_OVERHEAD]) + bytes(out)  # attributes .. records: what the CRC covers
    length = len(tail) + 9  # partition leader epoch (4), magic (1), crc (4)
    return (
        bytes(buf[0:8])
        + length.to_bytes(4, "big", signed=True)
        + bytes(buf[12:17])
        + crc32c.crc32c(tail).to_bytes(4, "big")
        + tail
    )


def _map(data: bytes | None, fn: Callable[[bytes], bytes]) -> bytes | None:
    return None if data is None else fn(data)
