"""The recorder's hot path changes how much work a frame costs, never what is recorded.

The memo of repeating AMQP frames (`WireProtocol.frame_memo_key`): the same summaries, bytes and
lines as decoding every frame, each repeating frame decoded once, and a frame that may hold a
credential never taken from the memo. Large frames are base64-encoded as their bytes arrive:
the same line, and the chunk that completes one has only its own bytes left to encode."""

from __future__ import annotations

from pathlib import Path

import pamqp.frame
import pytest
from pamqp import body, commands, header

from rrlab.rr.cassette.format import EncodedSummary, encode_frame_line, summary_json
from rrlab.rr.cassette.writer import CassetteWriter
from rrlab.rr.codecs import Direction, JsonSummary, Proto
from rrlab.rr.protocols import protocol_for
from rrlab.rr.protocols.amqp.codec import memo_key
from rrlab.rr.record import recorder_for
from rrlab.rr.redact import PLACEHOLDER

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "amqp-rabbitmq"
C2S, S2C = Direction.C2S, Direction.S2C
AMQP = protocol_for(Proto.AMQP)


def publishes(count: int, channel: int = 1) -> bytes:
    """A publisher's stream: `count` messages with the same properties and size."""
    props = commands.Basic.Properties(content_type="application/json", headers={"k": "v"})
    out = []
    for i in range(count):
        payload = b"%08d" % i
        out.append(pamqp.frame.marshal(commands.Basic.Publish(exchange="x", routing_key="q"), 1))
        out.append(pamqp.frame.marshal(header.ContentHeader(0, len(payload), props), channel))
        out.append(pamqp.frame.marshal(body.ContentBody(payload), channel))
    return b"AMQP\x00\x00\x09\x01" + b"".join(out)


def deliveries(count: int, consumer_tag: str = "ctag") -> bytes:
    out = []
    for tag in range(1, count + 1):
        deliver = commands.Basic.Deliver(consumer_tag, tag, tag % 7 == 0, "x", "q")
        out.append(pamqp.frame.marshal(deliver, 1))
        out.append(pamqp.frame.marshal(header.ContentHeader(0, 3, commands.Basic.Properties()), 1))
        out.append(pamqp.frame.marshal(body.ContentBody(b"abc"), 1))
    return b"".join(out)


def feed_all(frames: list[bytes]) -> list:
    return AMQP.connection().feed(S2C, b"".join(frames))


def lines(direction: Direction, stream: bytes, *, memo: bool) -> list[bytes]:
    """The frame lines a recording of `stream` holds, fed in uneven chunks."""
    connection = AMQP.connection()
    if not memo:
        connection._memo_key = None
        connection._splice = None
    out = []
    for start in range(0, len(stream), 1000):
        for frame in connection.feed(direction, stream[start : start + 1000]):
            out.append(encode_frame_line(1, direction, Proto.AMQP, *frame[:3]))
    return out


@pytest.mark.parametrize(
    "direction, stream",
    [
        (C2S, publishes(50)),
        (S2C, deliveries(50)),
        (S2C, deliveries(50, consumer_tag='t"delivery_tag":1,')),
        (S2C, deliveries(50) + deliveries(30, consumer_tag="other") + deliveries(2)),
        *[
            (Direction(path.name.split(".")[1]), path.read_bytes())
            for path in sorted(GOLDEN.glob("*.bin"))
        ],
    ],
    ids=[
        "publishes",
        "deliveries",
        "deliveries-odd-tag",
        "deliveries-two-consumers",
        *[p.name for p in sorted(GOLDEN.glob("*.bin"))],
    ],
)
def test_memo_records_the_same_lines_as_decoding_every_frame(direction, stream):
    assert lines(direction, stream, memo=True) == lines(direction, stream, memo=False)


def _counting_decodes(connection) -> list[bytes]:
    """The frames `connection`'s decoder decodes from now on, in order."""
    decode = connection.decoder.decode
    calls: list[bytes] = []

    def counting(direction, raw):
        calls.append(raw)
        return decode(direction, raw)

    connection.decoder.decode = counting
    return calls


def test_each_repeating_frame_is_decoded_once():
    connection = AMQP.connection()
    calls = _counting_decodes(connection)
    frames = connection.feed(C2S, publishes(200))
    assert len(frames) == 1 + 3 * 200
    # the protocol header, then one Publish, one header and one body of each size: the bodies
    # are all 8 bytes, so a fresh decode per distinct frame and none per repeat
    assert len(calls) == 4
    summaries = [f.summary for f in frames[1:]]
    assert all(isinstance(s, EncodedSummary) for s in summaries[3:])
    assert all(s.json == summary_json(s) for s in summaries[3:])


def test_deliveries_are_spliced_from_the_first_one_of_their_kind():
    # A consumer's deliveries differ only in their tag: neither decoded nor encoded again.
    connection = AMQP.connection()
    calls = _counting_decodes(connection)
    frames = connection.feed(S2C, deliveries(200))
    assert len(frames) == 3 * 200
    assert len(calls) == 2  # the first content header and body; no Deliver
    delivers = frames[::3]
    assert [f.summary["args"]["delivery_tag"] for f in delivers] == list(range(1, 201))
    assert all(isinstance(f.summary, JsonSummary) for f in delivers)
    assert all(f.summary.json == summary_json(f.summary) for f in delivers)
    assert all(f.summary == AMQP.decoder().decode(S2C, f.raw).summary for f in delivers)
    with pytest.raises(TypeError, match="read-only"):
        delivers[0].summary["args"] = {}


def test_frames_that_may_hold_a_credential_are_never_memoized():
    def start_ok(password: str) -> bytes:
        method = commands.Connection.StartOk(
            client_properties={"product": "pika"},
            mechanism="PLAIN",
            response=f"\0rrlab\0{password}",
        )
        return pamqp.frame.marshal(method, 0)

    first, second = start_ok("secret-one"), start_ok("secret-two")
    assert memo_key(first) is None and memo_key(second) is None
    connection = AMQP.connection()
    frames = connection.feed(C2S, b"AMQP\x00\x00\x09\x01" + first + second + first)
    for frame in frames[1:]:
        assert frame.redacted and PLACEHOLDER in frame.raw
        assert b"secret" not in frame.raw


def test_a_shared_summary_cannot_be_changed():
    summary = EncodedSummary({"channel": 1, "frame": "body", "size": 3})
    with pytest.raises(TypeError, match="shared"):
        summary["size"] = 4
    with pytest.raises(TypeError, match="shared"):
        summary.update(size=4)
    copy = dict(summary)
    copy["size"] = 4
    assert summary["size"] == 3 and summary.json == b'{"channel":1,"frame":"body","size":3}'


@pytest.mark.parametrize("chunk", [65536, 65537, 100_000])
def test_a_large_frame_fed_in_chunks_makes_the_same_line_and_bytes(tmp_path, chunk):
    payload = bytes(range(256)) * (3 * (1 << 20) // 256 + 7)  # 3 MiB, fed in chunks
    frames = [pamqp.frame.marshal(body.ContentBody(payload), 1)]
    frames.append(pamqp.frame.marshal(body.ContentBody(b"after"), 1))
    stream = b"".join(frames)
    writer = CassetteWriter.create(tmp_path / "c")
    conn = writer.open_connection("amqp", "127.0.0.1:1", "127.0.0.1:2")
    recorder = recorder_for(writer, conn, "amqp")
    forwarded = []
    for start in range(0, len(stream), chunk):
        recorder.feed(S2C, stream[start : start + chunk], forwarded.append)
    writer.finalize()
    assert b"".join(forwarded) == stream
    lines = (tmp_path / "c" / "frames.jsonl").read_bytes().splitlines(keepends=True)
    assert lines == [encode_frame_line(conn, S2C, Proto.AMQP, *f[:3]) for f in feed_all(frames)]
    assert (tmp_path / "c" / "frames.raw").read_bytes() == stream  # the bytes as they are


def test_spliced_deliveries_reach_the_cassette_as_decoded_ones(tmp_path):
    from rrlab.rr.cassette import CassetteReader

    stream = deliveries(120) + deliveries(40, consumer_tag="second")
    writer = CassetteWriter.create(tmp_path / "c")
    conn = writer.open_connection("amqp", "127.0.0.1:1", "127.0.0.1:2")
    recorder = recorder_for(writer, conn, "amqp")
    recorder.feed(C2S, b"AMQP\x00\x00\x09\x01")
    for start in range(0, len(stream), 4096):
        recorder.feed(S2C, stream[start : start + 4096])
    writer.finalize()
    decoder = AMQP.decoder()
    with CassetteReader.open(tmp_path / "c") as reader:
        recorded = [f for f in reader.frames() if f.dir is S2C]
    assert b"".join(f.raw for f in recorded) == stream
    assert [f.summary for f in recorded] == [decoder.decode(S2C, f.raw).summary for f in recorded]
