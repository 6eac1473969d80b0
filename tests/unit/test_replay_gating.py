"""Playbooks (no sockets) for what a replay owes the recording beyond matching frames (issue N):
a delivery waits for the live publish that produced it in the recording, on whichever
connection it comes; acks of concurrent deliveries match by delivery tag in any order; a
recorded behaviour frame the live command never sent is a miss in every profile.

The AMQP cassette is tests/replay/amqp_cassettes/pika-two-connections: connection 1 declares
the queue and consumes, connection 2 publishes ten messages with confirms (recorded before the
consumer's Basic.Consume, so the ten Basic.Deliver frames follow its Basic.ConsumeOk).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from replay_playbook import connect, frames, serve

from rrlab.replayer.report import ReplayReport
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import protocol_for
from rrlab.rr.protocols.amqp.codec import AmqpDecoder, AmqpFramer
from rrlab.rr.replay.recording import Role
from rrlab.rr.replay.session import Schedule, Send

C2S, S2C = Direction.C2S, Direction.S2C
FIXTURES = Path(__file__).resolve().parents[1] / "replay" / "amqp_cassettes"
TWO = str(FIXTURES / "pika-two-connections")
PORT = 15673


def methods(actions: list) -> list[str]:
    """The AMQP methods the actions sent, in order (content frames and the heartbeat timer
    left out)."""
    framer, decoder = AmqpFramer(S2C, 1 << 20), AmqpDecoder()
    out = []
    for action in actions:
        if isinstance(action, Schedule):
            continue
        assert isinstance(action, Send), action
        for raw in framer.feed_raws(action.data):
            method = decoder.decode(S2C, raw).summary.get("method")
            if method:
                out.append(method)
    return out


def consumer_up_to_consume(ctx):
    """The consumer connection (recorded conn 1) through its Basic.Consume."""
    client = frames(ctx, 1, C2S)
    consume = next(i for i, f in enumerate(client) if f.summary.get("method") == "Basic.Consume")
    session, link = connect(ctx, Proto.AMQP, PORT)
    session.data_received(b"".join(f.raw for f in client[: consume + 1]))
    return session, link


def publisher_frames(ctx) -> tuple[bytes, list[bytes]]:
    """The publisher's (recorded conn 2) client bytes up to its first publish, then each
    publish (method, header, body) on its own."""
    client = frames(ctx, 2, C2S)
    starts = [i for i, f in enumerate(client) if f.summary.get("method") == "Basic.Publish"]
    opening = b"".join(f.raw for f in client[: starts[0]])
    publishes = [b"".join(f.raw for f in client[i : i + 3]) for i in starts]
    return opening, publishes


def test_amqp_delivery_waits_for_its_publish_on_another_connection():
    ctx = serve(TWO)
    consumer, con_link = consumer_up_to_consume(ctx)
    sent = methods(con_link.take())
    assert sent[-1] == "Basic.ConsumeOk" and "Basic.Deliver" not in sent
    publisher, pub_link = connect(ctx, Proto.AMQP, PORT)
    opening, publishes = publisher_frames(ctx)
    publisher.data_received(opening)
    assert "Basic.Deliver" not in methods(con_link.take())  # opening a channel publishes nothing
    publisher.data_received(publishes[0])
    assert methods(pub_link.take())[-1] == "Basic.Ack"  # the broker's confirm
    assert methods(con_link.take()) == ["Basic.Deliver"]  # the first message, only
    for publish in publishes[1:]:
        publisher.data_received(publish)
    assert methods(con_link.take()) == ["Basic.Deliver"] * 9
    assert ctx.report.misses == []


def test_amqp_no_publish_no_delivery_and_the_publishes_never_sent_are_misses():
    """The publisher connects and confirms but never publishes: the consumer gets nothing,
    and the ten recorded publishes are misses in the default (not strict) profile, each named
    with its recorded connection and position."""
    ctx = serve(TWO)
    consumer, con_link = consumer_up_to_consume(ctx)
    publisher, _pub_link = connect(ctx, Proto.AMQP, PORT)
    opening, _publishes = publisher_frames(ctx)
    publisher.data_received(opening)
    assert "Basic.Deliver" not in methods(con_link.take())
    report = ReplayReport()
    report.collect_unused(ctx.recording)
    assert report.verdict(strict=False) == "miss"
    never = [m for m in report.misses if m.api == "Basic.Publish"]
    assert len(never) == 10 and {m.recorded_conn for m in never} == {2}
    assert never[0].live_conn == 2
    assert "recorded Basic.Publish never sent by the live command: recorded conn 2 frame" in (
        never[0].reason
    )
    assert report.never_sent == 10 + 10  # the publishes, and the consumer's acks of them


def test_unused_liveness_and_setup_frames_stay_out_of_the_verdict():
    """A whole recorded run consumed but for its heartbeats and its channel's Basic.Qos: the
    heartbeats are liveness, Basic.Qos is setup; neither fails the default profile (strict
    still fails on Basic.Qos)."""
    ctx = serve(TWO)
    for rc in ctx.recording.conns:
        for f in rc.frames:
            if f.dir is C2S and f.summary.get("method") != "Basic.Qos":
                rc.used.add(f.index)
    report = ReplayReport()
    report.collect_unused(ctx.recording)
    assert report.never_sent == 0 and report.misses == []
    assert report.verdict(strict=False) == "ok"
    assert report.verdict(strict=True) == "unused"


def test_amqp_acks_of_concurrent_deliveries_match_by_tag_in_any_order():
    """pika-acks: twenty deliveries, acked one by one in the recording. Live, a pool finishes
    them in another order: each group of five acked in reverse, in transcript mode (the
    default). Every ack matches its delivery tag's recorded ack; nothing is missed or left."""
    ctx = serve(str(FIXTURES / "pika-acks"))
    client = frames(ctx, 1, C2S)
    acks = [i for i, f in enumerate(client) if f.summary.get("method") == "Basic.Ack"]
    assert len(acks) == 20 and acks == list(range(acks[0], acks[0] + 20))
    session, link = connect(ctx, Proto.AMQP, PORT)
    session.data_received(b"".join(f.raw for f in client[: acks[0]]))
    shuffled = [i for at in range(0, 20, 5) for i in reversed(acks[at : at + 5])]
    assert shuffled[:2] == [acks[4], acks[3]]
    for i in shuffled:
        session.data_received(client[i].raw)
    session.data_received(b"".join(f.raw for f in client[acks[-1] + 1 :]))
    assert ctx.report.misses == []
    assert ctx.report.matched_by["Basic.Ack"] == 20
    report = ReplayReport()
    report.collect_unused(ctx.recording)
    assert report.unused_count == 0 and report.never_sent == 0


def test_amqp_a_message_sent_before_a_recorded_ack_keeps_its_own_order():
    """The acks' lane is apart from the other messages: a live client that cancels its
    consumer before acking the last delivery (recorded: ack, then cancel) still matches, and
    the ack after it too; a message the recording does not have next is still a miss."""
    ctx = serve(str(FIXTURES / "pika-acks"))
    client = frames(ctx, 1, C2S)
    last_ack = max(i for i, f in enumerate(client) if f.summary.get("method") == "Basic.Ack")
    cancel = last_ack + 1
    assert client[cancel].summary["method"] == "Basic.Cancel"
    session, _link = connect(ctx, Proto.AMQP, PORT)
    session.data_received(b"".join(f.raw for f in client[:last_ack]))
    session.data_received(client[cancel].raw)  # before the last ack
    session.data_received(client[last_ack].raw)
    assert ctx.report.misses == []
    consume = next(f for f in client if f.summary.get("method") == "Basic.Consume")
    session.data_received(consume.raw)  # again: no recorded one is left
    assert [m.api for m in ctx.report.misses] == ["Basic.Consume"]


@pytest.mark.parametrize(
    ("proto", "summary", "role"),
    [
        (Proto.AMQP, {"frame": "method", "method": "Basic.Publish"}, Role.BEHAVIOUR),
        (Proto.AMQP, {"frame": "method", "method": "Basic.Reject"}, Role.BEHAVIOUR),
        (Proto.AMQP, {"frame": "method", "method": "Queue.Declare"}, Role.BEHAVIOUR),
        (Proto.AMQP, {"frame": "method", "method": "Basic.Qos"}, Role.SETUP),
        (Proto.AMQP, {"frame": "heartbeat", "channel": 0}, Role.LIVENESS),
        (Proto.AMQP, {"method": "Channel.Close", "args": {"reply_code": 200}}, Role.CLOSING),
        (Proto.KAFKA, {"api": "Produce"}, Role.BEHAVIOUR),
        (Proto.KAFKA, {"api": "JoinGroup"}, Role.BEHAVIOUR),
        (Proto.KAFKA, {"api": "EndTxn"}, Role.BEHAVIOUR),
        (Proto.KAFKA, {"api": "Fetch"}, Role.LIVENESS),
        (Proto.KAFKA, {"api": "Metadata"}, Role.LIVENESS),
        (Proto.KAFKA, {"api": "ApiVersions"}, Role.LIVENESS),
        (Proto.KAFKA, {"api": "OffsetCommit"}, Role.LIVENESS),  # auto-commit: on a clock
        (Proto.KAFKA, {"api": "LeaveGroup"}, Role.CLOSING),
        (Proto.KAFKA, {"api": "ListOffsets"}, Role.SETUP),
        (Proto.MQTT, {"packet": "PUBLISH"}, Role.BEHAVIOUR),
        (Proto.MQTT, {"packet": "SUBSCRIBE"}, Role.BEHAVIOUR),
        (Proto.MQTT, {"packet": "PUBACK"}, Role.BEHAVIOUR),
        (Proto.MQTT, {"packet": "PINGREQ"}, Role.LIVENESS),
        (Proto.MQTT, {"packet": "DISCONNECT", "reason_code": 0}, Role.CLOSING),
        (Proto.MQTT, {"packet": "CONNECT"}, Role.SETUP),
    ],
)
def test_each_protocol_says_which_client_frames_are_behaviour(proto, summary, role):
    assert protocol_for(proto).role(summary) is role


def test_mqtt_publishes_never_sent_are_misses_in_the_default_profile():
    """worker-mqtt-mosquitto: the subscriber came, the publisher never did: its PUBLISHes are
    misses (named on its recorded connection, no live connection bound), not only unused."""
    ctx = serve("worker-mqtt-mosquitto")
    subscriber = ctx.recording.conn(1)
    subscriber.claimed_by = 1
    subscriber.used.update(f.index for f in subscriber.frames if f.dir is C2S)
    report = ReplayReport()
    report.collect_unused(ctx.recording)
    assert report.verdict(strict=False) == "miss"
    publishes = [m for m in report.misses if m.api == "PUBLISH"]
    assert publishes and {m.recorded_conn for m in publishes} == {2}
    assert publishes[0].live_conn is None and "no live connection bound" in publishes[0].reason
    assert "MISS mqtt PUBLISH on no live conn (recorded conn 2)" in publishes[0].line()


def test_amqp_a_pool_member_binds_by_its_own_frames_past_the_rebind_window():
    """pika-pool: two connections open alike and publish the same 80 messages (over 160 steps),
    then declare different queues. A live connection doing the second one's work binds to the
    first recording (it connected first) and moves when its Queue.Declare tells them apart."""
    ctx = serve(str(FIXTURES / "pika-pool"))
    session, link = connect(ctx, Proto.AMQP, PORT)
    second = frames(ctx, 2, C2S)
    session.data_received(b"".join(f.raw for f in second))
    assert ctx.report.misses == []
    assert session.bound is ctx.recording.conn(2)
    assert ctx.report.matched_by["Queue.Declare"] == 1
