"""What every wire codec shares: directions, frames, the framer and decoder interfaces and the
incremental framing they build on. Never imports Twisted or opens a socket.

The codecs themselves live with their protocol (`rr.protocols.<proto>.codec`); a protocol's
framer and decoder come from its protocol object (`rr.protocols.protocol_for(proto)`).
"""

from __future__ import annotations

from typing import Protocol

from .base import (
    DEFAULT_MAX_FRAME_BYTES,
    Decoded,
    Direction,
    Frame,
    Framer,
    FramingError,
    JsonSummary,
    Proto,
)


class Decoder(Protocol):
    """Per-connection decoder: keeps state (Kafka pending requests, MQTT protocol level)."""

    def decode(self, direction: Direction, raw: bytes) -> Decoded: ...

    def redecode(self, direction: Direction, raw: bytes, decoded: Decoded) -> Decoded:
        """Decode `raw`, a changed copy (redacted) of the frame `decoded` came from, as that
        frame was read, without moving the connection's state again."""
        ...


__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "Decoded",
    "Decoder",
    "Direction",
    "Frame",
    "Framer",
    "FramingError",
    "JsonSummary",
    "Proto",
]
