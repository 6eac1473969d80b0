"""Framer properties: chunking-independence, only FramingError on garbage, bounded memory."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rrlab.rr.canonical import dumps
from rrlab.rr.codecs import Direction, Frame, FramingError, Proto
from rrlab.rr.protocols import decoder_for, framer_for
from rrlab.rr.protocols.amqp.codec import PROTOCOL_HEADER, AmqpFramer
from rrlab.rr.protocols.kafka.codec import KafkaFramer
from rrlab.rr.protocols.mqtt.codec import MqttFramer, encode_remaining_length

SETTINGS = settings(max_examples=200, deadline=None)
GIB2 = 2 * 1024 * 1024 * 1024


def kafka_frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def amqp_frame(ftype: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + b"\xce"


def mqtt_frame(ptype: int, flags: int, body: bytes) -> bytes:
    return bytes([ptype << 4 | flags]) + encode_remaining_length(len(body)) + body


# any size from 0: a raw SASL token (after SaslHandshake v0) has no header, and may be empty
kafka_frames = st.lists(st.binary(max_size=300).map(kafka_frame), max_size=8)
amqp_frames = st.lists(
    st.builds(
        amqp_frame,
        st.sampled_from([1, 2, 3, 8]),
        st.integers(0, 65535),
        st.binary(max_size=300),
    ),
    max_size=8,
)
mqtt_frames = st.lists(
    st.builds(
        mqtt_frame,
        st.integers(1, 15),
        st.integers(0, 15),
        st.one_of(st.binary(max_size=200), st.binary(min_size=128, max_size=20000)),
    ),
    max_size=6,
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def run(framer, chunks: list[bytes]) -> list[tuple[bytes, int]]:
    out = []
    for chunk in chunks:
        out += [(f.raw, f.offset) for f in framer.feed(chunk)]
    return out


def expected(frames: list[bytes], start: int = 0) -> list[tuple[bytes, int]]:
    out, off = [], start
    for raw in frames:
        out.append((raw, off))
        off += len(raw)
    return out


@SETTINGS
@given(kafka_frames, st.lists(st.integers(0, 10**6), max_size=20), st.sampled_from(Direction))
def test_kafka_any_chunking_same_frames(frames, cuts, direction):
    stream = b"".join(frames)
    framer = KafkaFramer(direction)
    assert run(framer, chunked(stream, cuts)) == expected(frames)
    assert framer.buffered == 0


@SETTINGS
@given(amqp_frames, st.lists(st.integers(0, 10**6), max_size=20))
def test_amqp_c2s_any_chunking_same_frames(frames, cuts):
    stream = PROTOCOL_HEADER + b"".join(frames)
    got = run(AmqpFramer(Direction.C2S), chunked(stream, cuts))
    assert got == expected([PROTOCOL_HEADER, *frames])


@SETTINGS
@given(amqp_frames, st.lists(st.integers(0, 10**6), max_size=20))
def test_amqp_s2c_any_chunking_same_frames(frames, cuts):
    got = run(AmqpFramer(Direction.S2C), chunked(b"".join(frames), cuts))
    assert got == expected(frames)


@SETTINGS
@given(mqtt_frames, st.lists(st.integers(0, 10**6), max_size=20), st.sampled_from(Direction))
def test_mqtt_any_chunking_same_frames(frames, cuts, direction):
    got = run(MqttFramer(direction), chunked(b"".join(frames), cuts))
    assert got == expected(frames)


large_kafka_frames = st.lists(
    st.one_of(
        st.binary(max_size=50).map(kafka_frame),
        st.integers(60_000, 200_000).map(lambda n: kafka_frame(bytes([n % 251]) * n)),
    ),
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(
    large_kafka_frames,
    st.lists(st.integers(0, 10**6), max_size=30),
    st.lists(st.sampled_from([bytes, bytearray, memoryview]), min_size=1, max_size=3),
)
def test_large_frames_any_chunking_same_frames_offsets_and_buffered(frames, cuts, kinds):
    """Large frames (kept as their chunks came, joined once) frame like small ones: the same
    frames, and at every step the same offset and buffered count as the stream implies."""
    stream = b"".join(frames)
    framer = KafkaFramer(Direction.S2C)
    got, fed = [], 0
    for i, chunk in enumerate(chunked(stream, cuts)):
        got += framer.feed_raws(kinds[i % len(kinds)](chunk))
        fed += len(chunk)
        assert framer.offset == sum(map(len, got))
        assert framer.buffered == fed - framer.offset
        assert bytes(framer.held()) == stream[framer.offset : fed]
    assert got == frames and all(type(raw) is bytes for raw in got)
    assert framer.buffered == 0


def test_a_large_frame_is_copied_once():
    """The chunks of a large frame are held as they came and joined once when it completes:
    the framer's own memory peaks near one frame, not two (append, then cut out)."""
    import tracemalloc

    big = kafka_frame(b"z" * 1_000_000)
    chunks = [big[i : i + 65536] for i in range(0, len(big), 65536)]
    framer = KafkaFramer(Direction.S2C)
    tracemalloc.start()
    try:
        out = [raw for chunk in chunks for raw in framer.feed_raws(chunk)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out == [big]
    assert peak < 1.3 * len(big), peak


def test_a_bad_frame_after_a_large_one_keeps_the_large_one_on_the_error():
    big = kafka_frame(b"q" * 100_000)
    framer = KafkaFramer(Direction.S2C, max_frame_bytes=200_000)
    assert framer.feed_raws(big[:70_000]) == [] and framer.feed_raws(big[70_000:90_000]) == []
    with pytest.raises(FramingError) as caught:
        framer.feed_raws(big[90_000:] + struct.pack(">i", 300_000))
    assert [(f.raw, f.offset) for f in caught.value.frames] == [(big, 0)]


@SETTINGS
@given(
    kafka_frames,
    st.lists(st.integers(0, 10**6), max_size=20),
    st.lists(st.sampled_from([bytes, bytearray, memoryview]), min_size=1, max_size=5),
)
def test_feed_raws_any_chunking_and_chunk_type(frames, cuts, kinds):
    framer = KafkaFramer(Direction.S2C)
    got, offsets = [], []
    for i, chunk in enumerate(chunked(b"".join(frames), cuts)):
        offsets.append(framer.offset)
        got += framer.feed_raws(kinds[i % len(kinds)](chunk))
    assert got == frames and all(type(raw) is bytes for raw in got)
    assert framer.buffered == 0 and framer.offset == sum(map(len, frames))


def test_a_chunk_that_is_one_frame_is_not_copied():
    frame = kafka_frame(b"x" * 1000)
    framer = KafkaFramer(Direction.C2S)
    (raw,) = framer.feed_raws(frame)
    assert raw is frame
    big = kafka_frame(b"y" * 100_000)  # across many reads: appended, cut out once
    pieces = [framer.feed_raws(big[i : i + 4096]) for i in range(0, len(big), 4096)]
    assert [p for p in pieces if p] == [[big]] and framer.offset == len(frame) + len(big)


@SETTINGS
@given(
    st.sampled_from(Proto),
    st.sampled_from(Direction),
    st.lists(st.binary(max_size=64), max_size=10),
)
def test_random_bytes_raise_only_framing_error(proto, direction, chunks):
    framer = framer_for(proto, direction, max_frame_bytes=4096)
    try:
        for chunk in chunks:
            framer.feed(chunk)
    except FramingError as err:
        assert err.proto == proto.value and err.direction == direction.value
        assert err.offset >= 0
    assert framer.buffered <= 4096 + 8


@pytest.mark.parametrize(
    ("proto", "direction", "header"),
    [
        (Proto.KAFKA, Direction.C2S, struct.pack(">i", GIB2 - 1)),
        (Proto.KAFKA, Direction.S2C, struct.pack(">I", GIB2)),  # negative as int32
        (Proto.AMQP, Direction.C2S, PROTOCOL_HEADER + struct.pack(">BHI", 1, 0, GIB2)),
        (Proto.AMQP, Direction.S2C, struct.pack(">BHI", 3, 1, 0xFFFFFFFF)),
        (Proto.MQTT, Direction.C2S, b"\x30\xff\xff\xff\x7f"),
    ],
)
def test_huge_declared_size_refused_before_buffering(proto, direction, header):
    framer = framer_for(proto, direction)
    with pytest.raises(FramingError) as info:
        framer.feed(header)
    assert framer.buffered == 0
    assert info.value.offset in (0, 8)
    with pytest.raises(FramingError):  # a broken stream stays broken
        framer.feed(b"\x00" * 16)


def test_error_names_protocol_direction_offset():
    framer = KafkaFramer(Direction.S2C)
    framer.feed(kafka_frame(b"abcd"))
    with pytest.raises(FramingError) as info:
        framer.feed(struct.pack(">i", -5))
    assert (info.value.proto, info.value.direction, info.value.offset) == ("kafka", "s2c", 8)
    assert "kafka s2c stream, byte offset 8" in str(info.value)


@pytest.mark.parametrize(
    ("proto", "direction", "lead", "good", "garbage"),
    [
        (Proto.KAFKA, Direction.C2S, b"", kafka_frame(b"abcdefgh"), struct.pack(">i", -5)),
        (Proto.KAFKA, Direction.S2C, b"", kafka_frame(b"abcd"), struct.pack(">i", GIB2 - 1)),
        (Proto.AMQP, Direction.C2S, PROTOCOL_HEADER, amqp_frame(8, 0, b""), b"\x07junk"),
        (
            Proto.AMQP,
            Direction.S2C,
            b"",
            amqp_frame(1, 0, b"abc"),
            amqp_frame(3, 1, b"x")[:-1] + b"!",
        ),
        (Proto.MQTT, Direction.C2S, b"", mqtt_frame(8, 2, b"\x00\x01\x00\x01t\x00"), b"\x00\x00"),
        (Proto.MQTT, Direction.S2C, b"", mqtt_frame(3, 0, b"\x00\x01tpayload"), b"\x00\x00"),
    ],
)
def test_frames_before_the_bad_byte_ride_on_the_error(proto, direction, lead, good, garbage):
    framer = framer_for(proto, direction)
    assert framer.feed(lead + good[:3]) == ([Frame(lead, 0)] if lead else [])
    start = len(lead)
    # one chunk: the rest of a frame begun earlier, a whole frame, then garbage
    with pytest.raises(FramingError) as info:
        framer.feed(good[3:] + good + garbage)
    assert info.value.frames == [Frame(good, start), Frame(good, start + len(good))]
    assert info.value.offset >= start + 2 * len(good)
    with pytest.raises(FramingError) as again:  # still broken; those frames are not repeated
        framer.feed(good)
    assert again.value.frames == [] and again.value.offset == info.value.offset


def test_framing_error_without_earlier_frames_has_none():
    with pytest.raises(FramingError, match="size -1 is negative") as info:
        KafkaFramer(Direction.C2S).feed(struct.pack(">i", -1))
    assert info.value.frames == []


def test_kafka_frames_shorter_than_a_header():
    """A broker's raw SASL PLAIN success is an empty frame; a raw token can be a byte or two."""
    framer = KafkaFramer(Direction.S2C)
    stream = kafka_frame(b"") + kafka_frame(b"x") + kafka_frame(b"abcd")
    assert framer.feed(stream[:3]) == [] and framer.buffered == 3
    assert run(framer, [stream[3:]]) == expected(
        [kafka_frame(b""), kafka_frame(b"x"), kafka_frame(b"abcd")]
    )
    assert framer.buffered == 0
    for size in (-1, -(2**31)):  # only negative sizes and sizes past the budget are refused
        with pytest.raises(FramingError, match="negative"):
            KafkaFramer(Direction.C2S).feed(kafka_frame(b"ok") + struct.pack(">i", size))


def test_kafka_budget_is_configurable():
    framer = KafkaFramer(Direction.C2S, max_frame_bytes=100)
    assert framer.feed(kafka_frame(b"x" * 96))[0].raw[4:] == b"x" * 96
    with pytest.raises(FramingError, match="budget of 100"):
        framer.feed(kafka_frame(b"x" * 97))


def test_amqp_other_version_header_is_framed_and_non_amqp_refused():
    """Another version's header is the client's to send and the broker's to refuse (it answers
    with its own header and closes): framed, so the proxy forwards and records both."""
    for other in (b"AMQP\x00\x00\x09\x00", b"AMQP\x01\x01\x00\x0a"):
        (frame,) = AmqpFramer(Direction.C2S).feed(other)
        assert frame.raw == other
    with pytest.raises(FramingError, match="protocol header") as info:
        AmqpFramer(Direction.C2S).feed(b"AMQX\x00\x00\x09\x01")
    assert info.value.offset == 0
    with pytest.raises(FramingError, match="protocol header"):  # refused on the first bad byte
        AmqpFramer(Direction.C2S).feed(b"GET")


def test_amqp_bad_frame_end_and_unknown_type():
    good = amqp_frame(1, 0, b"abc")
    with pytest.raises(FramingError, match="frame end") as info:
        AmqpFramer(Direction.S2C).feed(good + good[:-1] + b"\x00")
    assert info.value.offset == 2 * len(good) - 1
    with pytest.raises(FramingError, match="unknown frame type 7") as info:
        AmqpFramer(Direction.S2C).feed(good + b"\x07")
    assert info.value.offset == len(good)


def test_amqp_s2c_version_refusal_is_framed():
    assert AmqpFramer(Direction.S2C).feed(PROTOCOL_HEADER)[0].raw == PROTOCOL_HEADER


def test_mqtt_fifth_length_byte_and_type_zero():
    with pytest.raises(FramingError, match="longer than 4 bytes"):
        MqttFramer(Direction.C2S).feed(b"\x30\x80\x80\x80\x80\x01")
    with pytest.raises(FramingError, match="type 0"):
        MqttFramer(Direction.C2S).feed(b"\x00\x00")


def test_mqtt_max_remaining_length_fits_four_bytes():
    framer = MqttFramer(Direction.C2S, max_frame_bytes=300_000_000)
    assert framer.feed(b"\x30\xff\xff\xff\x7f") == []
    assert framer.buffered == 5


@SETTINGS
@given(
    st.sampled_from(Proto),
    st.sampled_from(Direction),
    st.lists(
        st.one_of(kafka_frames.map(b"".join), amqp_frames.map(b"".join), mqtt_frames.map(b"".join)),
        max_size=3,
    ),
)
def test_decoders_never_raise_on_framed_garbage(proto, direction, parts):
    framer = framer_for(proto, direction)
    decoder = decoder_for(proto)
    stream = PROTOCOL_HEADER if proto is Proto.AMQP and direction is Direction.C2S else b""
    try:
        frames = framer.feed(stream + b"".join(parts))
    except FramingError:
        return
    for frame in frames:
        dumps(decoder.decode(direction, frame.raw).summary)


def test_amqp_fast_path_leaves_every_refusal_to_the_general_path():
    ok = amqp_frame(3, 1, b"x" * 10)
    for bad, reason in [
        (amqp_frame(3, 1, b"y" * 200), "exceeds the frame budget"),  # whole, yet over budget
        (amqp_frame(3, 1, b"z")[:-1] + b"\x00", "frame end octet"),
        (b"\x05" + amqp_frame(3, 1, b"z")[1:], "unknown frame type"),
    ]:
        framer = AmqpFramer(Direction.S2C, max_frame_bytes=100)
        with pytest.raises(FramingError, match=reason) as info:
            framer.feed(ok + ok + bad + ok)
        assert [f.raw for f in info.value.frames] == [ok, ok]
        assert info.value.offset >= 2 * len(ok)
