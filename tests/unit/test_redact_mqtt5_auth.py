"""MQTT 5 enhanced authentication: the client's authentication_data is a credential too.

CONNECT and AUTH carry it as property 0x16 (binary); the redactor replaces the value, fixes the
property-list length and the remaining length, and the packet still decodes. Built by hand:
amqtt speaks MQTT 3.1.1 only.
"""

from __future__ import annotations

import struct

import pytest

from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import decoder_for, redact
from rrlab.rr.protocols.mqtt.codec import MqttFramer, encode_remaining_length
from rrlab.rr.redact import PLACEHOLDER, RedactionError

C2S, S2C = Direction.C2S, Direction.S2C
AUTH_DATA = b"n,,n=alice,r=client-nonce-and-proof-Zx9"
PASSWORD = b"Pw-0f-alice"


def text(value: bytes) -> bytes:
    return struct.pack(">H", len(value)) + value


def properties(*items: bytes) -> bytes:
    body = b"".join(items)
    return encode_remaining_length(len(body)) + body


AUTH_PROPS = properties(
    b"\x15" + text(b"SCRAM-SHA-256"),  # authentication_method
    b"\x16" + text(AUTH_DATA),  # authentication_data
    b"\x26" + text(b"k") + text(b"v" * 130),  # a user property: lengths past one varint byte
)


def connect_v5(password: bytes | None) -> bytes:
    flags = 0x80 | (0x40 if password is not None else 0) | 0x02
    variable = text(b"MQTT") + bytes([5, flags]) + b"\x00\x3c" + AUTH_PROPS
    payload = text(b"client-1") + text(b"alice") + (text(password) if password else b"")
    body = variable + payload
    return b"\x10" + encode_remaining_length(len(body)) + body


def auth_packet() -> bytes:
    body = b"\x18" + AUTH_PROPS  # reason: continue authentication
    return b"\xf0" + encode_remaining_length(len(body)) + body


def _redact(raw: bytes, decoder=None):
    decoder = decoder or decoder_for(Proto.MQTT)
    return redact(Proto.MQTT, C2S, raw, decoder.decode(C2S, raw)), decoder


@pytest.mark.parametrize("password", [PASSWORD, None])
def test_connect_authentication_data_and_password_replaced(password):
    raw = connect_v5(password)
    assert AUTH_DATA in raw
    (new, decoded), _ = _redact(raw)
    assert AUTH_DATA not in new and PASSWORD not in new
    expected = ["CONNECT.authentication_data"]
    if password:
        expected = ["CONNECT.password", *expected]
    assert decoded.redacted and sorted(decoded.summary["redacted"]) == sorted(expected)
    assert MqttFramer(C2S).feed(new)[0].raw == new  # remaining length fixed
    again = decoder_for(Proto.MQTT).decode(C2S, new)
    assert "error" not in again.summary
    props = again.summary["properties"]
    assert props["authentication_data"] == {"len": len(PLACEHOLDER)}
    assert props["authentication_method"] == "SCRAM-SHA-256"
    assert props["user_property"] == [["k", "v" * 130]]
    assert again.summary["username"] == "alice" and again.summary["client_id"] == "client-1"


def test_auth_packet_authentication_data_replaced():
    decoder = decoder_for(Proto.MQTT)
    decoder.decode(C2S, connect_v5(None))  # the connection speaks MQTT 5
    (new, decoded), _ = _redact(auth_packet(), decoder)
    assert AUTH_DATA not in new
    assert decoded.summary["redacted"] == ["AUTH.authentication_data"]
    assert MqttFramer(C2S).feed(new)[0].raw == new
    again = decoder.decode(C2S, new)
    assert "error" not in again.summary
    assert again.summary["properties"]["authentication_data"] == {"len": len(PLACEHOLDER)}


def test_unreadable_auth_fails_closed():
    # on a 3.1.1 connection an AUTH packet cannot be read: do not record what may be a secret
    decoder = decoder_for(Proto.MQTT)
    raw = auth_packet()
    with pytest.raises(RedactionError):
        redact(Proto.MQTT, C2S, raw, decoder.decode(C2S, raw))
