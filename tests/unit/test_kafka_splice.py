"""Kafka frames that repeat but for their correlation id are spliced from a template
(`rr.protocols.kafka.splice`): the recorder writes the same lines as decoding every frame, the
connection's tracker (shared with the address rewriter) ends up in the same state after every
frame, and a frame that may hold a credential is never spliced."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from committed_cassettes import committed_cassettes
from kafka_samples import record_batch, sample
from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.schema.heartbeat.v4.request import HeartbeatRequest
from kio.schema.heartbeat.v4.response import HeartbeatResponse
from kio.schema.index import api_key_map, schema_name_map
from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest
from kio.schema.sasl_handshake.v1.response import SaslHandshakeResponse
from kio.static.constants import EntityType
from kio.static.primitive import i32, i32Timedelta

from rrlab.rr.cassette import CassetteReader, CassetteWriter
from rrlab.rr.cassette.format import encode_frame_line
from rrlab.rr.codecs import Direction, JsonSummary, Proto
from rrlab.rr.protocols import protocol_for
from rrlab.rr.protocols.kafka import codec as kafka_codec
from rrlab.rr.protocols.kafka.codec import encode_request, encode_response
from rrlab.rr.protocols.kafka.rewrite import NodeMap
from rrlab.rr.record import recorder_for
from rrlab.rr.redact import PLACEHOLDER

ROOT = Path(__file__).resolve().parents[2]
C2S, S2C = Direction.C2S, Direction.S2C
KAFKA = protocol_for(Proto.KAFKA)
SECRET = b"Sup3r-s3cret!"


def kafka_cassettes() -> list[Path]:
    return committed_cassettes("kafka")


def tracker_state(connection) -> tuple[Any, ...]:
    t = connection.decoder.tracker
    return (t._pending, t._unanswered, t._handshakes, t._sasl, t._raw_sasl)


def line(direction: Direction, frame) -> bytes:
    return encode_frame_line(1, direction, Proto.KAFKA, *frame[:3])


def both(frames: list[tuple[Direction, bytes]]) -> tuple[list, int]:
    """Feed `frames` (one connection, in stream order) to a connection that splices and one
    that decodes every frame; assert the same line and tracker state after each. Returns the
    spliced connection's frames and how many of them were spliced."""
    spliced, decoded = KAFKA.connection(), KAFKA.connection()
    decoded._splice = None
    out, n = [], 0
    for direction, raw in frames:
        (a,) = spliced.process(direction, [raw])
        (b,) = decoded.process(direction, [raw])
        assert line(direction, a) == line(direction, b), (direction, raw[:16])
        assert tracker_state(spliced) == tracker_state(decoded)
        if isinstance(a.summary, JsonSummary):
            n += 1
            assert a.summary.json == line(direction, b).split(b'"summary":', 1)[1][:-2]
        out.append(a)
    return out, n


@pytest.mark.parametrize("path", kafka_cassettes(), ids=lambda p: p.name)
def test_committed_cassettes_record_the_same_with_the_splice(path):
    with CassetteReader.open(path) as reader:
        by_conn: dict[int, list[tuple[Direction, bytes]]] = {}
        for frame in reader.frames():
            if frame.proto is Proto.KAFKA:
                by_conn.setdefault(frame.conn, []).append((frame.dir, frame.raw))
    assert by_conn
    spliced = 0
    for frames in by_conn.values():
        spliced += both(frames)[1]
        spliced += both(frames)[1]  # again: now every template is there
    assert spliced > 0


def _pairs() -> list[tuple[int, int]]:
    """Every (api key, version) kio has a request and a response schema for."""
    out = []
    for key, name in sorted(api_key_map.items()):
        for version, kinds in sorted(schema_name_map.get(name, {}).items()):
            if EntityType.request in kinds and EntityType.response in kinds:
                out.append((key, version))
    return out


@pytest.mark.parametrize("records", [None, record_batch(5, [b"v"])], ids=["empty", "records"])
def test_every_api_and_version_records_the_same_with_the_splice(records):
    # each pair twice with its own ids (a repeat), then a request no one answers, an answer
    # to no request, and the first answer again (its request is gone)
    for key, version in _pairs():
        hints = {"records": records}
        req = sample(load_request_schema(key, version), hints)
        resp = sample(load_response_schema(key, version), hints)
        frames = []
        for cid in (7, 8):
            frames.append((C2S, encode_request(key, version, cid, "cli", req)))
            frames.append((S2C, encode_response(key, version, cid, resp)))
        frames.append((C2S, encode_request(key, version, 9, "cli", req)))
        frames.append((S2C, encode_response(key, version, 10, resp)))
        frames.append((S2C, encode_response(key, version, 7, resp)))
        both(frames)


def heartbeats(count: int, start: int = 1) -> list[tuple[Direction, bytes]]:
    request = HeartbeatRequest(
        group_id="g", generation_id=i32(3), member_id="m-1", group_instance_id=None
    )
    response = HeartbeatResponse(
        throttle_time=i32Timedelta.parse(datetime.timedelta(0)), error_code=ErrorCode.none
    )
    frames = []
    for cid in range(start, start + count):
        frames.append((C2S, encode_request(12, 4, cid, "worker", request)))
        frames.append((S2C, encode_response(12, 4, cid, response)))
    return frames


def test_repeating_requests_and_answers_are_read_once(monkeypatch):
    reads = []
    for name in ("decode_request", "decode_response_any"):
        real = getattr(kafka_codec, name)
        monkeypatch.setattr(
            kafka_codec, name, lambda *a, _real=real, _name=name: reads.append(_name) or _real(*a)
        )
    connection = KAFKA.connection()
    frames = [connection.process(direction, [raw])[0] for direction, raw in heartbeats(200, 1000)]
    assert reads.count("decode_request") <= 1 and reads.count("decode_response_any") <= 1
    assert all(isinstance(f.summary, JsonSummary) for f in frames)
    assert [f.summary["correlation_id"] for f in frames[::2]] == list(range(1000, 1200))
    assert connection.decoder.pending == {}
    with pytest.raises(TypeError, match="read-only"):
        frames[-1].summary["correlation_id"] = 1


def test_a_spliced_request_is_pending_for_the_rewriter_and_its_answer_pops_it():
    connection = KAFKA.connection()
    rewriter = KAFKA.rewriter(connection, NodeMap())
    for direction, raw in heartbeats(3):  # the template is there after the first
        connection.process(direction, [raw])
    ((_, request), (_, answer)) = heartbeats(1, start=-5)
    (frame,) = connection.process(C2S, [request])
    assert isinstance(frame.summary, JsonSummary)
    assert connection.decoder.pending == {-5: (12, 4)}
    assert rewriter.tracker.peek(-5) == (12, 4)
    (frame,) = connection.process(S2C, [answer])
    assert isinstance(frame.summary, JsonSummary) and frame.summary["correlation_id"] == -5
    assert connection.decoder.pending == {}
    (again,) = connection.process(S2C, [answer])  # its request is answered: an error, decoded
    assert not isinstance(again.summary, JsonSummary)
    assert again.summary["error"] == "no pending request has this id"


def test_sasl_frames_are_never_spliced():
    connection = KAFKA.connection()
    handshake = SaslHandshakeRequest(mechanism="PLAIN")
    token = SaslAuthenticateRequest(auth_bytes=b"\x00alice\x00" + SECRET)
    frames = []
    for cid in (1, 3):  # a second handshake: re-authentication, the same bytes
        frames.append((C2S, encode_request(17, 1, cid, "cli", handshake)))
        answer = SaslHandshakeResponse(error_code=ErrorCode.none, mechanisms=("PLAIN",))
        frames.append((S2C, encode_response(17, 1, cid, answer)))
        frames.append((C2S, encode_request(36, 2, cid + 1, "cli", token)))
    for direction, raw in heartbeats(2) + frames:
        (frame,) = connection.process(direction, [raw])
        if frame.summary.get("api") in ("SaslHandshake", "SaslAuthenticate"):
            assert not isinstance(frame.summary, JsonSummary)
        if frame.summary.get("api") == "SaslAuthenticate":
            assert frame.redacted and SECRET not in frame.raw and PLACEHOLDER in frame.raw
    out, _n = both(heartbeats(2) + frames)
    assert sum(f.redacted for f in out) == 2


def test_nothing_is_spliced_while_a_handshake_awaits_its_answer():
    connection = KAFKA.connection()
    for direction, raw in heartbeats(2):
        connection.process(direction, [raw])
    hand = encode_request(17, 1, 50, "cli", SaslHandshakeRequest(mechanism="PLAIN"))
    connection.process(C2S, [hand])
    for direction, raw in heartbeats(2, start=51):
        (frame,) = connection.process(direction, [raw])
        assert not isinstance(frame.summary, JsonSummary)


def test_spliced_frames_reach_the_cassette_as_decoded_ones(tmp_path):
    # through the recorder as the proxy wires it: Metadata answers rewritten (a broker address
    # behind the proxy's listener) before they are spliced, heartbeats between them
    hints = {"host": "broker-7.example", "port": 9092, "topics": None}
    metadata = []
    for cid in (100, 101, 102):
        request = sample(load_request_schema(3, 12), hints)
        metadata.append((C2S, encode_request(3, 12, cid, "worker", request)))
        answer = sample(load_response_schema(3, 12), hints)
        metadata.append((S2C, encode_response(3, 12, cid, answer)))
    stream = metadata[:2] + heartbeats(5) + metadata[2:] + heartbeats(5, start=20)
    writer = CassetteWriter.create(tmp_path / "c")
    conn = writer.open_connection("kafka", "127.0.0.1:1", "127.0.0.1:2")
    recorder = recorder_for(writer, conn, "kafka", node_map=NodeMap())
    forwarded = []
    for direction, raw in stream:
        recorder.feed(direction, raw, forwarded.append)
    writer.finalize()
    assert b"broker-7.example" not in b"".join(forwarded)
    decoder = KAFKA.decoder()
    with CassetteReader.open(tmp_path / "c") as reader:
        recorded = list(reader.frames())
    assert b"".join(f.raw for f in recorded) == b"".join(forwarded)
    assert [f.summary for f in recorded] == [decoder.decode(f.dir, f.raw).summary for f in recorded]


def test_every_api_the_redactor_reads_for_a_credential_is_never_spliced():
    # the splice skips the redactor: it must skip every frame the redactor would look into
    from rrlab.rr.protocols.kafka import redact as kafka_redact
    from rrlab.rr.protocols.kafka.splice import NOT_SPLICED

    read = set().union(*kafka_redact._KAFKA_SECRET_APIS.values())
    assert read <= set(kafka_redact.HEADER_ONLY_APIS) <= NOT_SPLICED
