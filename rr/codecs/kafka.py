"""Kafka wire codec: int32 size-prefixed framing, kio-based decoding, re-encoding helpers."""

from __future__ import annotations

import struct

from ._framing import BufferedFramer
from .base import Proto

_SIZE = struct.Struct(">i")
#: Smallest body a Kafka frame can have: a response header is at least a correlation id.
_MIN_BODY = 4


class KafkaFramer(BufferedFramer):
    """Splits a Kafka stream (either direction) into frames; each keeps its size prefix."""

    proto = Proto.KAFKA

    def _frame_length(self, buf: bytearray, start: int, offset: int) -> int | None:
        if len(buf) - start < 4:
            return None
        (size,) = _SIZE.unpack_from(buf, start)
        if size < _MIN_BODY:
            raise self._error(offset, f"declared frame size {size} is below {_MIN_BODY} bytes")
        if size + 4 > self.max_frame_bytes:
            raise self._error(
                offset,
                f"declared frame size {size} exceeds the frame budget of "
                f"{self.max_frame_bytes} bytes (raise max_frame_bytes if this is genuine)",
            )
        return size + 4
