"""Playbooks of the sans-IO replay sessions (rr.protocols.<p>.session): recorded client frames
from a committed cassette in, the exact actions out (send these bytes, close, schedule), and
what the report counted, without sockets or a reactor (mitmproxy's
test/mitmproxy/proxy/layers/test_tcp.py, as style.md describes)."""

from __future__ import annotations

import dataclasses
import struct

from replay_playbook import connect, frames, sent, serve

from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols.amqp.session import CLOSE_GRACE, HEARTBEAT_FRAME
from rrlab.rr.protocols.kafka.apis import FETCH
from rrlab.rr.protocols.kafka.codec import decode_request, decode_response_body, encode_request
from rrlab.rr.replay.session import Close, Schedule, Send

C2S, S2C = Direction.C2S, Direction.S2C


def schedules(actions: list) -> list[float]:
    assert all(isinstance(a, Schedule) for a in actions), actions
    return [a.delay for a in actions]


# -- AMQP ---------------------------------------------------------------------------------------


def test_amqp_handshake_answers_each_client_frame_with_the_recorded_broker_frames():
    ctx = serve("worker-amqp-rabbitmq")
    client, broker = frames(ctx, 1, C2S), frames(ctx, 1, S2C)
    session, link = connect(ctx, Proto.AMQP, 15673)
    session.data_received(client[0].raw)  # protocol header
    assert link.take() == [Send(broker[0].raw)]  # Connection.Start
    session.data_received(client[1].raw)  # Connection.StartOk
    assert link.take() == [Send(broker[1].raw)]  # Connection.Tune
    assert ctx.report.bound == [True]
    session.data_received(client[2].raw)  # Connection.TuneOk: heartbeats at half its interval
    heartbeat = client[2].summary["args"]["heartbeat"]
    (beat,) = link.take()
    assert schedules([beat]) == [heartbeat / 2]
    beat.timer.fire()  # the timer fired: a synthesized heartbeat, and the next one scheduled
    first, again = link.take()
    assert first == Send(HEARTBEAT_FRAME) and schedules([again]) == [heartbeat / 2]
    assert ctx.report.take() == [("synthesized", "heartbeat")]
    session.data_received(client[3].raw)  # Connection.Open
    assert link.take() == [Send(broker[2].raw)]  # Connection.OpenOk
    assert ctx.report.matched_by["Connection.Open"] == 1


def test_amqp_whole_connection_in_odd_chunks_gives_every_recorded_answer_then_closes():
    """The whole recorded client stream, split where no frame ends (framing is the session's):
    every recorded broker frame comes back in order, then the close; nothing missed."""
    ctx = serve("worker-amqp-rabbitmq")
    client, broker = frames(ctx, 1, C2S), frames(ctx, 1, S2C)
    session, link = connect(ctx, Proto.AMQP, 15673)
    stream = b"".join(f.raw for f in client)
    for at in range(0, len(stream), 997):
        session.data_received(stream[at : at + 997])
    actions = link.take()
    sends = [a for a in actions if isinstance(a, Send) and a.data != HEARTBEAT_FRAME]
    assert sent(sends) == b"".join(f.raw for f in broker if f.raw != HEARTBEAT_FRAME)
    assert actions[-1] == Close() and ctx.report.misses == []
    assert session.buffered == 0


def test_amqp_miss_answers_connection_close_541_and_closes_after_the_grace():
    ctx = serve("worker-amqp-rabbitmq")
    client = frames(ctx, 1, C2S)
    session, link = connect(ctx, Proto.AMQP, 15673)
    session.data_received(b"".join(f.raw for f in client[:4]))  # up to Connection.Open
    link.take()
    # Channel.Open on channel 9 (the recording opened channel 1)
    session.data_received(b"\x01\x00\x09\x00\x00\x00\x05\x00\x14\x00\x0a\x00\xce")
    reply, grace = link.take()
    assert isinstance(reply, Send) and reply.data[:1] == b"\x01"  # a method frame, channel 0
    assert b"rrlab replay miss: Channel.Open" in reply.data
    assert struct.unpack_from(">HHH", reply.data, 7) == (10, 50, 541)  # Connection.Close 541
    assert schedules([grace]) == [CLOSE_GRACE]
    assert ctx.report.take() == [("miss", "Channel.Open")]
    grace.timer.fire()
    assert link.take() == [Close()]


# -- MQTT ---------------------------------------------------------------------------------------


def test_mqtt_delivery_waits_for_the_live_publish_on_another_connection():
    """The subscriber's recorded PUBLISHes are released by the publisher's live PUBLISH (on
    another session), never by its own SUBSCRIBE alone."""
    ctx = serve("worker-mqtt-mosquitto")
    sub_client, sub_broker = frames(ctx, 1, C2S), frames(ctx, 1, S2C)
    pub_client = frames(ctx, 2, C2S)
    sub, sub_link = connect(ctx, Proto.MQTT, 11883)
    sub.data_received(sub_client[0].raw)  # CONNECT
    assert sub_link.take() == [Send(sub_broker[0].raw)]  # CONNACK
    sub.data_received(sub_client[1].raw)  # SUBSCRIBE
    assert sub_link.take() == [Send(sub_broker[1].raw)]  # SUBACK only
    pub, pub_link = connect(ctx, Proto.MQTT, 11883)
    pub.data_received(pub_client[0].raw)  # CONNECT
    assert sent(pub_link.take()) == frames(ctx, 2, S2C)[0].raw  # CONNACK
    pub.data_received(pub_client[1].raw)  # the first PUBLISH
    assert sub_link.take() == [Send(sub_broker[2].raw)]  # its delivery, on the subscriber
    assert ctx.report.misses == []


def test_mqtt_pingreq_is_answered_without_the_recording():
    ctx = serve("worker-mqtt-mosquitto")
    session, link = connect(ctx, Proto.MQTT, 11883)
    session.data_received(frames(ctx, 2, C2S)[0].raw)  # CONNECT
    link.take()
    session.data_received(b"\xc0\x00")  # PINGREQ
    assert link.take() == [Send(b"\xd0\x00")]
    assert ctx.report.take() == [("synthesized", "PINGREQ")]


def test_mqtt_first_packet_not_connect_is_a_miss_and_a_close():
    ctx = serve("worker-mqtt-mosquitto")
    session, link = connect(ctx, Proto.MQTT, 11883)
    session.data_received(b"\xc0\x00")  # PINGREQ before CONNECT
    actions = link.take()
    assert actions[-1] == Close() and all(isinstance(a, Send | Close) for a in actions)
    assert [e for e in ctx.report.take() if e[0] == "miss"] == [("miss", "PINGREQ")]


# -- Kafka --------------------------------------------------------------------------------------


def _with_correlation_id(raw: bytes, corr: int) -> bytes:
    return raw[:8] + struct.pack(">i", corr) + raw[12:]


def test_kafka_answers_carry_the_live_correlation_id():
    ctx = serve("worker-kafka-tansu")
    client, broker = frames(ctx, 1, C2S), frames(ctx, 1, S2C)
    session, link = connect(ctx, Proto.KAFKA, 19092)
    session.data_received(_with_correlation_id(client[0].raw, 41))  # ApiVersions
    assert link.take() == [Send(broker[0].raw[:4] + struct.pack(">i", 41) + broker[0].raw[8:])]
    session.data_received(client[1].raw)  # Metadata, correlation id as recorded
    assert link.take() == [Send(broker[1].raw)]
    assert ctx.report.bound == [True] and ctx.report.misses == []


def test_kafka_requests_split_anywhere_are_framed_by_the_session():
    ctx = serve("worker-kafka-tansu")
    client, broker = frames(ctx, 1, C2S), frames(ctx, 1, S2C)
    session, link = connect(ctx, Proto.KAFKA, 19092)
    stream = client[0].raw + client[1].raw
    for at in range(len(stream)):
        assert session.data_received(stream[at : at + 1]) == (
            at + 1 in (len(client[0].raw), len(stream))
        )
    assert sent(link.take()) == broker[0].raw + broker[1].raw


def test_kafka_unframeable_bytes_are_a_miss_and_a_close_with_the_reason():
    ctx = serve("worker-kafka-tansu")
    session, link = connect(ctx, Proto.KAFKA, 19092)
    session.data_received(struct.pack(">i", -5) + b"junk")  # a negative frame size
    (close,) = link.take()
    assert isinstance(close, Close) and close.reason.startswith("client bytes cannot be framed")
    assert ctx.report.take() == [("miss", "unframeable")]
    assert session.data_received(b"more") == 0 and link.take() == []


def test_kafka_fetch_past_the_recorded_log_is_answered_empty_when_its_timer_fires():
    """A Fetch from an offset past the recorded log is held for the client's own max wait (a
    Schedule on the shell's clock) and answered, empty, only when that timer fires."""
    ctx = serve("worker-kafka-tansu")
    client = frames(ctx, 6, C2S)  # ApiVersions, Fetch
    request = decode_request(client[1].raw)
    body = request.body
    topic = body.topics[0]
    past = dataclasses.replace(topic.partitions[0], fetch_offset=10**6)
    body = dataclasses.replace(body, topics=(dataclasses.replace(topic, partitions=(past,)),))
    fetch = encode_request(FETCH, 12, 7, request.header.client_id, body)
    session, link = connect(ctx, Proto.KAFKA, 19093)
    session.data_received(client[0].raw)
    link.take()
    session.data_received(fetch)
    (wait,) = link.take()
    assert schedules([wait]) == [body.max_wait.total_seconds()]  # 0.5 s, as the client asked
    assert ctx.report.take() == [("synthesized", "Fetch")]
    wait.timer.fire()
    (answer,) = link.take()
    response = decode_response_body(FETCH, 12, answer.data)
    assert answer.data[4:8] == struct.pack(">i", 7)
    assert [p.records for t in response.responses for p in t.partitions] == [b""]
