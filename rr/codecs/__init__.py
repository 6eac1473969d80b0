"""Pure wire codecs: incremental framers and decoders. Never imports Twisted or opens a socket.

`framer_for` and `decoder_for` are the one place that maps a protocol to its codec classes.
"""

from __future__ import annotations

from typing import Protocol

from .amqp import AmqpDecoder, AmqpFramer
from .base import (
    DEFAULT_MAX_FRAME_BYTES,
    Decoded,
    Direction,
    Frame,
    Framer,
    FramingError,
    Proto,
)
from .kafka import KafkaDecoder, KafkaFramer
from .mqtt import MqttDecoder, MqttFramer


class Decoder(Protocol):
    """Per-connection decoder: keeps state (Kafka pending requests, MQTT protocol level)."""

    def decode(self, direction: Direction, raw: bytes) -> Decoded: ...

    def redecode(self, direction: Direction, raw: bytes, decoded: Decoded) -> Decoded:
        """Decode `raw`, a changed copy (redacted) of the frame `decoded` came from, as that
        frame was read, without moving the connection's state again."""
        ...


_FRAMERS = {Proto.KAFKA: KafkaFramer, Proto.AMQP: AmqpFramer, Proto.MQTT: MqttFramer}
_DECODERS = {Proto.KAFKA: KafkaDecoder, Proto.AMQP: AmqpDecoder, Proto.MQTT: MqttDecoder}


def framer_for(
    proto: Proto | str, direction: Direction | str, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> Framer:
    """A fresh incremental framer for one direction of one connection."""
    return _FRAMERS[Proto(proto)](Direction(direction), max_frame_bytes)


def decoder_for(proto: Proto | str) -> Decoder:
    """A fresh decoder for one connection (use one per connection, both directions)."""
    return _DECODERS[Proto(proto)]()


__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "AmqpDecoder",
    "AmqpFramer",
    "Decoded",
    "Decoder",
    "Direction",
    "Frame",
    "Framer",
    "FramingError",
    "KafkaDecoder",
    "KafkaFramer",
    "MqttDecoder",
    "MqttFramer",
    "Proto",
    "decoder_for",
    "framer_for",
]
