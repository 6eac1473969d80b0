"""What is secret in MQTT frames: the CONNECT password (the user name stays) and MQTT 5
authentication_data in a client's CONNECT or AUTH (enhanced authentication; the method name
stays). The one place that decides it (the generic step after it is `rr.redact.redacted`)."""

from __future__ import annotations

import struct

from rrlab.rr.codecs import Decoded, Decoder, Direction
from rrlab.rr.redact import PLACEHOLDER, RedactionError, apply

from . import codec as mqtt_codec


def redact(
    direction: Direction | str, raw: bytes, decoded: Decoded, decoder: Decoder | None = None
) -> tuple[bytes, Decoded]:
    """Replace credentials in one MQTT frame. Raises RedactionError rather than let one through."""
    return apply(_mqtt, mqtt_codec.MqttDecoder, direction, raw, decoded, decoder)


def _mqtt(direction: Direction, raw: bytes, decoded: Decoded) -> tuple[bytes, list[str]] | None:
    ptype = raw[0] >> 4
    if direction is not Direction.C2S or ptype not in (mqtt_codec.CONNECT, mqtt_codec.AUTH):
        return None
    name = "CONNECT" if ptype == mqtt_codec.CONNECT else "AUTH"
    packet = decoded.body
    if not isinstance(packet, mqtt_codec.MqttPacket):
        if "error" in decoded.summary:  # unreadable: cannot tell where a credential is
            raise RedactionError(f"cannot redact an unreadable MQTT {name}: {decoded.summary}")
        return None
    replaced: list[str] = []
    placeholder = struct.pack(">H", len(PLACEHOLDER)) + PLACEHOLDER
    # The later field first, so the earlier field's span is still right.
    span = packet.spans.get("password")
    if span is not None:
        raw = mqtt_codec.splice(raw, *span, placeholder)
        replaced.append(f"{name}.password")
    span = packet.spans.get("authentication_data")  # MQTT 5 enhanced auth (e.g. SCRAM)
    if span is not None:
        props_at, props_end = packet.spans["properties"]
        list_at = props_at + 1
        while raw[list_at - 1] & 0x80:  # past the property-length varint
            list_at += 1
        start, end = span
        props = raw[list_at:start] + placeholder + raw[end:props_end]
        encoded = mqtt_codec.encode_remaining_length(len(props)) + props
        raw = mqtt_codec.splice(raw, props_at, props_end, encoded)
        replaced.append(f"{name}.authentication_data")
    return (raw, replaced) if replaced else None
