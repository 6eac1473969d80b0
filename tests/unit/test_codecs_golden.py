"""Golden streams captured from real brokers (tools/capture_golden.py): frame, decode, redact.

Every frame must be named (Kafka API, AMQP method, MQTT packet), nothing unknown or unreadable,
every Kafka response paired with its request, and the fixture passwords the clients sent must
be gone after redaction while the redacted frames still decode.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rrlab.rr.canonical import dumps
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import decoder_for, framer_for, redact
from rrlab.rr.protocols.kafka.codec import records_of
from rrlab.rr.redact import PLACEHOLDER

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
STREAMS = sorted(GOLDEN.glob("*/conn-*.c2s.bin"))
#: Fixture credentials the capture used (brokers' RabbitMQ user, the private amqtt broker's).
PASSWORDS = {Proto.AMQP: b"rrlab-secret-pw", Proto.MQTT: b"rrlab-mqtt-pw"}


def stream_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name.split('.')[0]}"


def frames_of(c2s_path: Path):
    """(direction, raw) of one connection: all client frames, then all server frames."""
    proto = Proto(c2s_path.parent.name.split("-")[0])
    out = []
    for direction in (Direction.C2S, Direction.S2C):
        data = c2s_path.with_name(c2s_path.name.replace("c2s", direction.value)).read_bytes()
        framer = framer_for(proto, direction)
        whole = framer.feed(data)
        assert framer.buffered == 0, f"{direction}: {framer.buffered} bytes left unframed"
        bytewise = framer_for(proto, direction)
        assert [f for b in range(len(data)) for f in bytewise.feed(data[b : b + 1])] == whole
        out += [(direction, f.raw) for f in whole]
    return proto, out


def test_every_protocol_was_captured():
    names = {p.parent.name for p in STREAMS}
    assert {"kafka-tansu", "amqp-rabbitmq", "mqtt-amqtt"} <= names


@pytest.mark.parametrize("c2s_path", STREAMS, ids=stream_id)
def test_golden_stream_frames_and_decodes(c2s_path):
    proto, frames = frames_of(c2s_path)
    assert frames
    decoder = decoder_for(proto)
    for direction, raw in frames:
        summary = decoder.decode(direction, raw).summary
        assert "error" not in summary, summary
        assert len(dumps(summary)) < 2048  # small, canonical-JSON-able
        if proto is Proto.KAFKA:
            assert not summary["api"].startswith("Unknown")
            if summary.get("unexpected_response"):  # Tansu answers acks=0 Produce anyway
                assert summary["api"] == "Produce" and "tansu" in c2s_path.parent.name
        elif proto is Proto.AMQP:
            assert summary.get("method") or summary["frame"] in (
                "protocol_header",
                "header",
                "body",
                "heartbeat",
            )
        else:
            assert summary["packet"].isupper() and not summary["packet"].startswith("type")
    if proto is Proto.KAFKA:
        assert decoder.pending == {}, "responses missing for these correlation ids"


def test_kafka_records_seen_in_produce_and_fetch():
    for impl in ("tansu", "apache"):
        folder = GOLDEN / f"kafka-{impl}"
        if not folder.exists():
            assert impl == "apache", "the Tansu capture is required"
            continue
        produced, fetched = [], []
        for c2s_path in sorted(folder.glob("conn-*.c2s.bin")):
            proto, frames = frames_of(c2s_path)
            decoder = decoder_for(proto)
            for direction, raw in frames:
                got = decoder.decode(direction, raw)
                api = got.summary.get("api")
                if api == "Produce" and direction is Direction.C2S:
                    produced += records_of(got)
                elif api == "Fetch" and direction is Direction.S2C:
                    fetched += records_of(got)
        assert [r["key"] for r in produced] == [b"k0", b"k1", b"k2", b"k3"], impl
        assert [r["key"] for r in fetched] == [b"k0", b"k1", b"k2", b"k3"], impl
        assert [r["offset"] for r in fetched] == [0, 1, 2, 3]
        assert fetched[0]["headers"] == [("h", b"v0")] and fetched[0]["value"] == b'{"n":0}'
        assert all(r["timestamp_ms"] > 1_600_000_000_000 for r in fetched)


@pytest.mark.parametrize("proto", [Proto.AMQP, Proto.MQTT])
def test_fixture_passwords_are_redacted(proto):
    secret = PASSWORDS[proto]
    folder = next(GOLDEN.glob(f"{proto.value}-*"))
    redacted_fields = []
    for c2s_path in sorted(folder.glob("conn-*.c2s.bin")):
        assert secret in c2s_path.read_bytes()  # the capture really carries it
        _proto, frames = frames_of(c2s_path)
        decoder = decoder_for(proto)
        for direction, raw in frames:
            new, decoded = redact(proto, direction, raw, decoder.decode(direction, raw))
            assert secret not in new and secret not in dumps(decoded.summary)
            if decoded.redacted:
                redacted_fields += decoded.summary["redacted"]
                assert PLACEHOLDER in new
                (again,) = framer_for(proto, direction).feed(
                    b"AMQP\x00\x00\x09\x01" + new if proto is Proto.AMQP else new
                )[-1:]
                assert again.raw == new
                assert "error" not in decoder_for(proto).decode(direction, new).summary
    assert redacted_fields


def test_kafka_bounds_walk_agrees_with_kio_on_every_golden_frame():
    """The pre-kio bounds walk must end exactly where kio's reader ends (no false refusals)."""
    from kio.serial import entity_reader

    from rrlab.rr.protocols.kafka import codec as kafka_codec
    from rrlab.rr.protocols.kafka.guard import check

    checked = 0
    for c2s_path in sorted(GOLDEN.glob("kafka-*/conn-*.c2s.bin")):
        _proto, frames = frames_of(c2s_path)
        pending = {}
        for direction, raw in frames:
            buf = memoryview(raw)
            if direction is Direction.C2S:
                api_key, version, cid = int.from_bytes(raw[4:6]), int.from_bytes(raw[6:8]), None
                cls = kafka_codec.request_schema(api_key, version)
                pending[int.from_bytes(raw[8:12])] = cls
            else:
                cid = int.from_bytes(raw[4:8])
                cls = kafka_codec.response_schema(
                    pending[cid].__api_key__, pending[cid].__version__
                )
            pos = 4
            for entity_cls in (cls.__header_schema__, cls):
                _entity, size = entity_reader(entity_cls)(buf, pos)
                assert check(entity_cls, buf, pos) == pos + size, entity_cls
                pos += size
            assert pos == len(raw)
            checked += 1
    assert checked > 50


def test_kafka_huge_array_length_is_refused_not_fatal():
    """kio alone aborts the process on this CreateTopics v5 response (2^31-ish topics)."""
    from rrlab.rr.protocols.kafka.codec import KafkaDecoder

    raw = bytes.fromhex(
        "00000013000000080092c33d21f9ccc3d46f3d28bc2df79b35286cd872e5e8dbd18850e856fe265e9adb"
    )
    decoder = KafkaDecoder()
    decoder.tracker.request(19, 5, 8)  # as if the CreateTopics v5 request had been seen
    summary = decoder.decode(Direction.S2C, raw).summary
    assert "array of" in summary["error"]
