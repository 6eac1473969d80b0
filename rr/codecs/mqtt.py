"""MQTT 3.1.1 / 5 wire codec: fixed header + variable-length remaining length framing."""

from __future__ import annotations

from ._framing import BufferedFramer
from .base import Proto

PACKET_TYPES = {
    1: "CONNECT",
    2: "CONNACK",
    3: "PUBLISH",
    4: "PUBACK",
    5: "PUBREC",
    6: "PUBREL",
    7: "PUBCOMP",
    8: "SUBSCRIBE",
    9: "SUBACK",
    10: "UNSUBSCRIBE",
    11: "UNSUBACK",
    12: "PINGREQ",
    13: "PINGRESP",
    14: "DISCONNECT",
    15: "AUTH",  # MQTT 5 only; the decoder rejects it on a 3.1.1 connection
}


class MqttFramer(BufferedFramer):
    """Splits an MQTT stream into control packets (same framing for 3.1.1 and 5).

    Packet type 0 is reserved in both versions and refused here. Type 15 (AUTH) frames like any
    other packet; whether it is legal depends on the protocol level, which the decoder knows.
    """

    proto = Proto.MQTT

    def _frame_length(self, buf: bytearray, start: int, offset: int) -> int | None:
        avail = len(buf) - start
        if avail < 1:
            return None
        if buf[start] >> 4 == 0:
            raise self._error(offset, "packet type 0 is reserved")
        remaining = 0
        for i in range(4):
            if avail < 2 + i:
                return None
            byte = buf[start + 1 + i]
            remaining |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                length = 2 + i + remaining
                if length > self.max_frame_bytes:
                    raise self._error(
                        offset,
                        f"declared remaining length {remaining} exceeds the frame budget of "
                        f"{self.max_frame_bytes} bytes (raise max_frame_bytes if this is genuine)",
                    )
                return length
        raise self._error(offset + 4, "remaining length longer than 4 bytes")
