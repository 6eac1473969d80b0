"""Kafka decoder: headers, request/response pairing, records, encode helpers."""

from __future__ import annotations

import datetime
import io
import struct

import cramjam
import pytest
from kio.records.schema import NewRecordBatch, Record, RecordHeader
from kio.records.writers import write_batch
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.api_versions.v3.response import ApiVersion, ApiVersionsResponse
from kio.schema.errors import ErrorCode
from kio.schema.fetch.v12.response import FetchableTopicResponse, FetchResponse, PartitionData
from kio.schema.metadata.v12.request import MetadataRequest
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.static.primitive import Records, TZAwareMicros, i8, i16, i32, i64

from rrlab.rr.canonical import dumps
from rrlab.rr.codecs import Direction
from rrlab.rr.protocols import decoder_for
from rrlab.rr.protocols.kafka.codec import (
    KafkaCodecError,
    KafkaFramer,
    decode_request,
    decode_response_body,
    encode_request,
    encode_response,
    records_of,
)
from rrlab.rr.protocols.kafka.records import read_record_set, scan_record_set

C2S, S2C = Direction.C2S, Direction.S2C
T0 = datetime.datetime(2024, 1, 1, 0, 0, 0, 123000, tzinfo=datetime.UTC)
T0_MS = 1704067200123


def record_batch(base_offset: int, items: list[tuple[bytes | None, bytes, dict]]) -> bytes:
    """A v2 record batch written by kio (CRC included) holding (key, value, headers) records."""
    ts = TZAwareMicros.parse(T0)
    recs = tuple(
        Record(
            attributes=i8(0),
            timestamp=ts,
            offset=i64(n),
            key=key,
            value=value,
            headers=tuple(RecordHeader(key=k.encode(), value=v) for k, v in headers.items()),
        )
        for n, (key, value, headers) in enumerate(items)
    )
    out = io.BytesIO()
    batch = NewRecordBatch(
        producer_id=i64(-1),
        producer_epoch=i16(-1),
        base_sequence=i32(-1),
        attributes=i16(0),
        records=recs,
    )
    write_batch(out, batch)
    raw = bytearray(out.getvalue())
    raw[0:8] = base_offset.to_bytes(8, "big", signed=True)  # base offset is outside the CRC
    return bytes(raw)


def records(data: bytes) -> Records:
    return Records(data)


def produce(acks: int, batch: bytes) -> ProduceRequest:
    return ProduceRequest(
        transactional_id=None,
        acks=i16(acks),
        timeout=datetime.timedelta(seconds=5),
        topic_data=(
            TopicProduceData(
                name="orders",
                partition_data=(PartitionProduceData(index=i32(2), records=records(batch)),),
            ),
        ),
    )


def api_versions_response() -> ApiVersionsResponse:
    return ApiVersionsResponse(
        error_code=ErrorCode.none,
        api_keys=(ApiVersion(api_key=i16(0), min_version=i16(0), max_version=i16(9)),),
        throttle_time=datetime.timedelta(0),
    )


def test_request_summary_and_pairing_with_header_v0_response():
    dec = decoder_for("kafka")
    req = ApiVersionsRequest(client_software_name="kp", client_software_version="3")
    got = dec.decode(C2S, encode_request(18, 3, 41, "client-a", req))
    assert got.summary == {
        "api_key": 18,
        "api": "ApiVersions",
        "version": 3,
        "correlation_id": 41,
        "flexible": True,
        "client_id": "client-a",
    }
    assert got.body == req
    resp = encode_response(18, 3, 41, api_versions_response())
    assert resp[8] == 0  # header v0: no tagged-field byte before the body's error code (int16)
    out = dec.decode(S2C, resp)
    assert out.summary["api"] == "ApiVersions" and out.summary["correlation_id"] == 41
    assert out.summary["error_code"] == 0
    assert out.body == api_versions_response()
    assert dec.pending == {}
    dumps(got.summary), dumps(out.summary)  # JSON-able


def test_responses_pair_out_of_order_and_unpaired_is_reported():
    dec = decoder_for("kafka")
    meta = MetadataRequest(
        topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False
    )
    dec.decode(C2S, encode_request(3, 12, 1, "c", meta))
    dec.decode(
        C2S,
        encode_request(
            18, 3, 2, "c", ApiVersionsRequest(client_software_name="a", client_software_version="b")
        ),
    )
    assert dec.pending == {1: (3, 12), 2: (18, 3)}
    out = dec.decode(S2C, encode_response(18, 3, 2, api_versions_response()))
    assert out.summary["api"] == "ApiVersions"
    assert dec.pending == {1: (3, 12)}
    stray = dec.decode(S2C, encode_response(18, 3, 99, api_versions_response()))
    assert stray.summary == {"correlation_id": 99, "error": "no pending request has this id"}


def test_produce_records_and_acks_zero_expects_no_response():
    batch = record_batch(0, [(b"k1", b"v1", {"h": b"x"}), (None, b"value-2", {})])
    dec = decoder_for("kafka")
    raw = encode_request(0, 9, 7, "p", produce(0, batch))
    got = dec.decode(C2S, raw)
    assert got.summary["expects_response"] is False
    assert dec.pending == {}
    assert dec.redecode(C2S, raw, got).summary == got.summary  # read as it was, state untouched
    assert dec.pending == {}
    assert got.summary["records"] == [
        {
            "topic": "orders",
            "partition": 2,
            "count": 2,
            "base_offsets": [0],
            "records": [
                {"offset": 0, "key": "k1", "value_len": 2, "headers": ["h"]},
                {"offset": 1, "key": None, "value_len": 7},
            ],
        }
    ]
    assert records_of(got)[0] == {
        "topic": "orders",
        "partition": 2,
        "offset": 0,
        "timestamp_ms": T0_MS,  # exact milliseconds (kio's own reader rounds to seconds)
        "key": b"k1",
        "value": b"v1",
        "headers": [("h", b"x")],
    }
    dec.decode(C2S, encode_request(0, 9, 8, "p", produce(1, batch)))
    assert dec.pending == {8: (0, 9)}


def test_fetch_response_records_with_partial_tail():
    batch1 = record_batch(10, [(b"a", b"1", {})])
    batch2 = record_batch(11, [(b"b", b"2", {}), (b"c", b"3", {})])
    data = batch1 + batch2 + batch2[:20]  # brokers may cut the last batch short
    body = FetchResponse(
        throttle_time=datetime.timedelta(0),
        error_code=ErrorCode.none,
        responses=(
            FetchableTopicResponse(
                topic="orders",
                partitions=(
                    PartitionData(
                        partition_index=i32(0),
                        error_code=ErrorCode.none,
                        high_watermark=i64(13),
                        aborted_transactions=None,
                        records=records(data),
                    ),
                ),
            ),
        ),
    )
    dec = decoder_for("kafka")
    dec.decode(C2S, _raw_request_header(1, 12, 5))
    out = dec.decode(S2C, encode_response(1, 12, 5, body))
    (part,) = out.summary["records"]
    assert part["count"] == 3 and part["base_offsets"] == [10, 11] and part["partial_tail"]
    assert [r["offset"] for r in records_of(out)] == [10, 11, 12]
    assert read_record_set(data).partial_tail


def _produce_summary(data: bytes):
    dec = decoder_for("kafka")
    got = dec.decode(C2S, encode_request(0, 9, 7, "p", produce(1, data)))
    (part,) = got.summary["records"]
    return got, part


def test_produce_summary_decodes_ten_records_and_counts_from_the_header():
    items = [(f"k{n}".encode(), b"v" * n, {}) for n in range(25)]
    data = record_batch(0, items[:15]) + record_batch(15, items[15:])
    got, part = _produce_summary(data)
    assert part["count"] == 25 and part["base_offsets"] == [0, 15]
    assert [r["key"] for r in part["records"]] == [f"k{n}" for n in range(10)]
    assert "not decoded" in repr(got.extra["records"])  # the full list waits until asked for
    full = records_of(got)
    assert [r["key"] for r in full] == [f"k{n}".encode() for n in range(25)]
    assert [r["offset"] for r in full] == list(range(25))
    assert full[24]["value"] == b"v" * 24
    assert len(got.extra["records"]) == 25 and "25 records" in repr(got.extra["records"])


def _snappy(batch: bytes) -> bytes:
    """`batch` with its records compressed as raw snappy (attributes say so; CRC not checked)."""
    raw = bytearray(batch[:61])
    raw[22] |= 2
    raw += cramjam.snappy.compress_raw(batch[61:])
    raw[8:12] = (len(raw) - 12).to_bytes(4, "big")
    return bytes(raw)


def test_compressed_batches_listed_then_counted_from_the_header_without_reading_records():
    items = [(f"k{n}".encode(), b"v" * n, {}) for n in range(13)]
    listed = _snappy(record_batch(0, items[:10]))  # decompressed: its records are listed
    rest = bytearray(record_batch(10, items[10:]))
    rest[22] |= 2  # says snappy, is not: never decompressed, since ten records are listed
    got, part = _produce_summary(listed + bytes(rest))
    assert "error" not in part and "notes" not in part
    assert part["count"] == 13 and part["base_offsets"] == [0, 10]
    assert [r["key"] for r in part["records"]] == [f"k{n}" for n in range(10)]
    assert scan_record_set(bytes(rest)).batches[0].record_count == 3
    _got, alone = _produce_summary(bytes(rest))
    assert alone["error"].startswith("snappy records do not decompress")


def test_record_count_the_bytes_cannot_hold_is_an_error_as_before():
    raw = bytearray(record_batch(0, [(b"a", b"1", {}), (b"b", b"2", {})]))
    raw[57:61] = (1_000_000).to_bytes(4, "big")  # record count far beyond the batch's bytes
    got, part = _produce_summary(bytes(raw))
    assert part["error"].startswith("record 2 of 1000000") and "count" not in part
    assert records_of(got) == []  # a partition whose records do not decode has none to give


def _raw_request_header(api_key: int, version: int, cid: int) -> bytes:
    """A request kio cannot parse beyond the header prefix (the body is missing)."""
    body = struct.pack(">hhih", api_key, version, cid, -1) + b"\x00"
    return struct.pack(">i", len(body)) + body


def test_unknown_version_and_bad_body_do_not_crash():
    dec = decoder_for("kafka")
    got = dec.decode(C2S, _raw_request_header(3, 999, 1))
    assert got.summary["api"] == "Metadata" and "no kio schema" in got.summary["error"]
    got = dec.decode(C2S, _raw_request_header(3, 12, 2))
    assert "error" in got.summary and got.summary["correlation_id"] == 2
    got = dec.decode(C2S, _raw_request_header(32000, 0, 3))
    assert got.summary["api"] == "Unknown32000" and "error" in got.summary
    dumps(got.summary)


def test_encode_decode_helpers_round_trip_and_frame():
    raw = encode_response(18, 3, 77, api_versions_response())
    assert KafkaFramer(S2C).feed(raw)[0].raw == raw
    assert decode_response_body(18, 3, raw) == api_versions_response()
    req = encode_request(
        18, 3, 5, None, ApiVersionsRequest(client_software_name="x", client_software_version="1")
    )
    assert decode_request(req).header.client_id is None
    with pytest.raises(KafkaCodecError):
        encode_response(18, 2, 1, api_versions_response())  # v3 entity for v2
    with pytest.raises(KafkaCodecError):
        decode_response_body(18, 3, raw[:-3])


def test_every_kio_api_version_survives_garbage_bodies():
    """Valid headers for every API/version kio knows, random bodies: summaries, never a crash
    (kio alone aborts the process on some of these: huge declared array lengths)."""
    import random

    from kio.schema.index import api_key_map, schema_name_map

    rng = random.Random(7)
    for _round in range(3):
        for key, name in api_key_map.items():
            for version in schema_name_map[name]:
                dec = decoder_for("kafka")
                tail = bytes(
                    rng.choice([0, 0x7F, 0x80, 0xFF, rng.randrange(256)]) for _ in range(60)
                )
                body = struct.pack(">hhih", key, version, 5, 1) + b"c" + tail
                dumps(dec.decode(C2S, struct.pack(">i", len(body)) + body).summary)
                if 5 not in dec.pending:  # the request decoded as acks=0 Produce
                    continue
                resp = struct.pack(">ii", 4 + len(tail), 5) + tail
                out = dec.decode(S2C, resp)
                assert out.summary["api_key"] == key
                dumps(out.summary)


# --- SaslHandshake v0: SASL tokens without a Kafka header (KIP-43) ------------------------------


def sasl_handshake(dec, cid: int, mechanism: str, error: ErrorCode = ErrorCode.none, v: int = 0):
    """A SaslHandshake request and its answer through `dec`; returns the response summary."""
    from kio.schema.sasl_handshake.v0 import request as req_v0
    from kio.schema.sasl_handshake.v0 import response as resp_v0
    from kio.schema.sasl_handshake.v1 import request as req_v1
    from kio.schema.sasl_handshake.v1 import response as resp_v1

    req, resp = (req_v0, resp_v0) if v == 0 else (req_v1, resp_v1)
    got = dec.decode(
        C2S, encode_request(17, v, cid, "old", req.SaslHandshakeRequest(mechanism=mechanism))
    )
    assert got.summary["api"] == "SaslHandshake" and "error" not in got.summary
    body = resp.SaslHandshakeResponse(error_code=error, mechanisms=(mechanism,))
    return dec.decode(S2C, encode_response(17, v, cid, body)).summary


def sized(token: bytes) -> bytes:
    return struct.pack(">i", len(token)) + token


def api_versions_request(cid: int) -> bytes:
    return encode_request(
        18, 3, cid, "old", ApiVersionsRequest(client_software_name="k", client_software_version="1")
    )


def raw_token(mechanism: str, exchange: int, size: int) -> dict:
    return {"api": "SaslRawToken", "sasl_mechanism": mechanism, "exchange": exchange, "size": size}


def test_sasl_v0_plain_token_and_empty_reply_then_requests_again():
    dec = decoder_for("kafka")
    assert sasl_handshake(dec, 1, "PLAIN")["error_code"] == 0
    assert dec.raw_sasl
    token = b"\x00alice\x00pw-0123456789"  # read as a header this is "Unknown97 v27753"
    got = dec.decode(C2S, sized(token))
    assert got.summary == raw_token("PLAIN", 1, len(token)) and got.body is None
    (empty,) = KafkaFramer(S2C).feed(sized(b""))  # the broker's success: a size-0 frame
    assert dec.decode(S2C, empty.raw).summary == raw_token("PLAIN", 1, 0)
    assert not dec.raw_sasl  # one exchange for PLAIN
    assert dec.decode(C2S, api_versions_request(2)).summary["api"] == "ApiVersions"
    assert (
        dec.decode(S2C, encode_response(18, 3, 2, api_versions_response())).summary["error_code"]
        == 0
    )
    assert dec.pending == {}


def test_sasl_v0_scram_two_exchanges():
    dec = decoder_for("kafka")
    sasl_handshake(dec, 7, "SCRAM-SHA-256")
    steps = [
        (C2S, b"n,,n=alice,r=cnonce"),
        (S2C, b"r=cnonceSNONCE,s=c2FsdA==,i=4096"),
        (C2S, b"c=biws,r=cnonceSNONCE,p=cHJvb2Y="),
        (S2C, b"v=c2lnbmF0dXJl"),
    ]
    for n, (direction, token) in enumerate(steps):
        assert dec.raw_sasl
        got = dec.decode(direction, sized(token))
        assert got.summary == raw_token("SCRAM-SHA-256", n // 2 + 1, len(token))
    assert not dec.raw_sasl
    assert dec.decode(C2S, api_versions_request(8)).summary["api"] == "ApiVersions"


def test_no_raw_mode_after_a_refused_or_v1_handshake():
    dec = decoder_for("kafka")
    assert sasl_handshake(dec, 1, "PLAIN", ErrorCode.unsupported_sasl_mechanism)["error_code"]
    assert not dec.raw_sasl
    sasl_handshake(dec, 2, "PLAIN", v=1)  # v1: tokens come in SaslAuthenticate requests
    assert not dec.raw_sasl
    got = dec.decode(C2S, sized(b"\x00alice\x00pw"))
    assert got.summary["api"] != "SaslRawToken" and "error" in got.summary


def test_sasl_v0_unknown_mechanism_ends_at_the_first_whole_request():
    dec = decoder_for("kafka")
    sasl_handshake(dec, 1, "X-CUSTOM")
    for n in (1, 2, 3):  # tokens, however many, and whatever they look like
        assert dec.decode(C2S, sized(b"opaque-%d" % n)).summary["exchange"] == n
        assert dec.decode(S2C, sized(b"")).summary == raw_token("X-CUSTOM", n, 0)
    # a token whose first bytes look like a known API header is still a token
    assert dec.decode(C2S, _raw_request_header(3, 12, 4)).summary["api"] == "SaslRawToken"
    assert dec.decode(C2S, api_versions_request(5)).summary["api"] == "ApiVersions"
    assert not dec.raw_sasl and dec.pending == {5: (18, 3)}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512", "X-CUSTOM"])
def test_raw_sasl_mode_never_raises_on_garbage(mechanism):
    import random

    rng = random.Random(mechanism)
    for _round in range(50):
        dec = decoder_for("kafka")
        sasl_handshake(dec, 1, mechanism)
        for _ in range(6):
            direction = rng.choice([C2S, S2C])
            frame = sized(bytes(rng.randrange(256) for _ in range(rng.randrange(40))))
            dumps(dec.decode(direction, frame).summary)


def test_a_repeated_small_body_is_read_once_and_a_bad_one_fails_every_time(monkeypatch):
    # Clients repeat small requests and brokers their answers (ApiVersions, Metadata, polls):
    # the same bytes as the same class read once; kio's entities are frozen, so sharing is safe.
    from rrlab.rr.protocols.kafka import codec as codec_module

    body = ApiVersionsResponse(
        error_code=ErrorCode.none,
        api_keys=(ApiVersion(api_key=i16(18), min_version=i16(0), max_version=i16(77)),),
        throttle_time=datetime.timedelta(milliseconds=7),
    )
    checks = []
    real = codec_module.kafka_guard.check
    monkeypatch.setattr(codec_module.kafka_guard, "check", lambda *a: checks.append(1) or real(*a))
    first = codec_module.decode_response_body(18, 3, codec_module.encode_response(18, 3, 1, body))
    again = codec_module.decode_response_body(18, 3, codec_module.encode_response(18, 3, 2, body))
    assert first == again == body
    assert len(checks) == 3  # the two headers (each its own correlation id), one body
    bad = codec_module.encode_response(18, 3, 3, body)[:-3] + b"\xff\xff\xff"
    for _ in range(2):
        with pytest.raises(codec_module.KafkaCodecError):
            codec_module.decode_response_body(18, 3, bad)


def test_a_full_correlation_table_forgets_its_oldest_requests_first():
    """A client that never reads its answers (or an acks=0 producer's ids) fills the tracker's
    tables: each new request then drops the oldest one, and the newest stay pairable."""
    from rrlab.rr.protocols.kafka import track

    tracker = track.CorrelationTracker()
    extra = 10
    for cid in range(track.MAX_PENDING + extra):
        tracker.request(18, 3, cid)
        tracker.request(0, 3, 100_000 + cid, answered=False)
    pending = tracker.pending
    assert len(pending) == track.MAX_PENDING
    assert min(pending) == extra and max(pending) == track.MAX_PENDING + extra - 1
    assert tracker.peek(extra - 1) is None and tracker.peek(extra) == (18, 3)
    newest_unanswered = 100_000 + track.MAX_PENDING + extra - 1
    assert tracker.peek(newest_unanswered) == (0, 3)
    assert tracker.peek(100_000 + track.MAX_PENDING + extra - 1 - track.MAX_UNANSWERED) is None
