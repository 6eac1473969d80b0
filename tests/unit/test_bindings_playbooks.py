"""Bindings in the replay sessions, as playbooks (no sockets): the recorded client frames of a
request/reply cassette recorded on the real broker, fed back with this run's ids in place of the
recorded ones (same length, so the frames stay valid), and what the session serves and binds.
Also binding conflicts and clock values."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import os
import uuid
from pathlib import Path

import pamqp.commands
import pamqp.frame
from replay_playbook import Tally, connect, frames

from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import client_kind, protocol_for
from rrlab.rr.replay.recording import Recording
from rrlab.rr.replay.session import PortMap, ReplayContext, ReplayOptions, Send

C2S = Direction.C2S
REPLAY = Path(__file__).resolve().parents[1] / "replay"
AMQP_RPC = REPLAY / "amqp_cassettes" / "pika-rpc"
MQTT_RPC = REPLAY / "mqtt_cassettes" / "amqtt-rpc"
MESSAGE_PROPS = REPLAY / "amqp_cassettes" / "pika-message-props"
REC_QUEUE_ID = b"d935a1c9-e770-45b3-aef4-3f77e7bc1bb9"  # in pika-rpc's reply queue name
REC_CORRELATION = b"b50b5a2c-ab39-4303-8250-9055f096f80e"


def open_ctx(cassette: Path, options: ReplayOptions | None = None) -> ReplayContext:
    recording = Recording.open(cassette, classify=client_kind)
    ports = PortMap({port: port for _proto, port in recording.listeners()})
    ctx = ReplayContext(recording, options or ReplayOptions(), Tally(), ports)
    for proto in {proto for proto, _port in recording.listeners()}:
        protocol_for(proto).prepare(ctx)
    return ctx


def new_id() -> bytes:
    return str(uuid.uuid4()).encode()


def sent_bytes(link) -> bytes:
    return b"".join(a.data for a in link.take() if isinstance(a, Send))


def test_amqp_reply_queue_binds_and_the_live_name_is_stamped_into_what_is_served():
    ctx = open_ctx(AMQP_RPC)
    live_queue = new_id()
    session, link = connect(ctx, Proto.AMQP, 15673)
    client = frames(ctx, 1, C2S)
    for frame in client[:6]:  # handshake, channel, Queue.Declare reply-<uuid>
        session.data_received(frame.raw.replace(REC_QUEUE_ID, live_queue))
    served = sent_bytes(link)
    assert live_queue in served and REC_QUEUE_ID not in served  # Queue.DeclareOk
    assert ctx.report.misses == []
    assert [(b.recorded, b.live) for b in ctx.bindings.made] == [
        (REC_QUEUE_ID.decode(), live_queue.decode())
    ]


def test_amqp_responder_gets_the_request_with_the_callers_live_ids():
    """Caller and responder are two connections: what the caller bound is stamped into the
    responder's Basic.GetOk content (properties and body), and the responder's own publish
    carrying the live ids matches."""
    ctx = open_ctx(AMQP_RPC)
    live_queue, live_corr = new_id(), new_id()

    def live(raw: bytes) -> bytes:
        return raw.replace(REC_QUEUE_ID, live_queue).replace(REC_CORRELATION, live_corr)

    caller, _caller_link = connect(ctx, Proto.AMQP, 15673)
    for frame in frames(ctx, 1, C2S)[:10]:  # up to the request's publish (method, header, body)
        caller.data_received(live(frame.raw))
    responder, link = connect(ctx, Proto.AMQP, 15673)
    for frame in frames(ctx, 2, C2S)[:6]:  # handshake, channel, Basic.Get
        responder.data_received(live(frame.raw))
    served = sent_bytes(link)
    assert served.count(live_corr) == 2 and REC_CORRELATION not in served  # header and body
    assert live_queue in served  # reply_to
    for frame in frames(ctx, 2, C2S)[6:]:  # the answer's publish, ack, closes
        responder.data_received(live(frame.raw))
    assert ctx.report.misses == [] and len(ctx.bindings.made) == 2


def test_amqp_a_recorded_id_bound_twice_is_a_miss_naming_both_values():
    ctx = open_ctx(AMQP_RPC)
    first, second = new_id(), new_id()
    session, link = connect(ctx, Proto.AMQP, 15673)
    client = frames(ctx, 1, C2S)
    for frame in client[:6]:  # Queue.Declare binds the queue's uuid to `first`
        session.data_received(frame.raw.replace(REC_QUEUE_ID, first))
    for frame in client[6:10]:  # the request names the reply queue by `second`
        session.data_received(frame.raw.replace(REC_QUEUE_ID, second))
    (miss,) = ctx.report.misses
    assert miss.api == "Basic.Publish"
    for value in (REC_QUEUE_ID, first, second):
        assert value.decode() in miss.reason
    sends = [a.data for a in link.take() if isinstance(a, Send)]
    _n, _channel, close = pamqp.frame.unmarshal(sends[-1])
    assert isinstance(close, pamqp.commands.Connection.Close) and close.reply_code == 541
    assert "binding conflict" in close.reply_text


def _with_props(raw: bytes, **props) -> bytes:
    _n, channel, header = pamqp.frame.unmarshal(raw)
    for name, value in props.items():
        setattr(header.properties, name, value)
    return pamqp.frame.marshal(header, channel)


def _message_props_run(options: ReplayOptions | None = None) -> Tally:
    """pika-message-props' client frames with a new message_id and a timestamp a year on."""
    ctx = open_ctx(MESSAGE_PROPS, options)
    session, _link = connect(ctx, Proto.AMQP, 15673)
    for frame in frames(ctx, 1, C2S):
        raw = frame.raw
        if frame.summary.get("frame") == "header":
            later = datetime.datetime(2027, 1, 2, 3, 4, 5)
            raw = _with_props(raw, message_id=str(uuid.uuid4()), timestamp=later)
        session.data_received(raw)
    return ctx.report  # type: ignore[return-value]


def test_amqp_clock_values_match_any_live_clock_value_unless_a_rule_says_exact():
    assert _message_props_run().misses == []
    exact = _message_props_run(ReplayOptions(exact_clock_fields=("properties.timestamp",)))
    (miss, *_rest) = exact.misses
    assert [line.split(":")[0] for line in miss.diff] == ["Basic.Publish ch 1 properties.timestamp"]


def test_mqtt_client_ids_bind_at_connect_and_topics_embedding_them_match_and_are_stamped():
    ctx = open_ctx(MQTT_RPC)
    rec_responder, rec_requester = b"svc-905a1b8b", b"svc-aa09f34b"
    live_responder, live_requester = b"svc-0123abcd", b"svc-4567ef01"

    def live(raw: bytes) -> bytes:
        return raw.replace(rec_responder, live_responder).replace(rec_requester, live_requester)

    responder, responder_link = connect(ctx, Proto.MQTT, 11883)
    requester, _requester_link = connect(ctx, Proto.MQTT, 11883)
    for frame in frames(ctx, 1, C2S)[:2]:  # CONNECT, SUBSCRIBE rpc/square
        responder.data_received(live(frame.raw))
    for frame in frames(ctx, 2, C2S)[:3]:  # CONNECT, SUBSCRIBE reply/<id>, PUBLISH the request
        requester.data_received(live(frame.raw))
    pushed = sent_bytes(responder_link)
    assert live_requester in pushed and rec_requester not in pushed  # reply_to in the payload
    assert ctx.report.misses == []
    assert {(b.recorded, b.live) for b in ctx.bindings.made} == {
        (rec_responder.decode(), live_responder.decode()),
        (rec_requester.decode(), live_requester.decode()),
    }


KAFKA_CLIENT_ID_RPC = REPLAY / "kafka_cassettes" / "kafka-client-id-rpc-tansu"
REC_CLIENT_ID = "svc-f747ef1d"  # the requester's client.id in kafka-client-id-rpc-tansu


def _kafka_live(raw: bytes, old: str, new: str) -> bytes:
    """A recorded Kafka request as the live client sends it with client id `new` for `old`:
    header, topic names and records re-encoded (another length, a CRC written again)."""
    from rrlab.rr.protocols.kafka.codec import decode_request, encode_request
    from rrlab.rr.protocols.kafka.records import restamp_batch
    from rrlab.rr.protocols.kafka.stamp import stamp_strings

    api, version = int.from_bytes(raw[4:6], "big"), int.from_bytes(raw[6:8], "big")
    corr = int.from_bytes(raw[8:12], "big")
    request = decode_request(raw)

    def data(value: bytes) -> bytes:
        return restamp_batch(value, lambda b: b.replace(old.encode(), new.encode()))

    body = stamp_strings(request.body, lambda s: s.replace(old, new))
    if api == 0:  # Produce: the record batches
        topics = tuple(
            dataclasses.replace(
                t,
                partition_data=tuple(
                    dataclasses.replace(p, records=data(p.records)) for p in t.partition_data
                ),
            )
            for t in body.topic_data
        )
        body = dataclasses.replace(body, topic_data=topics)
    client_id = request.header.client_id
    client_id = client_id.replace(old, new) if client_id is not None else None
    return encode_request(api, version, corr, client_id, body)


def test_kafka_client_id_binds_and_topics_and_records_naming_it_are_served_with_the_live_id():
    """kafka-python clients with client.id `svc-` + 8 hex (new each run) create and read a
    reply topic named by it and key their request by it: the live id (another length) binds
    to the recorded one at the first request, the CreateTopics, ListOffsets and Produce naming
    it match, and every answer that names the recorded id (Metadata, CreateTopics, ListOffsets,
    the fetched request record and reply) carries the live one."""
    ctx = open_ctx(KAFKA_CLIENT_ID_RPC)
    live_id = "svc-0a1b2c3d4e"
    served = b""
    for rc in ctx.recording.conns:
        session, link = connect(ctx, Proto.KAFKA, rc.listen_port)
        for frame in frames(ctx, rc.id, C2S):
            session.data_received(_kafka_live(frame.raw, REC_CLIENT_ID, live_id))
        served += sent_bytes(link)
    assert ctx.report.misses == []
    assert [(b.recorded, b.live, b.where.split()[-1]) for b in ctx.bindings.made] == [
        (REC_CLIENT_ID, live_id, "client_id")
    ]
    assert REC_CLIENT_ID.encode() not in served
    assert served.count(f"reply.{live_id}".encode()) >= 4  # Metadata, CreateTopics, fetched
    assert ctx.report.matched_by["Produce"] == 2 and ctx.report.matched_by["Fetch"] == 2


MQTT5_BINARY_RR = REPLAY / "mqtt_cassettes" / "mosquitto-v5-rr-binary-mosquitto"
REC_MQTT5_CLIENT_ID = b"svc-1db38af9"  # mosquitto_rr's, in mosquitto-v5-rr-binary-mosquitto
REC_MQTT5_CORRELATION = base64.b64decode("qNy4zrCc8b2eo4Lc8KPC1A==")  # 16 bytes, not UTF-8


def _mqtt5_binary_run(answer_correlation: bytes | None = None):
    """The recorded MQTT 5 request/response (mosquitto_sub responder, mosquitto_rr requester,
    mosquitto_pub answerer) fed back with a new client id and new binary correlation data (the
    answerer's own `answer_correlation` if given): the context and what each client was sent."""
    ctx = open_ctx(MQTT5_BINARY_RR)
    live_id, live_corr = b"svc-0a1b2c3d", bytes(b | 0x80 for b in os.urandom(16))

    def live(raw: bytes, corr: bytes = live_corr) -> bytes:
        return raw.replace(REC_MQTT5_CLIENT_ID, live_id).replace(REC_MQTT5_CORRELATION, corr)

    responder, responder_link = connect(ctx, Proto.MQTT, 11883)
    requester, requester_link = connect(ctx, Proto.MQTT, 11883)
    answerer, _answerer_link = connect(ctx, Proto.MQTT, 11883)
    responder_frames, requester_frames = frames(ctx, 1, C2S), frames(ctx, 2, C2S)
    for frame in responder_frames[:2]:  # CONNECT, SUBSCRIBE rpc/square
        responder.data_received(live(frame.raw))
    for frame in requester_frames[:3]:  # CONNECT, SUBSCRIBE reply/<id>, PUBLISH the request
        requester.data_received(live(frame.raw))
    for frame in responder_frames[2:]:  # PUBACK the pushed request, DISCONNECT
        responder.data_received(live(frame.raw))
    for frame in frames(ctx, 3, C2S):  # CONNECT, PUBLISH the answer, DISCONNECT
        answerer.data_received(live(frame.raw, answer_correlation or live_corr))
    return ctx, live_corr, sent_bytes(responder_link), sent_bytes(requester_link)


def test_mqtt5_binary_correlation_data_binds_whole_and_is_stamped_into_both_pushes():
    """Correlation data is the requester's by position (MQTT 5 request/response): bytes that
    are not UTF-8 (no identifier shape to recognise) bind whole; the responder is pushed the
    request, and the requester the answer, with the live bytes."""
    ctx, live_corr, to_responder, to_requester = _mqtt5_binary_run()
    assert ctx.report.misses == []
    assert live_corr in to_responder and REC_MQTT5_CORRELATION not in to_responder
    assert live_corr in to_requester and REC_MQTT5_CORRELATION not in to_requester
    assert b"reply/svc-0a1b2c3d" in to_responder  # the response topic, client id bound
    made = {b.where.split()[-1]: b.to_dict() for b in ctx.bindings.made}
    assert made["PUBLISH"]["recorded"] == "0x" + REC_MQTT5_CORRELATION.hex()
    assert made["PUBLISH"]["live"] == "0x" + live_corr.hex()


def test_mqtt5_correlation_data_bound_to_two_live_values_is_a_miss_naming_both():
    other = bytes(b | 0x80 for b in os.urandom(16))
    ctx, live_corr, _to_responder, _to_requester = _mqtt5_binary_run(answer_correlation=other)
    (miss,) = ctx.report.misses
    assert miss.api == "PUBLISH" and "binding conflict" in miss.reason
    for value in (REC_MQTT5_CORRELATION, live_corr, other):
        assert "0x" + value.hex() in miss.reason
