"""rr.record_runs: what two recordings of one command say varies (no sockets: the cassettes are
written from AMQP frames made with pamqp, as the proxy would record them)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pamqp.body
import pamqp.commands
import pamqp.frame
import pamqp.header
import pytest

from rrlab.replayer.rules import load_rules
from rrlab.rr.cassette import CassetteWriter
from rrlab.rr.codecs import Direction
from rrlab.rr.record import recorder_for
from rrlab.rr.record_runs import compare, rules
from rrlab.rr.usage import UsageError

Message = tuple[str, dict[str, Any], dict[str, Any]]  # routing key, headers, JSON body


def _publish(channel: int, message: Message) -> bytes:
    key, headers, body = message
    data = json.dumps(body).encode()
    props = pamqp.commands.Basic.Properties(headers=headers, content_type="application/json")
    return b"".join(
        (
            pamqp.frame.marshal(
                pamqp.commands.Basic.Publish(exchange="", routing_key=key), channel
            ),
            pamqp.frame.marshal(pamqp.header.ContentHeader(0, len(data), props), channel),
            pamqp.frame.marshal(pamqp.body.ContentBody(data), channel),
        )
    )


def _cassette(path: Path, connections: list[list[Message]], frame_gap_s: float = 0.0) -> Path:
    """One AMQP connection per list, each opening a channel and publishing its messages; each
    frame is stamped `frame_gap_s` after the one before (a clock of our own)."""
    ticks = iter(range(0, 1 << 62, int(frame_gap_s * 1e9) or 1000))
    writer = CassetteWriter.create(path, clock_ns=lambda: next(ticks))
    for messages in connections:
        conn = writer.open_connection("amqp", "127.0.0.1:1", "127.0.0.1:2")
        rec = recorder_for(writer, conn, "amqp")
        rec.feed(Direction.C2S, b"AMQP\x00\x00\x09\x01")
        rec.feed(Direction.C2S, pamqp.frame.marshal(pamqp.commands.Channel.Open(), 1))
        for message in messages:
            rec.feed(Direction.C2S, _publish(1, message))
        rec.close("client closed")
    writer.finalize()
    return path


def _stamped(*stamps: int) -> list[Message]:
    return [("q", {"stamp": stamp}, {"n": n}) for n, stamp in enumerate(stamps)]


def test_identical_runs_learn_nothing(tmp_path):
    a = _cassette(tmp_path / "a", [_stamped(1, 2)])
    b = _cassette(tmp_path / "b", [_stamped(1, 2)])
    found = compare(a, b)
    assert found.repeatable and not found.learned and not found.left
    assert found.compared == 1


def test_a_value_that_varies_becomes_an_ignore_rule_saying_where(tmp_path):
    a = _cassette(tmp_path / "a", [_stamped(11, 12, 13)])
    b = _cassette(tmp_path / "b", [_stamped(11, 99, 77)])
    found = compare(a, b)
    assert found.repeatable and list(found.learned) == ["properties.headers.stamp"]
    varied = found.learned["properties.headers.stamp"]
    assert varied.places[0] == (
        "conn 1 message 4 (ch 1 Basic.Publish) properties.headers.stamp: run 1 12 run 2 99"
    )
    assert "and 1 more place" in varied.comment()
    doc = rules(found)
    assert doc["ignore_fields"] == ["properties.headers.stamp"]
    assert doc["comments"]["properties.headers.stamp"].startswith(
        "rrlab record --runs 2: varied between the runs at conn 1 message 4"
    )


def test_identifier_shaped_values_are_left_to_binding(tmp_path):
    """A UUID (a correlation id, a reply queue) is bound by replay: an ignore rule would hide it
    from binding, so none is written; a pid in `name<pid>@host` likewise."""

    def run(path: Path) -> Path:
        ident = str(uuid.uuid4())
        headers = {"id": ident, "origin": f"gen{uuid.uuid4().int % 90000 + 10000}@host"}
        return _cassette(path, [[(f"reply.{ident}", headers, {"n": 1})]])

    found = compare(run(tmp_path / "a"), run(tmp_path / "b"))
    assert found.repeatable and not found.learned
    assert set(found.left) == {
        "args.routing_key",
        "properties.headers.id",
        "properties.headers.origin",
    }
    assert all("identifier-shaped" in varied.why for varied in found.left.values())


def test_another_number_of_messages_is_not_repeatable(tmp_path):
    a = _cassette(tmp_path / "a", [_stamped(1, 2)])
    b = _cassette(tmp_path / "b", [_stamped(1, 2, 3)])
    found = compare(a, b)
    assert not found.repeatable and not found.learned
    assert found.structure == [
        "conn 1 ch 1 client message 4: run 1 sent (nothing more), run 2 (conn 1 on ch 1) sent "
        "Basic.Publish (4 and 5 client messages)"
    ]


def _threads(path: Path, sends: list[tuple[int, str]]) -> Path:
    """One AMQP connection whose channels publish in the order given (channel, routing key),
    each channel opened before its first publish: a worker's threads sharing a socket."""
    writer = CassetteWriter.create(path)
    conn = writer.open_connection("amqp", "127.0.0.1:1", "127.0.0.1:2")
    rec = recorder_for(writer, conn, "amqp")
    rec.feed(Direction.C2S, b"AMQP\x00\x00\x09\x01")
    opened: set[int] = set()
    for channel, key in sends:
        if channel not in opened:
            opened.add(channel)
            rec.feed(Direction.C2S, pamqp.frame.marshal(pamqp.commands.Channel.Open(), channel))
        rec.feed(Direction.C2S, _publish(channel, (key, {}, {"key": key})))
    rec.close("client closed")
    writer.finalize()
    return path


def test_channels_numbered_and_interleaved_otherwise_are_scheduling(tmp_path):
    """Two threads of a worker, each on its own channel: which opened first (channel 1) and how
    their messages interleave is the scheduler's; each channel's own order is structure."""
    a = _threads(tmp_path / "a", [(1, "events"), (2, "tasks"), (1, "events"), (2, "results")])
    b = _threads(tmp_path / "b", [(1, "tasks"), (1, "results"), (2, "events"), (2, "events")])
    found = compare(a, b)
    assert found.repeatable, found.structure
    assert not found.learned and not found.left
    c = _threads(tmp_path / "c", [(1, "results"), (1, "tasks"), (2, "events"), (2, "events")])
    assert compare(a, c).repeatable  # the same methods in order: their values are compared
    d = _threads(tmp_path / "d", [(1, "tasks"), (1, "results"), (2, "events")])
    found = compare(a, d)
    assert found.structure == [
        "conn 1 ch 2 client message 3: run 1 sent Basic.Publish, run 2 (conn 1 on ch 2) sent "
        "(nothing more) (7 and 6 client messages)"
    ]


def test_another_number_of_connections_is_not_repeatable(tmp_path):
    a = _cassette(tmp_path / "a", [_stamped(1)])
    b = _cassette(tmp_path / "b", [_stamped(1), _stamped(1)])
    found = compare(a, b)
    assert found.structure == ["run 1 opened 1 connection(s) like conn 1 of run 1, run 2 opened 2"]


def test_which_pool_member_sent_what_is_scheduling(tmp_path):
    """Two children that connect alike: which of them published which result, and how many
    each, is the pool's scheduling, not a value that varied."""
    results = [("r", {}, {"order": n}) for n in range(3)]
    a = _cassette(tmp_path / "a", [results[:2], results[2:]])
    b = _cassette(tmp_path / "b", [results[1:2], [results[0], results[2]]])
    found = compare(a, b)
    assert found.repeatable and not found.learned and not found.left


def test_learned_rules_join_the_existing_file_and_load(tmp_path):
    a = _cassette(tmp_path / "a", [_stamped(1)])
    b = _cassette(tmp_path / "b", [_stamped(2)])
    existing = {"ignore_fields": ["trace.id"], "ignore_headers": ["traceparent"]}
    doc = rules(compare(a, b), existing)
    assert doc["ignore_fields"] == ["trace.id", "properties.headers.stamp"]
    assert doc["ignore_headers"] == ["traceparent"]
    (a / "replay-rules.json").write_text(json.dumps(doc))
    loaded = load_rules(a)
    assert loaded["ignore_fields"] == ("trace.id", "properties.headers.stamp")


def test_comments_in_a_rules_file_must_be_notes(tmp_path):
    a = _cassette(tmp_path / "a", [_stamped(1)])
    (a / "replay-rules.json").write_text(json.dumps({"comments": {"x": 1}}))
    with pytest.raises(UsageError, match="comments must be an object of strings"):
        load_rules(a)


def _consumer(path: Path, tag: str) -> Path:
    writer = CassetteWriter.create(path)
    conn = writer.open_connection("amqp", "127.0.0.1:1", "127.0.0.1:2")
    rec = recorder_for(writer, conn, "amqp")
    stream = b"AMQP\x00\x00\x09\x01" + pamqp.frame.marshal(pamqp.commands.Channel.Open(), 1)
    stream += pamqp.frame.marshal(pamqp.commands.Basic.Consume(queue="q", consumer_tag=tag), 1)
    stream += pamqp.frame.marshal(pamqp.commands.Basic.Cancel(consumer_tag=tag), 1)
    rec.feed(Direction.C2S, stream)
    rec.close("client closed")
    writer.finalize()
    return path


def test_a_client_chosen_consumer_tag_is_what_replay_maps(tmp_path):
    """pika's random tag, in Basic.Consume and again in Basic.Cancel: replay maps it already."""
    found = compare(_consumer(tmp_path / "a", "ctag1.aa"), _consumer(tmp_path / "b", "ctag1.bb"))
    assert found.repeatable and not found.learned and not found.left


def _mqtt(path: Path, client_id: str, topic: str, payload: dict[str, Any]) -> Path:
    """An MQTT 3.1.1 client: CONNECT (clean session, no credentials), one QoS 0 PUBLISH."""

    def field(text: str) -> bytes:
        return len(text.encode()).to_bytes(2, "big") + text.encode()

    def packet(first: int, body: bytes) -> bytes:
        return bytes([first, len(body)]) + body  # bodies under 128 bytes

    connect = field("MQTT") + bytes([4, 0x02, 0, 30]) + field(client_id)
    stream = packet(0x10, connect) + packet(0x30, field(topic) + json.dumps(payload).encode())
    writer = CassetteWriter.create(path)
    conn = writer.open_connection("mqtt", "127.0.0.1:1", "127.0.0.1:2")
    rec = recorder_for(writer, conn, "mqtt")
    rec.feed(Direction.C2S, stream)
    rec.close("client closed")
    writer.finalize()
    return path


def test_mqtt_payload_values_are_learned_and_topics_are_named(tmp_path):
    """A payload field becomes a rule; a topic cannot be reached by one (named, not written);
    the client id is what replay already ignores in CONNECT."""
    a = _mqtt(tmp_path / "a", "svc-1", "orders/east", {"n": 1, "seed": 7})
    b = _mqtt(tmp_path / "b", "svc-2", "orders/west", {"n": 1, "seed": 9})
    found = compare(a, b)
    assert found.repeatable
    assert list(found.learned) == ["payload.seed"]
    assert list(found.left) == ["topic"]
    assert found.left["topic"].why == "outside what an ignore rule reaches"


def test_a_publish_on_a_clock_is_liveness(tmp_path):
    """A status event published every second or more (a Celery worker's heartbeat): how many
    depends on how long the run took; left out, with what was seen."""
    beat = ("worker.heartbeat", {}, {"alive": True})
    a = _cassette(tmp_path / "a", [[beat, beat, beat]], frame_gap_s=2.0)
    b = _cassette(tmp_path / "b", [[beat]], frame_gap_s=2.0)
    found = compare(a, b)
    assert found.repeatable and not found.learned
    assert found.clock == {
        "exchange '' key 'worker.heartbeat'": "exchange '' key 'worker.heartbeat': 3 "
        "publish(es) in run 1, 1 in run 2, each 1 s or more apart (a publish on a clock: left "
        "to replay)"
    }


def test_a_burst_of_more_publishes_is_not_a_clock(tmp_path):
    beat = ("worker.heartbeat", {}, {"alive": True})
    a = _cassette(tmp_path / "a", [[beat, beat, beat]], frame_gap_s=0.01)
    b = _cassette(tmp_path / "b", [[beat]], frame_gap_s=0.01)
    found = compare(a, b)
    assert not found.repeatable and not found.clock


def _declares(path: Path, exchanges: list[str]) -> Path:
    """One connection declaring each exchange on a channel of its own, in this order."""
    writer = CassetteWriter.create(path)
    conn = writer.open_connection("amqp", "127.0.0.1:1", "127.0.0.1:2")
    rec = recorder_for(writer, conn, "amqp")
    rec.feed(Direction.C2S, b"AMQP\x00\x00\x09\x01")
    for channel, exchange in enumerate(exchanges, start=1):
        declare = pamqp.commands.Exchange.Declare(exchange=exchange, exchange_type="topic")
        rec.feed(Direction.C2S, pamqp.frame.marshal(pamqp.commands.Channel.Open(), channel))
        rec.feed(Direction.C2S, pamqp.frame.marshal(declare, channel))
    rec.close("client closed")
    writer.finalize()
    return path


def test_which_channel_was_set_up_first_is_scheduling(tmp_path):
    """A worker's consumers open their channels in the order their threads got there: the
    same declarations on swapped channels teach no rule (an ignore path on args.exchange
    would blind the replay to every exchange)."""
    a = _declares(tmp_path / "a", ["celeryev", "celery.pidbox"])
    b = _declares(tmp_path / "b", ["celery.pidbox", "celeryev"])
    found = compare(a, b)
    assert found.repeatable and not found.learned and not found.left
