"""The protocols' template encoders (`summary_fast_json`): the lines they make are exactly
canonical JSON, for every frame of the committed cassettes and for look-alike summaries."""

from __future__ import annotations

from pathlib import Path

import canonicaljson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rrlab.rr.cassette import CassetteReader
from rrlab.rr.cassette.format import json_split, summary_encoder, summary_json
from rrlab.rr.protocols import AMQP, protocol_for
from rrlab.rr.protocols.amqp import header_json
from rrlab.rr.protocols.amqp.codec import FrozenDict
from rrlab.rr.protocols.mqtt import packet_json
from rrlab.rr.protocols.pipeline import FrameConnection
from rrlab.rr.record import _encoder

CASSETTES = Path(__file__).resolve().parents[2] / "cassettes"
NAMES = sorted(p.name for p in CASSETTES.iterdir() if p.is_dir())
LOOK_ALIKES = (1, True, 1.0, 0, False, "1", None, "", 'a"b\\', "é\x01", 2**70, -5, [1], {"x": 1})


def canonical(summary):
    return canonicaljson.encode_canonical_json(summary)


@pytest.mark.parametrize("name", NAMES)
def test_every_committed_frame_encodes_to_its_recorded_line_through_the_recorder_encoder(name):
    """Each frame of every committed cassette, through its protocol's encoder as the recorder
    builds it (cache key, then template), twice (the second time from warm caches and
    templates): the summary's bytes in the recorded line, and summary_json's."""
    with CassetteReader.open(CASSETTES / name) as reader:
        frames = list(reader.frames())
    assert frames
    for _ in range(2):
        for frame in frames:
            protocol = protocol_for(frame.proto)
            encode = summary_encoder(protocol.summary_cache_key, protocol.summary_fast_json)
            expected = summary_json(frame.summary)
            assert expected == canonical(frame.summary)
            assert encode(frame.summary) == expected, frame
            fast = protocol.summary_fast_json
            if fast is not None:
                assert fast(frame.summary) in (None, expected), frame


@pytest.mark.parametrize("name", NAMES)
def test_every_committed_frame_decoded_again_makes_its_recorded_line(name):
    """The frames' bytes through a recorder's pipeline (decoder, memo, splicers, redaction:
    the summaries as the recorder has them, frozen tables and all) and its encoder: each
    summary's JSON is the recorded line's, byte for byte."""
    with CassetteReader.open(CASSETTES / name) as reader:
        frames = list(reader.frames())
        protos = {c.id: c.proto for c in reader.manifest.connections}
    pipes = {conn: FrameConnection(protocol_for(proto)) for conn, proto in protos.items()}
    encoders = {
        conn: _encoder(summary_encoder(p.protocol.summary_cache_key, p.protocol.summary_fast_json))
        for conn, p in pipes.items()
    }
    checked = 0
    for frame in frames:
        if frame.redacted:
            continue  # its bytes were rewritten: the recorded ones decode to another summary
        (out,) = pipes[frame.conn].process(frame.dir, [frame.raw])
        if out[0] != frame.summary:
            continue  # a summary that depends on more than the frame (e.g. a rewrite)
        assert encoders[frame.conn](out[0]) == summary_json(frame.summary), frame
        checked += 1
    assert checked >= len(frames) // 2


def test_templates_cover_the_message_stream_frames_the_cache_cannot():
    """The content headers of the worker (a sequence header) and MQTT's QoS 1 PUBLISH and
    PUBACK (a packet id) come from templates: what the recorder no longer encodes in full."""
    made = {"header": 0, "PUBLISH": 0, "PUBACK": 0}
    for name in ("worker-amqp-rabbitmq", "worker-mqtt-mosquitto"):
        with CassetteReader.open(CASSETTES / name) as reader:
            for frame in reader.frames():
                fast = protocol_for(frame.proto).summary_fast_json
                kind = frame.summary.get("packet") or frame.summary.get("frame")
                if kind in made and fast(frame.summary) is not None:
                    made[kind] += 1
    assert made["header"] >= 400 and made["PUBLISH"] >= 400 and made["PUBACK"] >= 400, made


HEADER = {
    "body_size": 64,
    "channel": 1,
    "frame": "header",
    "properties": {
        "cluster_id": "",
        "content_type": "application/json",
        "delivery_mode": 1,
        "headers": {"key": "charlie", "seq": "0"},
    },
}


def test_header_template_never_answers_for_a_look_alike():
    shapes = [
        lambda v: {**HEADER, "channel": v},
        lambda v: {**HEADER, "body_size": v},
        lambda v: {**HEADER, "properties": {**HEADER["properties"], "delivery_mode": v}},
        lambda v: {**HEADER, "properties": {**HEADER["properties"], "priority": v}},
        lambda v: {**HEADER, "properties": {**HEADER["properties"], "headers": {"seq": v}}},
        lambda v: {
            **HEADER,
            "properties": {**HEADER["properties"], "headers": {"key": "k", "seq": v, "a": 1}},
        },
        lambda v: {**HEADER, "properties": {**HEADER["properties"], "headers": {"a": 1, "b": v}}},
        lambda v: {**HEADER, "properties": {**HEADER["properties"], "headers": v}},
        lambda v: {**HEADER, "properties": v},
        lambda v: {**HEADER, "extra": v},
        lambda v: {**HEADER, "properties": {**HEADER["properties"], "headers": FrozenDict(a=v)}},
        lambda v: {**HEADER, "properties": {"headers": FrozenDict(a="x", b=v), "type": v}},
        lambda v: {**HEADER, "properties": {"a": v}},
        lambda v: {**HEADER, "properties": {}},
    ]
    for shape in shapes:
        for value in LOOK_ALIKES * 2:  # twice: from a template made before too
            summary = shape(value)
            made = header_json(summary)
            assert made is None or made == canonical(summary), summary


def test_header_template_orders_and_escapes_like_canonical_json():
    for headers in (
        {},
        {"z": "1", "a": 2, "m": "x"},
        {'"headers":{}': "q", "é": "\u2028", "\x00": "\\"},
        {"headers": {}},
    ):
        for props in ({"headers": headers}, {"type": '"headers":{}', "headers": headers}):
            summary = {**HEADER, "properties": props}
            made = header_json(summary)
            assert made is None or made == canonical(summary), summary


plain = st.one_of(st.text(max_size=8), st.integers(-(2**64), 2**64))
anything = st.one_of(plain, st.booleans(), st.none(), st.floats(allow_nan=False))


@settings(max_examples=300)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "channel": st.sampled_from([0, 1, True]),
                "body_size": st.sampled_from([0, 64, 1.0]),
                "properties": st.dictionaries(
                    st.sampled_from(["content_type", "delivery_mode", "message_id", "headers"]),
                    st.one_of(anything, st.dictionaries(st.text(max_size=4), anything, max_size=4)),
                    max_size=4,
                ),
            }
        ),
        min_size=1,
        max_size=10,
    )
)
def test_header_templates_are_exactly_canonical_json(summaries):
    for summary in summaries * 2:
        summary = {"frame": "header", **summary}
        made = header_json(summary)
        assert made is None or made == canonical(summary), summary


def test_mqtt_template_never_answers_for_a_look_alike():
    publish = {
        "dup": False,
        "packet": "PUBLISH",
        "packet_id": 1,
        "payload_size": 205,
        "qos": 1,
        "retain": False,
        "topic": "t",
    }
    shapes = [lambda v, k=k: {**publish, k: v} for k in publish] + [
        lambda v: {"packet": "PUBACK", "packet_id": v},
        lambda v: {"packet": v, "packet_id": 3},
        lambda v: {"packet": "PUBACK", "packet_id": 3, "reason_code": v},
    ]
    for shape in shapes:
        for value in LOOK_ALIKES * 2:
            summary = shape(value)
            made = packet_json(summary)
            assert made is None or made == canonical(summary), summary
    for pid in (0, 1, 9, 10, 65535, -1, 2**70):
        for summary in ({**publish, "packet_id": pid}, {"packet": "PUBREC", "packet_id": pid}):
            assert packet_json(summary) == canonical(summary)


def test_credential_frames_take_no_template():
    """The templates encode summaries after redaction, and take none of the frames that carry
    a login (their summaries are encoded in full)."""
    start_ok = {
        "args": {"mechanism": "PLAIN", "response": {"len": 21}, "locale": "en_US"},
        "channel": 0,
        "frame": "method",
        "method": "Connection.StartOk",
    }
    connect = {"packet": "CONNECT", "packet_id": 1, "client_id": "c", "password": {"len": 3}}
    assert header_json(start_ok) is None and AMQP.summary_cache_key(start_ok) is None
    assert packet_json(connect) is None and packet_json({"packet": "CONNECT"}) is None


def test_json_split_finds_the_field_alone():
    summary = {"a": 'x"n":1,', "n": 1, "z": {"n": 2}}
    before, after = json_split(summary, "n", 1)
    assert before + b"7" + after == canonical({**summary, "n": 7})
    assert json_split({"a": 1, "n": "s"}, "n", "s") == (b'{"a":1,"n":', b"}")
    assert json_split({"n": 1, "z": {"n": 1}}, "n", 1) is None  # twice: which one?
    assert json_split({"n": True}, "n", True) is None
    assert json_split({"n": 1.0}, "n", 1.0) is None
