"""AMQP frames that differ only in their delivery tag are spliced from a template
(`rr.protocols.amqp.codec.DeliveryTagSummaries`): Basic.Ack both ways (a consumer's acks, a
broker's publisher confirms) and Basic.Deliver from the server. The recorder writes the same
lines as decoding every frame, the decoder ends up as decoding would leave it, and a frame that
may hold a credential is never spliced."""

from __future__ import annotations

import struct
from pathlib import Path

import pamqp.frame
import pytest
from committed_cassettes import committed_cassettes
from pamqp import body, commands, header

from rrlab.rr.cassette import CassetteReader, CassetteWriter
from rrlab.rr.cassette.format import encode_frame_line, summary_json
from rrlab.rr.codecs import Direction, JsonSummary, Proto
from rrlab.rr.protocols import protocol_for
from rrlab.rr.protocols.amqp.codec import PROTOCOL_HEADER, DeliveryTagSummaries
from rrlab.rr.record import recorder_for
from rrlab.rr.redact import PLACEHOLDER

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "golden" / "amqp-rabbitmq"
C2S, S2C = Direction.C2S, Direction.S2C
AMQP = protocol_for(Proto.AMQP)
BIG_TAGS = (2**31, 2**32 + 1, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1)


def amqp_cassettes() -> list[Path]:
    return committed_cassettes("amqp")


def ack(tag: int, channel: int = 1, bits: int = 0) -> bytes:
    """A Basic.Ack frame as on the wire (`bits`: the whole bit octet; multiple is bit 0)."""
    return struct.pack(">BHIHHQB", 1, channel, 13, 60, 80, tag % 2**64, bits) + b"\xce"


def deliver(tag: int, channel: int = 1, consumer_tag: str = "ctag") -> bytes:
    method = commands.Basic.Deliver(consumer_tag, tag, False, "x", "q")
    return pamqp.frame.marshal(method, channel)


def content(payload: bytes, channel: int = 1) -> list[bytes]:
    props = commands.Basic.Properties()
    return [
        pamqp.frame.marshal(header.ContentHeader(0, len(payload), props), channel),
        pamqp.frame.marshal(body.ContentBody(payload), channel),
    ]


def line(direction: Direction, frame) -> bytes:
    return encode_frame_line(1, direction, Proto.AMQP, *frame[:3])


def decoder_state(connection) -> dict:
    return dict(vars(connection.decoder)) if hasattr(connection.decoder, "__dict__") else {}


def both(frames: list[tuple[Direction, bytes]]) -> tuple[list, dict[tuple[Direction, str], int]]:
    """Feed `frames` (one connection, in stream order) to a connection that splices and one
    that decodes every frame; assert the same line, bytes and decoder state after each. Returns
    the spliced connection's frames and how many were spliced, by direction and method."""
    spliced, decoded = AMQP.connection(), AMQP.connection()
    decoded._splice = None
    out, counts = [], {}
    for direction, raw in frames:
        (a,) = spliced.process(direction, [raw])
        (b,) = decoded.process(direction, [raw])
        assert line(direction, a) == line(direction, b), (direction, raw[:24])
        assert (a.raw, a.redacted, a.wire) == (b.raw, b.redacted, b.wire)
        assert decoder_state(spliced) == decoder_state(decoded)
        if isinstance(a.summary, JsonSummary):
            assert a.summary.json == summary_json(b.summary)
            assert a.summary == b.summary and list(a.summary) == list(b.summary)
            assert list(a.summary["args"]) == list(b.summary["args"])
            assert b.decoded.body is None and a.decoded.body is None  # the fast path's
            assert a.decoded.extra == b.decoded.extra == {}
            key = (direction, a.summary["method"])
            counts[key] = counts.get(key, 0) + 1
        out.append(a)
    return out, counts


@pytest.mark.parametrize("path", amqp_cassettes(), ids=lambda p: p.name)
def test_committed_cassettes_record_the_same_with_the_splice(path):
    with CassetteReader.open(path) as reader:
        by_conn: dict[int, list[tuple[Direction, bytes]]] = {}
        expected: dict[tuple[Direction, str], int] = {}
        for frame in reader.frames():
            if frame.proto is Proto.AMQP:
                by_conn.setdefault(frame.conn, []).append((frame.dir, frame.raw))
                method = frame.summary.get("method")
                if method == "Basic.Ack" or (method == "Basic.Deliver" and frame.dir is S2C):
                    expected[(frame.dir, method)] = expected.get((frame.dir, method), 0) + 1
    assert by_conn
    counts: dict[tuple[Direction, str], int] = {}
    for frames in by_conn.values():
        for key, n in both(frames)[1].items():
            counts[key] = counts.get(key, 0) + n
    assert counts == expected  # every ack both ways and every delivery: spliced


def test_the_committed_cassettes_hold_acks_both_ways():
    # what the test above stands on: consumer acks (c2s) and publisher confirms (s2c)
    seen = set()
    for path in amqp_cassettes():
        with CassetteReader.open(path) as reader:
            for frame in reader.frames():
                if frame.proto is Proto.AMQP and frame.summary.get("method") == "Basic.Ack":
                    seen.add(frame.dir)
    assert seen == {C2S, S2C}


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.bin")), ids=lambda p: p.name)
def test_golden_streams_record_the_same_with_the_splice(path):
    direction = Direction(path.name.split(".")[1])
    stream = path.read_bytes()
    frames = AMQP.connection().split(direction, stream)
    both([(direction, raw) for raw in frames])


@pytest.mark.parametrize("direction", [C2S, S2C])
def test_edge_acks_record_the_same_with_the_splice(direction):
    frames = [(direction, PROTOCOL_HEADER)] if direction is C2S else []
    for bits in (0, 1, 2, 3, 0xFE, 0xFF):  # multiple is bit 0; the others are reserved
        for tag in (0, 1, 9, *BIG_TAGS):
            for channel in (0, 1, 2, 255, 256, 65535):
                frames.append((direction, ack(tag, channel, bits)))
    frames += frames[1:]  # again, each from its template now
    _out, counts = both(frames)
    assert counts == {(direction, "Basic.Ack"): len(frames) - (direction is C2S)}


def test_tags_that_differ_in_sign_or_digits_keep_their_own_digits():
    # one template per (channel, bits): the tag is the only thing that changes
    frames = [(C2S, ack(tag)) for tag in (5, 2**64 - 1, 0, 2**63, 10**18, 7)]
    out, _counts = both(frames)
    tags = [f.summary["args"]["delivery_tag"] for f in out]
    assert tags == [5, -1, 0, -(2**63), 10**18, 7]  # signed long long, as pamqp reads it
    assert [f.summary.json for f in out] == [
        b'{"args":{"delivery_tag":%d,"multiple":false},"channel":1,"frame":"method",'
        b'"method":"Basic.Ack"}' % tag
        for tag in tags
    ]


def test_multiple_and_channel_come_from_each_frame():
    frames = [
        (S2C, ack(1, channel=1, bits=0)),
        (S2C, ack(2, channel=1, bits=1)),
        (S2C, ack(3, channel=2, bits=0)),
        (S2C, ack(4, channel=2, bits=1)),
        (S2C, ack(5, channel=1, bits=0)),
        (S2C, ack(6, channel=2, bits=1)),
    ]
    out, counts = both(frames)
    assert [(f.summary["channel"], f.summary["args"]["multiple"]) for f in out] == [
        (1, False),
        (1, True),
        (2, False),
        (2, True),
        (1, False),
        (2, True),
    ]
    assert counts == {(S2C, "Basic.Ack"): 6}


def test_an_ack_between_a_delivery_and_its_content_on_another_channel():
    # content header and body expected on channel 1 while channel 2 acks (and confirms)
    s2c = [deliver(1, 1), *content(b"one", 1)]
    frames = [(C2S, PROTOCOL_HEADER)]
    frames += [(S2C, s2c[0]), (C2S, ack(7, 2)), (S2C, ack(3, 2)), (S2C, s2c[1])]
    frames += [(C2S, ack(8, 2, 1)), (S2C, ack(4, 2)), (S2C, s2c[2]), (C2S, ack(1, 1))]
    frames += [(S2C, deliver(2, 1)), (S2C, ack(5, 1)), *((S2C, f) for f in content(b"two", 1))]
    out, counts = both(frames)
    assert counts == {(C2S, "Basic.Ack"): 3, (S2C, "Basic.Ack"): 3, (S2C, "Basic.Deliver"): 2}
    assert [f.summary.get("frame") for f in out[-3:]] == ["method", "header", "body"]


def test_frames_not_spliced_are_decoded():
    long_ack = ack(3)[:3] + struct.pack(">I", 14) + ack(3)[7:-1] + b"\x00\xce"  # 14-byte payload
    bad_size = ack(3)[:3] + struct.pack(">I", 12) + ack(3)[7:]  # size says 12, 13 are there
    bad_end = ack(3)[:-1] + b"\x00"
    nack = pamqp.frame.marshal(commands.Basic.Nack(3, False, True), 1)
    reject = pamqp.frame.marshal(commands.Basic.Reject(3, True), 1)
    header_like = b"\x02" + ack(3)[1:]  # a content header frame with an ack's bytes after
    c2s_deliver = deliver(4)  # a client never sends one: decoded, as before
    frames = [(C2S, PROTOCOL_HEADER), (C2S, ack(1)), (S2C, ack(1))]
    for raw in (long_ack, bad_size, bad_end, nack, reject, header_like):
        frames += [(C2S, raw), (S2C, raw)]
    frames.append((C2S, c2s_deliver))
    out, counts = both(frames)
    assert counts == {(C2S, "Basic.Ack"): 1, (S2C, "Basic.Ack"): 1}
    assert not isinstance(out[-1].summary, JsonSummary)
    splicer = DeliveryTagSummaries(deliveries=True)
    for raw in (long_ack, bad_size, bad_end, nack, reject, header_like, b"", PROTOCOL_HEADER):
        assert splicer(raw) is None


def test_acks_are_neither_decoded_nor_encoded():
    connection = AMQP.connection()
    calls: list[bytes] = []
    decode = connection.decoder.decode
    connection.decoder.decode = lambda direction, raw: calls.append(raw) or decode(direction, raw)
    c2s = connection.process(C2S, [ack(tag, 1, tag % 5 == 0) for tag in range(1, 201)])
    s2c = connection.process(S2C, [ack(tag, 3) for tag in range(1, 201)])
    assert calls == []  # the template comes from the fast path's reader, not a decode
    for frames in (c2s, s2c):
        assert all(isinstance(f.summary, JsonSummary) for f in frames)
        assert [f.summary["args"]["delivery_tag"] for f in frames] == list(range(1, 201))
    assert [f.summary["args"]["multiple"] for f in c2s[:5]] == [False] * 4 + [True]
    with pytest.raises(TypeError, match="read-only"):
        c2s[0].summary["args"] = {}


def test_credentials_are_never_spliced():
    def start_ok(password: str) -> bytes:
        method = commands.Connection.StartOk(
            client_properties={"product": "pika"}, mechanism="PLAIN", response=f"\0u\0{password}"
        )
        return pamqp.frame.marshal(method, 0)

    secure_ok = pamqp.frame.marshal(commands.Connection.SecureOk(response="\0u\0secret-3"), 0)
    secrets = [start_ok("secret-1"), start_ok("secret-2"), secure_ok]
    for deliveries in (False, True):
        splicer = DeliveryTagSummaries(deliveries=deliveries)
        assert all(splicer(raw) is None for raw in secrets)
    frames = [(C2S, PROTOCOL_HEADER), (C2S, ack(1))] + [(C2S, raw) for raw in secrets]
    out, _counts = both(frames + [(C2S, ack(2))])
    for frame in out[2:5]:
        assert frame.redacted and PLACEHOLDER in frame.raw and b"secret" not in frame.raw


def test_spliced_acks_reach_the_cassette_as_decoded_ones(tmp_path):
    # through the recorder as the proxy wires it: a consumer acking on two channels while
    # deliveries arrive, a publisher's confirms, both ways in uneven chunks
    s2c, c2s = [], [PROTOCOL_HEADER]
    for tag in range(1, 121):
        channel = 1 + tag % 2
        s2c += [deliver(tag, channel), *content(b"m%d" % tag, channel), ack(tag, 3, tag % 9 == 0)]
        c2s.append(ack(tag, channel, tag % 10 == 0))
    streams = {C2S: b"".join(c2s), S2C: b"".join(s2c)}
    writer = CassetteWriter.create(tmp_path / "c")
    conn = writer.open_connection("amqp", "127.0.0.1:1", "127.0.0.1:2")
    recorder = recorder_for(writer, conn, "amqp")
    forwarded = {C2S: [], S2C: []}
    for start in range(0, max(map(len, streams.values())), 777):
        for direction, stream in streams.items():
            recorder.feed(direction, stream[start : start + 777], forwarded[direction].append)
    writer.finalize()
    assert {d: b"".join(chunks) for d, chunks in forwarded.items()} == streams
    decoder = AMQP.decoder()
    with CassetteReader.open(tmp_path / "c") as reader:
        recorded = list(reader.frames())
    for direction, stream in streams.items():
        assert b"".join(f.raw for f in recorded if f.dir is direction) == stream
    assert [f.summary for f in recorded] == [decoder.decode(f.dir, f.raw).summary for f in recorded]
    # the lines themselves, as a connection that decodes every frame makes them
    plain = AMQP.connection()
    plain._splice = None
    expected = []
    for f in recorded:
        (frame,) = plain.process(f.dir, [f.raw])
        expected.append(encode_frame_line(conn, f.dir, Proto.AMQP, *frame[:3]))
    written = (tmp_path / "c" / "frames.jsonl").read_bytes().splitlines(keepends=True)
    assert [w for w in written if b'"amqp"' in w] == expected
