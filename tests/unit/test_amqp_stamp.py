"""AMQP stamping: spliced bytes (a delivery's consumer tag, a resized body's header) equal what
pamqp marshals for the same stamped frames."""

from __future__ import annotations

import pamqp.body
import pamqp.commands
import pamqp.frame
import pamqp.header

from rrlab.rr.protocols.amqp.stamp import stamp_frames
from rrlab.rr.replay.bindings import Bindings

REC_TAG, LIVE_TAG = "ctag1.0f3c2a9e8b7d4c6a", "ctag1.live-consumer-with-a-longer-tag"
REC_ID, LIVE_ID = "2c1f7a4e-9b0d-4e61-8f3a-5d2b6c7e8a90", "7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2910"


def _delivery(tag: str, body: bytes, reply_to: str | None = None) -> list[bytes]:
    deliver = pamqp.commands.Basic.Deliver(tag, 7, False, "ex", "rk")
    props = pamqp.commands.Basic.Properties(content_type="application/json", reply_to=reply_to)
    header = pamqp.header.ContentHeader(0, len(body), props)
    return [
        pamqp.frame.marshal(deliver, 1),
        pamqp.frame.marshal(header, 1),
        pamqp.frame.marshal(pamqp.body.ContentBody(body), 1),
    ]


def _bindings() -> Bindings:
    bindings = Bindings()
    assert bindings.bind([(REC_TAG, LIVE_TAG), (REC_ID, LIVE_ID)], "test") is None
    return bindings


def test_consumer_tag_spliced_into_a_delivery() -> None:
    body = b'{"n":1}'
    assert stamp_frames(_delivery(REC_TAG, body), _bindings()) == _delivery(LIVE_TAG, body)


def test_bound_value_in_body_resizes_its_header() -> None:
    recorded = _delivery(REC_TAG, b'{"id":"%s"}' % REC_ID.encode(), reply_to=REC_ID)
    live = _delivery(LIVE_TAG, b'{"id":"%s","x":1}' % LIVE_ID.encode(), reply_to=LIVE_ID)
    bindings = _bindings()
    assert bindings.bind([('"}', '","x":1}')], "test") is None  # a body that grows
    assert stamp_frames(recorded, bindings) == live


def test_frames_without_bound_values_are_the_recorded_bytes() -> None:
    frames = _delivery("ctag1.other", b"{}")
    out = stamp_frames(frames, _bindings())
    assert out == frames
    assert all(a is b for a, b in zip(out, frames, strict=True))
