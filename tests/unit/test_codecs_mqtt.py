"""MQTT decoder: 3.1.1 packets built by amqtt, MQTT 5 packets (properties) built by hand."""

from __future__ import annotations

from amqtt.mqtt.connect import ConnectPacket, ConnectPayload, ConnectVariableHeader
from amqtt.mqtt.publish import PublishPacket
from amqtt.mqtt.subscribe import SubscribePacket

from rrlab.rr.canonical import dumps
from rrlab.rr.codecs import Direction
from rrlab.rr.protocols import decoder_for
from rrlab.rr.protocols.mqtt.codec import MqttFramer, encode_remaining_length

C2S, S2C = Direction.C2S, Direction.S2C


def s(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + encode_remaining_length(len(body)) + body


def props(*items: bytes) -> bytes:
    data = b"".join(items)
    return encode_remaining_length(len(data)) + data


def connect_v311(password: str | None = "s3cret") -> bytes:
    vh = ConnectVariableHeader(keep_alive=30)
    vh.clean_session_flag = True
    vh.username_flag = True
    vh.password_flag = password is not None
    payload = ConnectPayload(client_id="worker-1", username="bob", password=password)
    return bytes(ConnectPacket(variable_header=vh, payload=payload).to_bytes())


def test_v311_connect_publish_subscribe():
    dec = decoder_for("mqtt")
    got = dec.decode(C2S, connect_v311())
    assert got.summary == {
        "packet": "CONNECT",
        "protocol_name": "MQTT",
        "protocol_level": 4,
        "clean_start": True,
        "keep_alive": 30,
        "client_id": "worker-1",
        "username": "bob",
        "has_password": True,
    }
    pub = bytes(PublishPacket.build("a/b", b"hello", 7, False, 1, True).to_bytes())
    assert dec.decode(C2S, pub).summary == {
        "packet": "PUBLISH",
        "qos": 1,
        "retain": True,
        "dup": False,
        "topic": "a/b",
        "packet_id": 7,
        "payload_size": 5,
    }
    sub = bytes(SubscribePacket.build([("t/#", 1), ("u", 0)], 9).to_bytes())
    assert dec.decode(C2S, sub).summary == {
        "packet": "SUBSCRIBE",
        "packet_id": 9,
        "subscriptions": [{"topic": "t/#", "qos": 1}, {"topic": "u", "qos": 0}],
    }
    suback = dec.decode(S2C, packet(0x90, b"\x00\x09\x01\x00"))
    assert suback.summary == {"packet": "SUBACK", "packet_id": 9, "return_codes": [1, 0]}
    assert dec.decode(S2C, packet(0x40, b"\x00\x07")).summary == {
        "packet": "PUBACK",
        "packet_id": 7,
    }
    assert dec.decode(C2S, b"\xe0\x00").summary == {"packet": "DISCONNECT"}


def test_v5_properties_and_user_properties():
    dec = decoder_for("mqtt")
    connect = packet(
        0x10,
        s("MQTT")
        + b"\x05\xc2\x00\x3c"
        + props(b"\x11\x00\x00\x0e\x10", b"\x26" + s("tenant") + s("t1"))
        + s("cid-5")
        + s("alice")
        + s("pw"),
    )
    got = dec.decode(C2S, connect)
    assert got.summary["protocol_level"] == 5 and dec.protocol_level == 5
    assert got.summary["properties"] == {
        "session_expiry_interval": 3600,
        "user_property": [["tenant", "t1"]],
    }
    publish = packet(
        0x32,
        s("x/y")
        + b"\x00\x05"
        + props(
            b"\x26" + s("k") + s("v"),
            b"\x26" + s("k") + s("w"),
            b"\x03" + s("text/plain"),
            b"\x09\x00\x02\xab\xcd",
        )
        + b"payload",
    )
    got = dec.decode(C2S, publish)
    assert got.summary["properties"] == {
        "user_property": [["k", "v"], ["k", "w"]],
        "content_type": "text/plain",
        "correlation_data": {"base64": "q80="},
    }
    assert got.summary["payload_size"] == 7 and got.body.payload == b"payload"
    assert dec.decode(S2C, packet(0x40, b"\x00\x05")).summary == {  # short v5 PUBACK
        "packet": "PUBACK",
        "packet_id": 5,
    }
    connack = dec.decode(S2C, packet(0x20, b"\x00\x00" + props(b"\x21\x00\x0a")))
    assert connack.summary == {
        "packet": "CONNACK",
        "session_present": False,
        "reason_code": 0,
        "properties": {"receive_maximum": 10},
    }
    auth = dec.decode(C2S, packet(0xF0, b"\x18" + props(b"\x15" + s("SCRAM"), b"\x16\x00\x03abc")))
    assert auth.summary["properties"]["authentication_data"] == {"len": 3}
    dumps(auth.summary)


def test_bad_packets_are_reported_not_raised():
    dec = decoder_for("mqtt")
    assert "AUTH exists only in MQTT 5" in dec.decode(C2S, b"\xf0\x00").summary["error"]
    assert (
        "reserved" in dec.decode(C2S, packet(0x80, b"\x00\x01" + s("t") + b"\x00")).summary["error"]
    )
    truncated = packet(0x30, b"\x00\x09ab")  # topic length beyond the packet
    assert "needs 9 bytes" in dec.decode(C2S, truncated).summary["error"]
    (frame,) = MqttFramer(C2S).feed(truncated)
    assert frame.raw == truncated
