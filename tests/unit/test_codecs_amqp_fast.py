"""The AMQP decoder's struct-only fast path must say exactly what pamqp's path says.

Checked on every golden RabbitMQ frame, on generated publish/deliver/ack/header/body frames,
and on arbitrary (often broken) payloads behind real frame headers: where the fast path answers
at all, its summary equals pamqp's; where it declines, pamqp decides.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pamqp.frame
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import body, commands, header

from rrlab.rr.canonical import dumps
from rrlab.rr.codecs import Direction
from rrlab.rr.protocols.amqp.codec import AmqpDecoder, AmqpFramer, _fast_summary

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "amqp-rabbitmq"
DEC = AmqpDecoder()
C2S = Direction.C2S


def assert_same(raw: bytes) -> bool:
    """True when the fast path took the frame; either way decode() == decode_pamqp()."""
    fast = _fast_summary(raw)
    slow = DEC.decode_pamqp(C2S, raw).summary
    assert DEC.decode(C2S, raw).summary == slow
    if fast is not None:
        assert fast == slow
        assert dumps(fast) == dumps(slow)
    return fast is not None


def test_golden_frames_agree_and_the_stream_frames_take_the_fast_path():
    taken = {}
    for path in sorted(GOLDEN.glob("*.bin")):
        direction = Direction(path.name.split(".")[1])
        for frame in AmqpFramer(direction).feed(path.read_bytes()):
            summary = DEC.decode(direction, frame.raw).summary
            label = summary.get("method") or summary["frame"]
            taken.setdefault(label, set()).add(assert_same(frame.raw))
    assert taken["body"] == {True}
    for method in ("Basic.Publish", "Basic.Deliver"):
        if method in taken:
            assert taken[method] == {True}
    assert taken["Connection.StartOk"] == {False}  # everything else: pamqp


names = st.text(max_size=40).filter(lambda s: len(s.encode()) < 256)
tags = st.integers(-(2**63), 2**63 - 1)
channels = st.integers(0, 65535)


def method_frame(channel: int, index: int, args: bytes) -> bytes:
    """Built by hand: pamqp's marshal validates names (e.g. exchange), the wire need not."""
    payload = struct.pack(">I", index) + args
    return struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce"


def shortstr(value: str) -> bytes:
    data = value.encode()
    return bytes([len(data)]) + data


@given(ch=channels, ex=names, rk=names, mandatory=st.booleans(), immediate=st.booleans())
def test_publish(ch, ex, rk, mandatory, immediate):
    bits = bytes([mandatory | immediate << 1])
    assert assert_same(
        method_frame(ch, 0x003C0028, b"\x00\x00" + shortstr(ex) + shortstr(rk) + bits)
    )
    pub = commands.Basic.Publish(exchange="ex", routing_key=rk, mandatory=mandatory)
    assert assert_same(pamqp.frame.marshal(pub, ch))


@given(ch=channels, ctag=names, tag=tags, redelivered=st.booleans(), ex=names, rk=names)
def test_deliver(ch, ctag, tag, redelivered, ex, rk):
    args = shortstr(ctag) + struct.pack(">q?", tag, redelivered) + shortstr(ex) + shortstr(rk)
    assert assert_same(method_frame(ch, 0x003C003C, args))


@given(ch=channels, tag=tags, multiple=st.booleans())
def test_ack(ch, tag, multiple):
    assert assert_same(method_frame(ch, 0x003C0050, struct.pack(">q?", tag, multiple)))
    if tag >= 0:
        ack = commands.Basic.Ack(delivery_tag=tag, multiple=multiple)
        assert assert_same(pamqp.frame.marshal(ack, ch))


@given(ch=channels, size=st.integers(0, 2**64 - 1), data=st.binary(min_size=1, max_size=300))
def test_header_without_properties_and_body(ch, size, data):
    props = commands.Basic.Properties()
    assert assert_same(pamqp.frame.marshal(header.ContentHeader(0, size, props), ch))
    assert assert_same(pamqp.frame.marshal(body.ContentBody(data), ch))


def test_properties_empty_body_and_heartbeat_go_to_pamqp():
    props = commands.Basic.Properties(content_type="text/plain", delivery_mode=2)
    assert not assert_same(pamqp.frame.marshal(header.ContentHeader(0, 5, props), 1))
    assert not assert_same(b"\x03\x00\x01\x00\x00\x00\x00\xce")  # size-0 body: pamqp refuses
    assert not assert_same(b"\x08\x00\x00\x00\x00\x00\x00\xce")
    bad_utf8 = b"\x00\x3c\x00\x28\x00\x00\x01\xff\x00\x00"  # Publish, exchange b"\xff"
    assert not assert_same(struct.pack(">BHI", 1, 1, len(bad_utf8)) + bad_utf8 + b"\xce")


methods = st.sampled_from([0x003C0028, 0x003C003C, 0x003C0050, 0x003C0078, 0x000A000B])


@settings(max_examples=500)
@given(kind=st.sampled_from([1, 2, 3]), ch=channels, method=methods, rest=st.binary(max_size=64))
def test_arbitrary_payloads_agree(kind, ch, method, rest):
    """Truncated, overlong and garbage payloads: the fast path declines or agrees."""
    payload = (struct.pack(">I", method) if kind == 1 else b"") + rest
    assert_same(struct.pack(">BHI", kind, ch, len(payload)) + payload + b"\xce")


props_sets = st.builds(
    commands.Basic.Properties,
    content_type=st.none() | st.sampled_from(["text/plain", "application/json"]),
    delivery_mode=st.none() | st.sampled_from([1, 2]),
    priority=st.none() | st.integers(0, 9),
    headers=st.none()
    | st.dictionaries(st.text(max_size=5), st.integers(0, 9) | st.text(max_size=5)),
    message_id=st.none() | st.text(max_size=10),
)


@settings(max_examples=200)
@given(props=props_sets, sizes=st.lists(st.integers(0, 2**40), min_size=1, max_size=3), ch=channels)
def test_headers_with_properties_same_summary_first_time_and_cached(props, sizes, ch):
    for size in sizes:  # the first read fills the cache, the others come from it
        raw = pamqp.frame.marshal(header.ContentHeader(0, size, props), ch)
        assert DEC.decode(C2S, raw).summary == DEC.decode_pamqp(C2S, raw).summary
    again = DEC.decode(C2S, raw).summary
    again["properties"]["mutated"] = 1  # a caller changing its summary does not touch the cache
    assert DEC.decode(C2S, raw).summary == DEC.decode_pamqp(C2S, raw).summary
