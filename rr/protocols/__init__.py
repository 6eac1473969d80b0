"""One object per wire protocol: everything protocol-specific the recorder, `rrlab inspect` and
the replayer need, in one place (`rr.cassette` knows no protocol).

    protocol = protocol_for("kafka")
    protocol.framer(direction) / protocol.decoder()      # codecs (one decoder per connection)
    protocol.label(summary) / protocol.describe(summary) # a frame's name / one-line description
    conn = protocol.connection()                         # the frame pipeline of one connection
    conn.feed(direction, data) -> [PipelineFrame(summary, raw, redacted, wire, decoded), ...]
"""

from __future__ import annotations

from rr.codecs import DEFAULT_MAX_FRAME_BYTES, Decoded, Decoder, Direction, Framer, Proto

from .amqp import AMQP, AmqpProtocol
from .base import Description, WireProtocol
from .kafka import KAFKA, KafkaProtocol
from .mqtt import MQTT, MqttProtocol
from .pipeline import FrameConnection, PipelineFrame

PROTOCOLS: dict[Proto, WireProtocol] = {Proto.KAFKA: KAFKA, Proto.AMQP: AMQP, Proto.MQTT: MQTT}


def protocol_for(proto: Proto | str) -> WireProtocol:
    """The protocol object of `proto` ("kafka", "amqp", "mqtt"); ValueError for anything else."""
    return PROTOCOLS[Proto(proto)]


def framer_for(
    proto: Proto | str, direction: Direction | str, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> Framer:
    """A fresh incremental framer for one direction of one connection."""
    return protocol_for(proto).framer(direction, max_frame_bytes)


def decoder_for(proto: Proto | str) -> Decoder:
    """A fresh decoder for one connection (use one per connection, both directions)."""
    return protocol_for(proto).decoder()


def redact(
    proto: Proto | str,
    direction: Direction | str,
    raw: bytes,
    decoded: Decoded,
    decoder: Decoder | None = None,
) -> tuple[bytes, Decoded]:
    """Credentials out of one frame of `proto` (see `rr.redact`; the protocol decides)."""
    return protocol_for(proto).redact(Direction(direction), raw, decoded, decoder)


__all__ = [
    "AMQP",
    "KAFKA",
    "MQTT",
    "PROTOCOLS",
    "AmqpProtocol",
    "Description",
    "FrameConnection",
    "KafkaProtocol",
    "MqttProtocol",
    "PipelineFrame",
    "WireProtocol",
    "decoder_for",
    "framer_for",
    "protocol_for",
    "redact",
]
