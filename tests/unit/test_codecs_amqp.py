"""AMQP decoder: pamqp-built frames summarized as channel, frame type, method, properties."""

from __future__ import annotations

import copy
import datetime
import decimal
import json

import pamqp.frame
import pytest
from pamqp import body, commands, header, heartbeat

from rrlab.rr.canonical import dumps
from rrlab.rr.codecs import Direction
from rrlab.rr.protocols import decoder_for
from rrlab.rr.protocols.amqp.codec import AmqpFramer

C2S, S2C = Direction.C2S, Direction.S2C


def test_protocol_header_and_methods():
    dec = decoder_for("amqp")
    assert dec.decode(C2S, pamqp.frame.marshal(header.ProtocolHeader(), 0)).summary == {
        "frame": "protocol_header",
        "version": [0, 9, 1],
    }
    start_ok = commands.Connection.StartOk(
        client_properties={"product": "pika", "capabilities": {"x": True}},
        response="\0guest\0secret",
    )
    got = dec.decode(C2S, pamqp.frame.marshal(start_ok, 0))
    assert got.summary["method"] == "Connection.StartOk"
    assert got.summary["args"]["response"] == {"len": 13}  # opaque blob: length only
    assert got.summary["args"]["client_properties"] == {"product": "pika"}
    pub = commands.Basic.Publish(exchange="ex", routing_key="rk", mandatory=True)
    got = dec.decode(C2S, pamqp.frame.marshal(pub, 3))
    assert got.summary == {
        "channel": 3,
        "frame": "method",
        "method": "Basic.Publish",
        "args": {
            "ticket": 0,
            "exchange": "ex",
            "routing_key": "rk",
            "mandatory": True,
            "immediate": False,
        },
    }
    assert got.body is None  # the fast path; pamqp's path carries the typed method
    assert isinstance(
        dec.decode_pamqp(C2S, pamqp.frame.marshal(pub, 3)).body, commands.Basic.Publish
    )


def test_content_header_properties_are_jsonable_and_body_size():
    props = commands.Basic.Properties(
        content_type="application/json",
        delivery_mode=2,
        headers={"f": 1.5, "d": decimal.Decimal("1.25"), "n": [1, "a"], "b": bytearray(b"\xff")},
        timestamp=datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        message_id="m-1",
    )
    raw = pamqp.frame.marshal(header.ContentHeader(body_size=11, properties=props), 3)
    got = decoder_for("amqp").decode(S2C, raw)
    assert got.summary["frame"] == "header" and got.summary["body_size"] == 11
    assert got.summary["properties"]["content_type"] == "application/json"
    assert got.summary["properties"]["headers"]["f"] == "1.5"  # floats become text
    dumps(got.summary)  # canonical JSON accepts it (no floats, no bytes)
    got = decoder_for("amqp").decode(S2C, pamqp.frame.marshal(body.ContentBody(b"hello world"), 3))
    assert got.summary == {"channel": 3, "frame": "body", "size": 11}


def test_heartbeat_and_unreadable_method():
    dec = decoder_for("amqp")
    assert dec.decode(S2C, pamqp.frame.marshal(heartbeat.Heartbeat(), 0)).summary == {
        "channel": 0,
        "frame": "heartbeat",
    }
    bogus = b"\x01\x00\x01\x00\x00\x00\x04\x00\x63\x00\x01\xce"  # class 99 method 1
    (frame,) = AmqpFramer(S2C).feed(bogus)
    got = dec.decode(S2C, frame.raw)
    assert got.summary["channel"] == 1 and "pamqp cannot read" in got.summary["error"]


def test_cached_properties_cannot_be_changed_through_a_summary():
    """Publishers repeat property sets, so the decoder reads each once and later summaries share
    it: each gets its own properties dict, the nested values are frozen (a caller changing a
    nested header gets an error); no later summary ever changes."""
    props = commands.Basic.Properties(
        content_type="application/json",
        headers={"trace": {"ids": [1, 2], "who": "w1"}, "n": 1},
        message_id="m-7",
    )
    raw = pamqp.frame.marshal(header.ContentHeader(body_size=5, properties=props), 2)
    first = decoder_for("amqp").decode(S2C, raw).summary
    expected = dumps(first)
    first["properties"]["headers"]["trace"]["ids"].append(3)  # the pamqp-path summary: its own
    first["properties"]["headers"]["trace"]["who"] = "changed"
    edits = [
        lambda p: p["headers"]["trace"]["ids"].append(3),
        lambda p: p["headers"]["trace"]["ids"].__setitem__(0, 9),
        lambda p: p["headers"]["trace"].__setitem__("who", "changed"),
        lambda p: p["headers"].pop("n"),
        lambda p: p["headers"].update(x=1),
    ]
    for edit in edits:
        again = decoder_for("amqp").decode(S2C, raw).summary  # from the cache
        assert dumps(again) == expected and again == json.loads(expected)
        with pytest.raises(TypeError, match="read-only"):
            edit(again["properties"])
    again = decoder_for("amqp").decode(S2C, raw).summary
    again["properties"]["content_type"] = "text/plain"  # its own top level: free to change
    again["properties"].pop("headers")
    again = decoder_for("amqp").decode(S2C, raw).summary
    assert dumps(again) == expected
    mine = copy.deepcopy(again["properties"])  # a copy is the caller's to edit
    mine["headers"]["trace"]["ids"].append(3)
    assert type(mine["headers"]["trace"]["ids"]) is list
    assert dumps(decoder_for("amqp").decode(S2C, raw).summary) == expected
