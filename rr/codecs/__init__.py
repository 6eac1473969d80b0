"""Pure wire codecs: incremental framers and decoders. Never imports Twisted or opens a socket.

`framer_for` and `decoder_for` are the one place that maps a protocol to its codec classes.
"""

from __future__ import annotations

from .amqp import AmqpFramer
from .base import (
    DEFAULT_MAX_FRAME_BYTES,
    Decoded,
    Direction,
    Frame,
    Framer,
    FramingError,
    Proto,
)
from .kafka import KafkaFramer
from .mqtt import MqttFramer

_FRAMERS = {Proto.KAFKA: KafkaFramer, Proto.AMQP: AmqpFramer, Proto.MQTT: MqttFramer}


def framer_for(
    proto: Proto | str, direction: Direction | str, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> Framer:
    """A fresh incremental framer for one direction of one connection."""
    return _FRAMERS[Proto(proto)](Direction(direction), max_frame_bytes)


__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "AmqpFramer",
    "Decoded",
    "Direction",
    "Frame",
    "Framer",
    "FramingError",
    "KafkaFramer",
    "MqttFramer",
    "Proto",
    "framer_for",
]
