"""AMQP 0-9-1 wire codec: protocol header + 7-byte frame header/0xCE framing, pamqp decoding."""

from __future__ import annotations

import struct

from ._framing import BufferedFramer
from .base import DEFAULT_MAX_FRAME_BYTES, Direction, Proto

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_END = 0xCE
#: Frame types of AMQP 0-9-1 as RabbitMQ and pamqp use them (heartbeat is 8, not the spec's 4).
FRAME_TYPES = {1: "method", 2: "header", 3: "body", 8: "heartbeat"}
_HEADER = struct.Struct(">BHI")


class AmqpFramer(BufferedFramer):
    """Splits an AMQP 0-9-1 stream into frames.

    c2s begins with the 8-byte protocol header, emitted as its own frame. s2c has none, except
    that a server refusing the client's version answers with its own protocol header and closes;
    that is framed too, so the stream stays explainable.
    """

    proto = Proto.AMQP

    def __init__(
        self, direction: Direction, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    ) -> None:
        super().__init__(direction, max_frame_bytes)
        self._need_header = self.direction is Direction.C2S

    def _frame_length(self, buf: bytearray, start: int, offset: int) -> int | None:
        if offset == 0 and (self._need_header or buf[start] == PROTOCOL_HEADER[0]):
            return self._protocol_header(buf, start, offset)
        if len(buf) - start < 1:
            return None
        if buf[start] not in FRAME_TYPES:
            raise self._error(offset, f"unknown frame type {buf[start]}")
        if len(buf) - start < _HEADER.size:
            return None
        _type, _channel, size = _HEADER.unpack_from(buf, start)
        length = _HEADER.size + size + 1
        if length > self.max_frame_bytes:
            raise self._error(
                offset,
                f"declared frame size {size} exceeds the frame budget of "
                f"{self.max_frame_bytes} bytes (raise max_frame_bytes if this is genuine)",
            )
        return length

    def _protocol_header(self, buf: bytearray, start: int, offset: int) -> int | None:
        have = bytes(buf[start : start + len(PROTOCOL_HEADER)])
        if not PROTOCOL_HEADER.startswith(have):
            raise self._error(
                offset,
                f"expected protocol header {PROTOCOL_HEADER!r}, got {have!r} "
                "(not an AMQP 0-9-1 client?)",
            )
        if len(have) < len(PROTOCOL_HEADER):
            return None
        self._need_header = False
        return len(PROTOCOL_HEADER)

    def _check_frame(self, raw: bytes, offset: int) -> None:
        if raw == PROTOCOL_HEADER and offset == 0:
            return
        if raw[-1] != FRAME_END:
            raise self._error(
                offset + len(raw) - 1, f"frame end octet is {raw[-1]:#04x}, expected 0xce"
            )
