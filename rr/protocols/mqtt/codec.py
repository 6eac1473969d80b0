"""MQTT 3.1.1 / 5 wire codec: fixed header + variable-length remaining length framing."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rrlab.rr.codecs._framing import BufferedFramer
from rrlab.rr.codecs.base import Decoded, Direction, Proto

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


# --- decoding -----------------------------------------------------------------------------------
# amqtt's packet classes decode from an asyncio stream (`from_stream(reader)`), speak MQTT 3.1.1
# only and know nothing of v5 properties. A codec here must be a pure function of bytes, so the
# few variable headers of MQTT are read below instead (one small reader, both versions).

CONNECT, CONNACK, PUBLISH, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 1, 2, 3, 8, 9, 10, 11
PUBREL = 6
PUBACK_LIKE = {4, 5, 6, 7}  # PUBACK, PUBREC, PUBREL, PUBCOMP: packet id (+ v5 reason, props)
DISCONNECT, AUTH = 14, 15
#: Packets whose fixed-header flags must be 0b0010; all others but PUBLISH must be 0.
_FLAGS_0010 = {6, 8, 10}
MQTT5 = 5

# MQTT 5 property identifiers -> (name, value type).
PROPERTIES: dict[int, tuple[str, str]] = {
    0x01: ("payload_format_indicator", "byte"),
    0x02: ("message_expiry_interval", "u32"),
    0x03: ("content_type", "str"),
    0x08: ("response_topic", "str"),
    0x09: ("correlation_data", "bin"),
    0x0B: ("subscription_identifier", "varint"),
    0x11: ("session_expiry_interval", "u32"),
    0x12: ("assigned_client_identifier", "str"),
    0x13: ("server_keep_alive", "u16"),
    0x15: ("authentication_method", "str"),
    0x16: ("authentication_data", "bin"),
    0x17: ("request_problem_information", "byte"),
    0x18: ("will_delay_interval", "u32"),
    0x19: ("request_response_information", "byte"),
    0x1A: ("response_information", "str"),
    0x1C: ("server_reference", "str"),
    0x1F: ("reason_string", "str"),
    0x21: ("receive_maximum", "u16"),
    0x22: ("topic_alias_maximum", "u16"),
    0x23: ("topic_alias", "u16"),
    0x24: ("maximum_qos", "byte"),
    0x25: ("retain_available", "byte"),
    0x26: ("user_property", "pair"),
    0x27: ("maximum_packet_size", "u32"),
    0x28: ("wildcard_subscription_available", "byte"),
    0x29: ("subscription_identifier_available", "byte"),
    0x2A: ("shared_subscription_available", "byte"),
}
_REPEATABLE = {"user_property", "subscription_identifier"}


class MqttDecodeError(ValueError):
    """A packet whose variable header or payload does not follow MQTT 3.1.1 / 5."""


@dataclass(slots=True)
class MqttPacket:
    """One decoded control packet. `spans` are byte ranges in the raw frame of fields other
    modules may need to rewrite (e.g. "password"), so they can splice without re-parsing."""

    packet_type: int
    flags: int
    fields: dict[str, Any]
    payload: bytes | None = None
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)


class _Reader:
    """Cursor over one packet's bytes; every read checks bounds."""

    def __init__(self, raw: bytes, pos: int, end: int) -> None:
        self.raw, self.pos, self.end = raw, pos, end

    @property
    def left(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise MqttDecodeError(f"needs {n} bytes at byte {self.pos}, packet ends at {self.end}")
        out = self.raw[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def varint(self) -> int:
        value = 0
        for i in range(4):
            byte = self.u8()
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                return value
        raise MqttDecodeError(f"variable byte integer longer than 4 bytes at byte {self.pos}")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        data = self.binary()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise MqttDecodeError(f"string before byte {self.pos} is not UTF-8") from err

    def properties(self, spans: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
        """Read a v5 property list. With `spans`, note where the list (its length varint
        included) and an authentication_data value (its 2-byte length included) lie, so the
        redactor can replace that credential without re-parsing."""
        at = self.pos
        length = self.varint()
        inner = _Reader(self.raw, self.pos, self.pos + length)
        if inner.end > self.end:
            raise MqttDecodeError(f"properties length {length} runs past the packet")
        props: dict[str, Any] = {}
        while inner.left:
            ident = inner.varint()
            if ident not in PROPERTIES:
                raise MqttDecodeError(f"unknown MQTT 5 property id {ident:#04x}")
            name, kind = PROPERTIES[ident]
            value_at = inner.pos
            value = inner.property_value(kind)
            if name == "authentication_data":  # an opaque SASL blob, like AMQP's response
                value = {"len": len(base64.b64decode(value["base64"]))}
                if spans is not None:
                    spans["authentication_data"] = (value_at, inner.pos)
            if name in _REPEATABLE:
                props.setdefault(name, []).append(value)
            elif name in props:
                raise MqttDecodeError(f"property {name} appears twice")
            else:
                props[name] = value
        self.pos = inner.end
        if spans is not None and "authentication_data" in spans:
            spans["properties"] = (at, self.pos)
        return props

    def property_value(self, kind: str) -> Any:
        if kind == "byte":
            return self.u8()
        if kind == "u16":
            return self.u16()
        if kind == "u32":
            return self.u32()
        if kind == "varint":
            return self.varint()
        if kind == "str":
            return self.text()
        if kind == "pair":
            return [self.text(), self.text()]
        return {"base64": base64.b64encode(self.binary()).decode("ascii")}


def packet_body_start(raw: bytes) -> int:
    """Offset of the first byte after the fixed header (type byte + remaining length)."""
    pos = 1
    while raw[pos] & 0x80:
        pos += 1
    return pos + 1


def encode_remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def splice(raw: bytes, start: int, end: int, new: bytes) -> bytes:
    """Replace raw[start:end] (inside the packet body) and fix the remaining length."""
    body_at = packet_body_start(raw)
    body = raw[body_at:start] + new + raw[end:]
    return raw[:1] + encode_remaining_length(len(body)) + body


class MqttDecoder:
    """Decodes one MQTT connection, 3.1.1 or 5 (learnt from the CONNECT protocol level).

    A packet that cannot be read gets `error` in its summary instead of raising.
    """

    def __init__(self) -> None:
        self.protocol_level = 4

    def decode(self, direction: Direction, raw: bytes) -> Decoded:
        ptype, flags = raw[0] >> 4, raw[0] & 0x0F
        summary: dict[str, Any] = {"packet": PACKET_TYPES.get(ptype, f"type {ptype}")}
        try:
            packet = self._packet(ptype, flags, raw)
        except (MqttDecodeError, IndexError) as err:
            summary["error"] = str(err)
            return Decoded(summary)
        summary.update(_summary_fields(packet))
        return Decoded(summary, body=packet)

    def redecode(self, direction: Direction, raw: bytes, decoded: Decoded) -> Decoded:
        """Decode a changed copy of the frame `decoded` came from, at this connection's protocol
        level (a CONNECT sets the level it already set; nothing else changes state)."""
        return self.decode(direction, raw)

    def _packet(self, ptype: int, flags: int, raw: bytes) -> MqttPacket:
        start = packet_body_start(raw)
        r = _Reader(raw, start, len(raw))
        if (
            ptype in _FLAGS_0010
            and flags != 0b0010
            or (ptype not in _FLAGS_0010 and ptype != PUBLISH and flags)
        ):
            raise MqttDecodeError(f"reserved fixed-header flags {flags:#06b}")
        if ptype == AUTH and self.protocol_level != MQTT5:
            raise MqttDecodeError("AUTH exists only in MQTT 5")
        if ptype == CONNECT:
            packet = self._connect(r, flags)
        else:
            packet = MqttPacket(ptype, flags, {})
            _READERS[ptype](r, packet, self.protocol_level == MQTT5)
        if r.left:
            raise MqttDecodeError(f"{r.left} bytes left over after the packet's fields")
        return packet

    def _connect(self, r: _Reader, flags: int) -> MqttPacket:
        f: dict[str, Any] = {"protocol_name": r.text(), "protocol_level": r.u8()}
        level = f["protocol_level"]
        if level not in (3, 4, 5):
            raise MqttDecodeError(f"unsupported protocol level {level}")
        self.protocol_level = level
        v5 = level == MQTT5
        cflags = r.u8()
        f["clean_start"] = bool(cflags & 0x02)
        f["keep_alive"] = r.u16()
        packet = MqttPacket(CONNECT, flags, f)
        if v5:
            f["properties"] = r.properties(packet.spans)
        f["client_id"] = r.text()
        if cflags & 0x04:
            will: dict[str, Any] = {"qos": (cflags >> 3) & 0x03, "retain": bool(cflags & 0x20)}
            if v5:
                will["properties"] = r.properties()
            will["topic"] = r.text()
            will["payload_size"] = len(r.binary())
            f["will"] = will
        if cflags & 0x80:
            at = r.pos
            f["username"] = r.text()
            packet.spans["username"] = (at, r.pos)
        if cflags & 0x40:
            at = r.pos
            r.binary()
            f["has_password"] = True
            packet.spans["password"] = (at, r.pos)
        return packet


def _read_publish(r: _Reader, p: MqttPacket, v5: bool) -> None:
    qos = (p.flags >> 1) & 0x03
    if qos == 3:
        raise MqttDecodeError("PUBLISH with QoS 3")
    p.fields.update(qos=qos, retain=bool(p.flags & 0x01), dup=bool(p.flags & 0x08))
    p.fields["topic"] = r.text()
    if qos:
        p.fields["packet_id"] = r.u16()
    if v5:
        p.fields["properties"] = r.properties()
    p.payload = r.take(r.left)
    p.fields["payload_size"] = len(p.payload)


def _read_connack(r: _Reader, p: MqttPacket, v5: bool) -> None:
    p.fields["session_present"] = bool(r.u8() & 0x01)
    p.fields["reason_code" if v5 else "return_code"] = r.u8()
    if v5:
        p.fields["properties"] = r.properties()


def _read_ack(r: _Reader, p: MqttPacket, v5: bool) -> None:
    """PUBACK/PUBREC/PUBREL/PUBCOMP; in v5 the reason code and properties may be omitted."""
    p.fields["packet_id"] = r.u16()
    if v5 and r.left:
        p.fields["reason_code"] = r.u8()
        if r.left:
            p.fields["properties"] = r.properties()


def _read_subscribe(r: _Reader, p: MqttPacket, v5: bool) -> None:
    p.fields["packet_id"] = r.u16()
    if v5:
        p.fields["properties"] = r.properties()
    subs = []
    while r.left:
        topic, options = r.text(), r.u8()
        sub: dict[str, Any] = {"topic": topic, "qos": options & 0x03}
        if v5:
            sub.update(
                no_local=bool(options & 0x04),
                retain_as_published=bool(options & 0x08),
                retain_handling=(options >> 4) & 0x03,
            )
        subs.append(sub)
    if not subs:
        raise MqttDecodeError("SUBSCRIBE without a topic filter")
    p.fields["subscriptions"] = subs


def _read_unsubscribe(r: _Reader, p: MqttPacket, v5: bool) -> None:
    p.fields["packet_id"] = r.u16()
    if v5:
        p.fields["properties"] = r.properties()
    topics = []
    while r.left:
        topics.append(r.text())
    p.fields["topics"] = topics


def _read_suback(r: _Reader, p: MqttPacket, v5: bool) -> None:
    """SUBACK, UNSUBACK: packet id, v5 properties, a code per filter (v3 UNSUBACK: none)."""
    p.fields["packet_id"] = r.u16()
    if v5:
        p.fields["properties"] = r.properties()
    codes = list(r.take(r.left))
    if codes or p.packet_type == SUBACK:
        p.fields["reason_codes" if v5 else "return_codes"] = codes


def _read_disconnect(r: _Reader, p: MqttPacket, v5: bool) -> None:
    """DISCONNECT and AUTH: v5 reason code and properties, both optional."""
    if v5 and r.left:
        p.fields["reason_code"] = r.u8()
        if r.left:
            p.fields["properties"] = r.properties(p.spans)


def _read_nothing(r: _Reader, p: MqttPacket, v5: bool) -> None:
    """PINGREQ, PINGRESP (and v3 DISCONNECT): no variable header."""


_READERS = {
    CONNACK: _read_connack,
    PUBLISH: _read_publish,
    **dict.fromkeys(PUBACK_LIKE, _read_ack),
    SUBSCRIBE: _read_subscribe,
    SUBACK: _read_suback,
    UNSUBSCRIBE: _read_unsubscribe,
    UNSUBACK: _read_suback,
    12: _read_nothing,
    13: _read_nothing,
    DISCONNECT: _read_disconnect,
    AUTH: _read_disconnect,
}


def _summary_fields(packet: MqttPacket) -> dict[str, Any]:
    out = dict(packet.fields)
    props = out.get("properties")
    if props is not None and not props:
        del out["properties"]  # empty v5 property list: keep summaries small
    if "will" in out and not out["will"].get("properties"):
        out["will"].pop("properties", None)
    return out


# --- building packets (the replayer's answers) --------------------------------------------------

#: Packets whose variable header starts with the packet id.
_ID_FIRST = {4, 5, 6, 7, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK}


def packet_id_span(raw: bytes) -> tuple[int, int] | None:
    """Where the 2-byte packet id lies in a packet (None: it has none, e.g. PUBLISH QoS 0)."""
    ptype = raw[0] >> 4
    start = packet_body_start(raw)
    if ptype in _ID_FIRST:
        at = start
    elif ptype == PUBLISH and (raw[0] >> 1) & 0x03:
        at = start + 2 + int.from_bytes(raw[start : start + 2], "big")
    else:
        return None
    if at + 2 > len(raw):
        raise MqttDecodeError(f"packet of {len(raw)} bytes ends before its packet id")
    return at, at + 2


def publish_head(raw: bytes) -> tuple[int, str, int | None, int] | None:
    """A 3.1.1 PUBLISH's QoS, topic, packet id (None at QoS 0) and where its payload starts,
    read from its bytes without a decode (a decode costs ~5x more: the replay's match keys and
    the plans of a long recording read only these); None where the decoder would refuse it
    (QoS 3, a topic that is not UTF-8, a packet ending inside its variable header)."""
    qos = (raw[0] >> 1) & 0x03
    if qos == 3:
        return None
    at = 1
    while at < len(raw) and raw[at] & 0x80:  # remaining length (the framer checked it)
        at += 1
    at += 3
    end = at + int.from_bytes(raw[at - 2 : at], "big")
    body = end + (2 if qos else 0)
    if at > len(raw) or body > len(raw):
        return None
    try:
        topic = raw[at:end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return qos, topic, int.from_bytes(raw[end:body], "big") if qos else None, body


#: 3.1.1 PUBACK, PUBREC, PUBREL, PUBCOMP -> their fixed header: type and flags, remaining length 2
_ACK_HEADS = {b"\x40\x02": 4, b"\x50\x02": 5, b"\x62\x02": 6, b"\x70\x02": 7}


def ack_head(raw: bytes) -> tuple[int, int] | None:
    """A 3.1.1 PUBACK, PUBREC, PUBREL or PUBCOMP's packet type and packet id, read from its
    bytes without a decode (the replay's match keys and the plans of a long recording read
    only these); None for any other packet (a v5 ack with a reason code, bad flags)."""
    if len(raw) != 4:
        return None
    ptype = _ACK_HEADS.get(raw[:2])
    return None if ptype is None else (ptype, int.from_bytes(raw[2:], "big"))


def with_packet_id(raw: bytes, packet_id: int) -> bytes:
    """The same packet carrying `packet_id` (unchanged when it has no packet id)."""
    span = packet_id_span(raw)
    if span is None:
        return raw
    return raw[: span[0]] + packet_id.to_bytes(2, "big") + raw[span[1] :]


def _reason_properties(reason_string: str | None) -> bytes:
    """A v5 property list holding at most a reason string (UTF-8, cut to 200 bytes)."""
    if not reason_string:
        return b"\x00"
    text = reason_string.encode("utf-8")[:200].decode("utf-8", "ignore").encode("utf-8")
    prop = b"\x1f" + len(text).to_bytes(2, "big") + text
    return encode_remaining_length(len(prop)) + prop


def encode_disconnect(reason_code: int | None = None, reason_string: str | None = None) -> bytes:
    """DISCONNECT: bare (3.1.1) when `reason_code` is None, else v5 with reason (and string)."""
    if reason_code is None:
        return b"\xe0\x00"
    body = bytes([reason_code]) + _reason_properties(reason_string)
    return b"\xe0" + encode_remaining_length(len(body)) + body


def encode_connack(code: int, *, v5: bool, reason_string: str | None = None) -> bytes:
    """CONNACK without a session: `code` is the 3.1.1 return code or the v5 reason code."""
    body = b"\x00" + bytes([code]) + (_reason_properties(reason_string) if v5 else b"")
    return b"\x20" + encode_remaining_length(len(body)) + body


PINGRESP_BYTES = b"\xd0\x00"


# --- stamping bound values (the replayer's pushes) ---------------------------------------------


def _varint(n: int) -> bytes:
    return encode_remaining_length(n)


def _rewrite_properties(r: _Reader, fn: Callable[[bytes], bytes]) -> bytes:
    """A v5 property list (its length varint included) with every string, binary and string
    pair value passed through `fn`; numbers kept as they are."""
    length = r.varint()
    inner = _Reader(r.raw, r.pos, r.pos + length)
    out = bytearray()
    while inner.left:
        start = inner.pos
        ident = inner.varint()
        if ident not in PROPERTIES:
            raise MqttDecodeError(f"unknown MQTT 5 property id {ident:#04x}")
        kind = PROPERTIES[ident][1]
        if kind in ("str", "bin"):
            out += inner.raw[start : inner.pos] + _lstr(fn(inner.binary()))
        elif kind == "pair":
            out += inner.raw[start : inner.pos] + _lstr(fn(inner.binary()))
            out += _lstr(fn(inner.binary()))
        else:
            inner.property_value(kind)
            out += inner.raw[start : inner.pos]
    r.pos = inner.end
    return _varint(len(out)) + bytes(out)


def _lstr(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def stamp_publish(raw: bytes, v5: bool, fn: Callable[[bytes], bytes]) -> bytes:
    """A PUBLISH with its topic, v5 string/binary properties (response topic, correlation data,
    user properties) and payload passed through `fn` (bound recorded values -> live ones); the
    remaining length recomputed. Other packets, and a PUBLISH `fn` leaves alone, unchanged."""
    if raw[0] >> 4 != PUBLISH:
        return raw
    qos = (raw[0] >> 1) & 0x03
    at = packet_body_start(raw)
    r = _Reader(raw, at, len(raw))
    topic = fn(r.binary())
    packet_id = r.take(2) if qos else b""
    props = _rewrite_properties(r, fn) if v5 else b""
    payload = fn(r.take(r.left))
    body = _lstr(topic) + packet_id + props + payload
    new = raw[:1] + encode_remaining_length(len(body)) + body
    return raw if new == raw else new
