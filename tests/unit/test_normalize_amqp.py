"""AMQP match keys on the committed cassettes: messages assembled, what is ignored, the diff."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pamqp.body
import pamqp.commands as cmd
import pamqp.encode
import pamqp.frame
import pamqp.header
import pytest

from rrlab.rr.cassette import CassetteReader
from rrlab.rr.codecs import Direction
from rrlab.rr.protocols import decoder_for
from rrlab.rr.protocols.amqp import normalize as norm
from rrlab.rr.redact import PLACEHOLDER

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "cassettes" / "worker-amqp-rabbitmq"
TOOLS = ROOT / "cassettes" / "client-amqp-tools-rabbitmq"


def client_frames(cassette: Path, conn: int = 1) -> list[bytes]:
    with CassetteReader.open(cassette) as reader:
        return [f.raw for f in reader.frames_for(conn) if f.dir is Direction.C2S]


def messages(raws: list[bytes]) -> list[norm.Message]:
    decoder, assembler = decoder_for("amqp"), norm.Assembler()
    out = []
    for raw in raws:
        message = assembler.feed(decoder.decode(Direction.C2S, raw).summary, raw)
        if message is not None:
            out.append(message)
    return out


def one(frame_value, channel: int = 1) -> bytes:
    return pamqp.frame.marshal(frame_value, channel)


def publish_frames(body: bytes, split: int | None = None, **props) -> list[bytes]:
    chunks = [body] if split is None else [body[:split], body[split:]]
    header = pamqp.header.ContentHeader(0, len(body), cmd.Basic.Properties(**props))
    return [
        one(cmd.Basic.Publish(exchange="", routing_key="q")),
        one(header),
        *(pamqp.frame.marshal(pamqp.body.ContentBody(c), 1) for c in chunks),
    ]


def test_worker_cassette_assembles_each_publish_with_its_content():
    msgs = messages(client_frames(WORKER))
    publishes = [m for m in msgs if m.name == "Basic.Publish"]
    assert len(publishes) == 200
    first = norm.normalized(publishes[0])
    assert first["body"]["seq"] == 0
    assert first["properties"]["headers"]["key"] == first["body"]["key"]
    assert all(m.frames == 3 for m in publishes)
    assert [m.name for m in msgs[:3]] == [
        norm.PROTOCOL_HEADER,
        "Connection.StartOk",
        "Connection.TuneOk",
    ]


def test_startok_compares_mechanism_and_user_never_the_secret_or_client_software():
    recorded = messages(client_frames(WORKER)[:2])[1]
    assert norm.normalized(recorded)["args"] == {
        "locale": "en_US",
        "mechanism": "PLAIN",
        "response": {"user": "rrlab"},
    }
    live = cmd.Connection.StartOk(
        client_properties={"product": "another client", "version": "9"},
        mechanism="PLAIN",
        response="\0rrlab\0the-real-password",
        locale="en_US",
    )
    other_user = cmd.Connection.StartOk(
        mechanism="PLAIN", response="\0guest\0" + PLACEHOLDER.decode(), locale="en_US"
    )
    key = norm.match_key(recorded)
    assert norm.match_key(messages([one(live, 0)])[0]) == key
    assert norm.match_key(messages([one(other_user, 0)])[0]) != key


def test_amqplain_user_is_read_from_its_table():
    response = pamqp.encode.field_table({"LOGIN": "rrlab", "PASSWORD": "x"})[4:]
    start_ok = cmd.Connection.StartOk(mechanism="AMQPLAIN", response=response.decode())
    assert norm.sasl_user(one(start_ok, 0)) == "rrlab"


def test_a_body_split_at_another_frame_max_matches():
    body = json.dumps({"n": 17, "word": "cobalt"}).encode()
    whole = messages(publish_frames(body, content_type="application/json"))
    split = messages(publish_frames(body, split=5, content_type="application/json"))
    assert len(whole) == len(split) == 1 and split[0].frames == 4
    assert norm.match_key(whole[0]) == norm.match_key(split[0])


def test_client_chosen_consumer_tag_is_ignored_but_an_empty_one_is_not():
    def consume(tag: str) -> norm.Message:
        return messages([one(cmd.Basic.Consume(queue="q", consumer_tag=tag))])[0]

    assert norm.match_key(consume("ctag1.aaaa")) == norm.match_key(consume("ctag1.bbbb"))
    assert norm.match_key(consume("")) != norm.match_key(consume("ctag1.aaaa"))


def test_cancel_compares_the_recorded_tag_the_live_one_was_mapped_to():
    recorded = messages([one(cmd.Basic.Cancel(consumer_tag="ctag1.rec"))])[0]
    live = messages([one(cmd.Basic.Cancel(consumer_tag="ctag1.live"))])[0]
    mapped = norm.Options(live_tags={"ctag1.live": "ctag1.rec"})
    assert norm.match_key(live, mapped) == norm.match_key(recorded)
    assert norm.match_key(live) != norm.match_key(recorded)


def test_tuneok_heartbeat_is_not_compared():
    def tune_ok(heartbeat: int) -> norm.Message:
        frame = cmd.Connection.TuneOk(channel_max=2047, frame_max=131072, heartbeat=heartbeat)
        return messages([one(frame, 0)])[0]

    assert norm.match_key(tune_ok(60)) == norm.match_key(tune_ok(5))
    assert norm.normalized(tune_ok(5))["args"] == {"channel_max": 2047, "frame_max": 131072}


def test_heartbeats_are_liveness():
    raw = b"\x08\x00\x00\x00\x00\x00\x00\xce"
    summary = decoder_for("amqp").decode(Direction.C2S, raw).summary
    assert norm.is_liveness(summary)
    assert not norm.is_liveness({"frame": "method", "method": "Basic.Ack"})


def test_diff_names_the_changed_payload_field():
    rec = messages(publish_frames(b'{"n": 17, "word": "dune"}', content_type="a/b"))[0]
    live = messages(publish_frames(b'{"n": 18, "word": "dune"}', content_type="a/c"))[0]
    assert norm.diff(norm.normalized(rec), norm.normalized(live)) == [
        'Basic.Publish ch 1 properties.content_type: recorded "a/b" live "a/c"',
        "Basic.Publish ch 1 body.n: recorded 17 live 18",
    ]


def test_diff_of_text_bodies_and_of_different_methods():
    rec = messages(publish_frames(b"msg-0001 n=1"))[0]
    live = messages(publish_frames(b"msg-0001 n=2"))[0]
    assert norm.diff(norm.normalized(rec), norm.normalized(live)) == [
        'Basic.Publish ch 1 body: recorded "msg-0001 n=1" live "msg-0001 n=2"'
    ]
    ack = messages([one(cmd.Basic.Ack(delivery_tag=1))])[0]
    assert norm.diff(norm.normalized(ack), norm.normalized(live)) == [
        "Basic.Publish ch 1: recorded Basic.Ack ch 1 live Basic.Publish ch 1"
    ]


def test_user_ignore_rules_drop_json_fields_and_headers():
    a = messages(publish_frames(b'{"n": 1, "ts": 100}', headers={"trace": "a", "k": "v"}))[0]
    b = messages(publish_frames(b'{"n": 1, "ts": 200}', headers={"trace": "b", "k": "v"}))[0]
    assert norm.match_key(a) != norm.match_key(b)
    opts = norm.Options(ignore_fields=("ts",), ignore_headers=("trace",))
    assert norm.match_key(a, opts) == norm.match_key(b, opts)


@pytest.mark.parametrize("conn", [1, 2, 3, 4])
def test_amqp_tools_connections_normalize_without_strays(conn):
    msgs = messages(client_frames(TOOLS, conn))
    names = {m.name for m in msgs}
    assert not names & {"header", "body"}, names  # every content frame joined its method
    assert msgs[1].name == "Connection.StartOk"
    assert norm.normalized(msgs[1])["args"]["response"] == {"user": "rrlab"}


def _at(seconds: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)


def test_ignore_paths_reach_properties_their_headers_and_method_args():
    """pika services set message_id=uuid4() and timestamp=now: with those paths ignored two such
    publishes match, without them the diff names the property."""
    a = messages(
        publish_frames(
            b'{"n": 1}', message_id="a1f0", timestamp=_at(1700000000), headers={"x": "1", "k": "v"}
        )
    )[0]
    b = messages(
        publish_frames(
            b'{"n": 1}', message_id="9c2e", timestamp=_at(1700000042), headers={"x": "2", "k": "v"}
        )
    )[0]
    assert norm.diff(norm.normalized(a), norm.normalized(b)) == [
        'Basic.Publish ch 1 properties.headers.x: recorded "1" live "2"',
        'Basic.Publish ch 1 properties.message_id: recorded "a1f0" live "9c2e"',
        'Basic.Publish ch 1 properties.timestamp: recorded "2023-11-14T22:13:20+00:00" '
        'live "2023-11-14T22:14:02+00:00"',
    ]
    paths = ("properties.message_id", "properties.timestamp", "properties.headers.x")
    assert norm.match_key(a, norm.Options(ignore_fields=paths)) == norm.match_key(
        b, norm.Options(ignore_fields=paths)
    )
    half = norm.Options(ignore_fields=paths[:2])
    assert norm.match_key(a, half) != norm.match_key(b, half)
    by_header = norm.Options(ignore_fields=paths[:2], ignore_headers=("x",))
    assert norm.match_key(a, by_header) == norm.match_key(b, by_header)
    declare = [messages([one(cmd.Queue.Declare(queue=q))])[0] for q in ("q.1", "q.2")]
    args = norm.Options(ignore_fields=("args.queue",))
    assert norm.match_key(declare[0], args) == norm.match_key(declare[1], args)
    assert norm.match_key(declare[0]) != norm.match_key(declare[1])


def test_body_lists_are_crossed_by_an_ignore_path():
    """`items.id` is the id of every element (rr.diff's list rule, as for Kafka and MQTT)."""
    a = messages(publish_frames(b'{"items": [{"id": 1, "n": 1}, {"id": 2, "n": 2}]}'))[0]
    b = messages(publish_frames(b'{"items": [{"id": 7, "n": 1}, {"id": 8, "n": 2}]}'))[0]
    c = messages(publish_frames(b'{"items": [{"id": 7, "n": 1}, {"id": 8, "n": 3}]}'))[0]
    opts = norm.Options(ignore_fields=("items.id",))
    assert norm.match_key(a, opts) == norm.match_key(b, opts)
    assert norm.match_key(a, opts) != norm.match_key(c, opts)
    assert norm.diff(norm.normalized(a, opts), norm.normalized(c, opts)) == [
        "Basic.Publish ch 1 body.items[1].n: recorded 2 live 3"
    ]


def test_a_body_compares_by_its_bytes_unless_a_path_reaches_into_it():
    a = messages(publish_frames(b'{"a":1,"ts":1}'))[0]
    b = messages(publish_frames(b'{"ts": 1, "a": 1}'))[0]
    assert norm.match_key(a) != norm.match_key(b)
    assert norm.diff(norm.normalized(a), norm.normalized(b), a.body, b.body) == [
        "Basic.Publish ch 1 body: same value, different bytes"
    ]
    opts = norm.Options(ignore_fields=("ts",))
    assert norm.match_key(a, opts) == norm.match_key(b, opts)


def test_only_a_graceful_close_is_closing():
    """Close with reply-success (200, or 0 from clients that send it) and the CloseOk answers
    are teardown; a Close carrying an error code is the client reporting a problem."""

    def summary(frame, channel: int = 1) -> dict:
        return decoder_for("amqp").decode(Direction.C2S, one(frame, channel)).summary

    assert norm.is_closing(summary(cmd.Channel.Close(200, "Normal shutdown", 0, 0)))
    assert norm.is_closing(summary(cmd.Channel.Close(0, "", 0, 0)))
    assert norm.is_closing(summary(cmd.Connection.Close(200, "bye", 0, 0), 0))
    assert norm.is_closing(summary(cmd.Channel.CloseOk()))
    assert norm.is_closing(summary(cmd.Connection.CloseOk(), 0))
    assert not norm.is_closing(summary(cmd.Connection.Close(505, "UNEXPECTED_FRAME", 0, 0), 0))
    assert not norm.is_closing(summary(cmd.Basic.Cancel("ctag")))
