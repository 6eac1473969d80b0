"""The protocol objects and the per-connection frame pipeline (no cassette writer behind it)."""

from __future__ import annotations

import pamqp.frame
import pytest
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from pamqp import body, commands, header

from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import AMQP, KAFKA, MQTT, PROTOCOLS, protocol_for
from rrlab.rr.protocols.kafka.codec import encode_request
from rrlab.rr.protocols.kafka.rewrite import NodeMap

C2S, S2C = Direction.C2S, Direction.S2C


def amqp_stream() -> bytes:
    props = commands.Basic.Properties(content_type="text/plain")
    frames = [
        pamqp.frame.marshal(commands.Basic.Publish(exchange="", routing_key="q"), 1),
        pamqp.frame.marshal(header.ContentHeader(body_size=5, properties=props), 1),
        pamqp.frame.marshal(body.ContentBody(b"hello"), 1),
    ]
    return b"AMQP\x00\x00\x09\x01" + b"".join(frames)


def test_one_object_per_protocol():
    assert protocol_for("kafka") is KAFKA and protocol_for(Proto.AMQP) is AMQP
    assert protocol_for("mqtt") is MQTT and set(PROTOCOLS) == set(Proto)
    with pytest.raises(ValueError):
        protocol_for("stomp")
    for proto, protocol in PROTOCOLS.items():
        assert protocol.proto is proto
        assert protocol.framer(C2S).proto is proto
        assert protocol.decoder() is not protocol.decoder()  # one per connection
        assert protocol.normalize.__name__ == f"rrlab.rr.protocols.{proto.value}.normalize"


def test_pipeline_any_chunking_gives_the_same_frames():
    stream = amqp_stream()
    whole = AMQP.connection().feed(C2S, stream)
    conn = AMQP.connection()
    pieces = [f for at in range(0, len(stream), 3) for f in conn.feed(C2S, stream[at : at + 3])]
    assert [f.summary for f in pieces] == [f.summary for f in whole]
    assert b"".join(f.wire for f in pieces) == stream and len(pieces) == 4
    assert [AMQP.label(f.summary) for f in pieces] == [
        "protocol_header",
        "Basic.Publish",
        "header",
        "body",
    ]
    assert [str(AMQP.describe(f.summary)) for f in pieces[1:]] == [
        "Basic.Publish ch=1",
        "header ch=1",
        "body ch=1",
    ]
    assert conn.buffered(C2S) == 0


def test_kafka_rewriter_pairs_through_the_decoder_s_tracker():
    conn = KAFKA.connection()
    rewriter = KAFKA.rewriter(conn, NodeMap(base_port=40000))
    assert rewriter.tracker is conn.decoder.tracker
    (frame,) = conn.feed(
        C2S,
        encode_request(
            18, 3, 7, "c", ApiVersionsRequest(client_software_name="c", client_software_version="1")
        ),
    )
    assert KAFKA.label(frame.summary) == "ApiVersions"
    assert str(KAFKA.describe(frame.summary)) == "ApiVersions v3 corr=7"
    head = (20).to_bytes(4, "big") + (7).to_bytes(4, "big")
    assert rewriter.should_hold(head)  # ApiVersions responses are capped
    assert not rewriter.should_hold((20).to_bytes(4, "big") + (8).to_bytes(4, "big"))


def test_labels_of_unknown_shapes():
    assert KAFKA.label({"correlation_id": 3, "error": "no pending request has this id"}) == (
        "unknown"
    )
    assert MQTT.label({"packet": "PINGREQ"}) == "PINGREQ"


def test_every_protocol_in_the_registry_supplies_every_part():
    """Walk the registry: framer, decoder, redaction, normalizer rules, replay session, inspect
    detail, liveness and closing predicates, each the protocol's own."""
    import types

    from rrlab.rr.protocols.base import REQUIRED_ATTRIBUTES, Description, WireProtocol
    from rrlab.rr.replay.session import Session

    assert set(PROTOCOLS) == set(Proto)
    for proto, protocol in PROTOCOLS.items():
        assert isinstance(protocol, WireProtocol) and protocol.proto is proto
        assert all(hasattr(protocol, name) for name in REQUIRED_ATTRIBUTES)
        for direction in (C2S, S2C):
            assert callable(protocol.framer(direction).feed_raws)
        assert callable(protocol.decoder().decode) and callable(protocol.redact)
        assert isinstance(protocol.normalize, types.ModuleType)
        assert protocol.normalize.__name__ == f"rrlab.rr.protocols.{proto.value}.normalize"
        assert protocol.label_keys and protocol.label({}) == "unknown"
        assert isinstance(protocol.describe({}), Description) and protocol.detail({}) == ""
        assert protocol.is_liveness({}) is False and protocol.is_closing({}) is False
        module = f"rrlab.rr.protocols.{proto.value}"
        for part in ("session", "is_liveness", "is_closing", "describe", "detail"):
            assert getattr(type(protocol), part) is not getattr(WireProtocol, part), part
        assert issubclass(protocol.session.__globals__["replay"].Session, Session)
        assert protocol.session.__globals__["replay"].__name__ == f"{module}.session"


def test_a_protocol_missing_a_part_fails_at_import():
    from rrlab.rr.protocols.base import WireProtocol

    with pytest.raises(TypeError, match="does not set"):

        class Stomp(WireProtocol):  # no framer, decoder, redaction, rules
            proto = Proto.KAFKA

    class Half(WireProtocol):
        proto, label_keys, framer_cls, decoder_cls = Proto.KAFKA, ("api",), None, None
        redact = normalize = None

    with pytest.raises(TypeError, match="abstract"):
        Half()  # no session, liveness, closing, describe or detail
