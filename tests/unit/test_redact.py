"""Redaction on frames built with kio, pamqp and amqtt: secrets out, frames still decode."""

from __future__ import annotations

import struct

import pamqp.encode
import pamqp.frame
import pytest
from amqtt.mqtt.connect import ConnectPacket, ConnectPayload, ConnectVariableHeader
from kio.schema.alter_user_scram_credentials.v0.request import (
    AlterUserScramCredentialsRequest,
    ScramCredentialUpsertion,
)
from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest
from kio.static.primitive import i8, i32
from pamqp import commands, header

from rrlab.rr.canonical import dumps
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import decoder_for, redact
from rrlab.rr.protocols.amqp.codec import AmqpFramer
from rrlab.rr.protocols.kafka.codec import KafkaFramer, encode_request
from rrlab.rr.protocols.kafka.redact import sasl_token
from rrlab.rr.protocols.mqtt.codec import MqttFramer, encode_remaining_length
from rrlab.rr.redact import PLACEHOLDER, RedactionError

C2S, S2C = Direction.C2S, Direction.S2C
SECRET = b"Sup3r-s3cret!"


def run(proto: Proto, direction: Direction, raw: bytes):
    decoded = decoder_for(proto).decode(direction, raw)
    return redact(proto, direction, raw, decoded)


def kafka_sasl(token: bytes) -> bytes:
    return encode_request(36, 2, 9, "cli", SaslAuthenticateRequest(auth_bytes=token))


def test_kafka_sasl_authenticate_without_a_negotiated_mechanism_is_replaced_whole():
    """No SaslHandshake on this connection: whatever the token looks like, none of it stays
    (by mechanism: tests/unit/test_redact_sasl.py)."""
    for token in (b"\x00alice\x00" + SECRET, b"n,,n=alice,r=nonce", b"c=biws,r=n,p=" + SECRET):
        raw = kafka_sasl(token)
        new, decoded = run(Proto.KAFKA, C2S, raw)
        assert decoded.body.auth_bytes == PLACEHOLDER and token not in new
        assert decoded.summary["redacted"] == ["auth_bytes (SASL token, no mechanism negotiated)"]
        assert decoded.summary["sasl_mechanism"] is None and decoded.summary["exchange"] == 1
        assert KafkaFramer(C2S).feed(new)[0].raw == new  # size prefix updated
        assert decoded.summary["api"] == "SaslAuthenticate"
        assert decoded.summary["correlation_id"] == 9


def test_kafka_not_secret_frames_unchanged():
    hand = encode_request(17, 1, 1, "cli", SaslHandshakeRequest(mechanism="SCRAM-SHA-256"))
    decoded = decoder_for("kafka").decode(C2S, hand)
    assert redact(Proto.KAFKA, C2S, hand, decoded) == (hand, decoded)
    assert not decoded.redacted
    assert sasl_token("PLAIN", 1, b"") == (b"", "none")
    assert sasl_token(None, 1, b"") == (b"", "none")


def test_kafka_scram_credentials_upsertion():
    body = AlterUserScramCredentialsRequest(
        deletions=(),
        upsertions=(
            ScramCredentialUpsertion(
                name="alice",
                mechanism=i8(1),
                iterations=i32(4096),
                salt=b"salt",
                salted_password=SECRET,
            ),
        ),
    )
    new, decoded = run(Proto.KAFKA, C2S, encode_request(51, 0, 3, "admin", body))
    assert SECRET not in new and decoded.body.upsertions[0].salted_password == PLACEHOLDER


def _sized(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


UNDECODABLE_CLIENT_FRAMES = {
    # a SASL v0 raw token seen without its handshake: "Unknown97 v27753"
    "raw PLAIN token": (_sized(b"\x00alice\x00" + SECRET), {"api": "Undecodable"}),
    "short": (_sized(SECRET[:6]), {"api": "Undecodable"}),
    "empty": (_sized(b""), {"api": "Undecodable"}),
    "unknown api": (_sized(struct.pack(">hhi", 32000, 0, 5) + SECRET), {"api": "Undecodable"}),
    "unknown version": (
        _sized(struct.pack(">hhih", 36, 999, 5, -1) + SECRET),
        {"api_key": 36, "api": "SaslAuthenticate", "version": 999, "correlation_id": 5},
    ),
    "bad body": (
        kafka_sasl(b"\x00alice\x00" + SECRET)[:-3] + b"\xff\xff\xff",
        {"api_key": 36, "api": "SaslAuthenticate", "version": 2, "correlation_id": 9},
    ),
}


@pytest.mark.parametrize("name", sorted(UNDECODABLE_CLIENT_FRAMES))
def test_kafka_undecodable_client_frame_is_replaced_whole(name):
    """Fail closed: what the decoder cannot read as a request may be a credential."""
    raw, header = UNDECODABLE_CLIENT_FRAMES[name]
    decoded = decoder_for("kafka").decode(C2S, raw)
    assert "error" in decoded.summary
    new, out = redact(Proto.KAFKA, C2S, raw, decoded)
    assert new == struct.pack(">i", len(PLACEHOLDER)) + PLACEHOLDER
    assert KafkaFramer(C2S).feed(new)[0].raw == new  # size fixed
    assert out.redacted and out.body is None and out.extra == {}
    assert out.summary["redacted"] == ["undecodable client frame (may hold a credential)"]
    assert {k: out.summary[k] for k in header} == header
    assert set(out.summary) == {*header, "error", "redacted"}  # nothing read from the payload
    assert SECRET[:4] not in dumps(out.summary)


def test_kafka_undecodable_server_frame_is_kept():
    """Responses carry no client credential (delegation-token HMACs are decoded and redacted)."""
    raw = _sized(struct.pack(">i", 5) + SECRET)
    decoded = decoder_for("kafka").decode(S2C, raw)
    assert "error" in decoded.summary
    assert redact(Proto.KAFKA, S2C, raw, decoded) == (raw, decoded)


def amqp_start_ok(mechanism: str, response: bytes) -> bytes:
    method = commands.Connection.StartOk(
        client_properties={"product": "pika", "capabilities": {"basic.nack": True}},
        mechanism=mechanism,
        response=response.decode(),  # pamqp encodes long strings from str
    )
    return pamqp.frame.marshal(method, 0)


def test_amqp_plain_keeps_user():
    raw = amqp_start_ok("PLAIN", b"\x00rrlab\x00" + SECRET)
    new, decoded = run(Proto.AMQP, C2S, raw)
    assert SECRET not in new
    assert decoded.summary["redacted"] == ["Connection.StartOk.response (PLAIN password)"]
    assert decoded.summary["args"]["response"] == {"len": len(b"\x00rrlab\x00" + PLACEHOLDER)}
    (frame,) = AmqpFramer(S2C).feed(new)  # s2c framer: no protocol header expected
    _n, _ch, method = pamqp.frame.unmarshal(frame.raw)
    assert method.response in (
        "\x00rrlab\x00" + PLACEHOLDER.decode(),
        b"\x00rrlab\x00" + PLACEHOLDER,
    )
    assert method.client_properties == {"product": "pika", "capabilities": {"basic.nack": True}}
    assert new[:11] == raw[:3] + struct.pack(">I", len(new) - 8) + raw[7:11]


def test_amqp_amqplain_and_secure_ok_and_unchanged_frames():
    table = pamqp.encode.field_table({"LOGIN": "rrlab", "PASSWORD": SECRET.decode()})[4:]
    new, decoded = run(Proto.AMQP, C2S, amqp_start_ok("AMQPLAIN", table))
    assert SECRET not in new and b"rrlab" in new
    assert decoded.summary["redacted"] == ["Connection.StartOk.response (AMQPLAIN PASSWORD)"]
    secure = pamqp.frame.marshal(commands.Connection.SecureOk(response=SECRET.decode()), 0)
    new, decoded = run(Proto.AMQP, C2S, secure)
    assert SECRET not in new and decoded.summary["method"] == "Connection.SecureOk"
    for raw in (
        pamqp.frame.marshal(header.ProtocolHeader(), 0),
        amqp_start_ok("EXTERNAL", b""),
        pamqp.frame.marshal(commands.Basic.Publish(exchange="x", routing_key="k"), 1),
    ):
        decoded = decoder_for("amqp").decode(C2S, raw)
        assert redact("amqp", "c2s", raw, decoded) == (raw, decoded)


def test_amqp_malformed_start_ok_is_refused():
    raw = amqp_start_ok("PLAIN", b"\x00u\x00" + SECRET)
    bad = raw[:11] + b"\xff\xff\xff\xff" + raw[15:]  # table length beyond the frame
    with pytest.raises(RedactionError):
        redact("amqp", "c2s", bad, decoder_for("amqp").decode(C2S, bad))


def mqtt_connect(password: str | None) -> bytes:
    vh = ConnectVariableHeader(keep_alive=30)
    vh.username_flag = True
    vh.password_flag = password is not None
    payload = ConnectPayload(client_id="w1", username="rrlab", password=password)
    return bytes(ConnectPacket(variable_header=vh, payload=payload).to_bytes())


def test_mqtt_connect_password():
    raw = mqtt_connect(SECRET.decode())
    new, decoded = run(Proto.MQTT, C2S, raw)
    assert SECRET not in new and new.endswith(PLACEHOLDER)
    assert decoded.summary["redacted"] == ["CONNECT.password"]
    assert decoded.summary["username"] == "rrlab" and decoded.summary["has_password"]
    assert MqttFramer(C2S).feed(new)[0].raw == new
    assert "error" not in decoded.summary
    plain = mqtt_connect(None)
    decoded = decoder_for("mqtt").decode(C2S, plain)
    assert redact("mqtt", "c2s", plain, decoded) == (plain, decoded)


def test_mqtt_v5_connect_password_with_long_remaining_length():
    props = b"\x26\x00\x01k\x00\x80" + b"v" * 128  # pushes the packet past 127 bytes

    plen = encode_remaining_length(len(props))
    variable = b"\x00\x04MQTT\x05\xc0\x00\x3c" + plen + props
    payload = b"\x00\x02id\x00\x05alice" + struct.pack(">H", len(SECRET)) + SECRET
    inner = variable + payload
    raw = b"\x10" + encode_remaining_length(len(inner)) + inner
    new, decoded = run(Proto.MQTT, C2S, raw)
    assert SECRET not in new
    assert decoded.summary["properties"]["user_property"] == [["k", "v" * 128]]
    assert MqttFramer(C2S).feed(new)[0].raw == new


@pytest.mark.parametrize(("api", "version"), [(39, 1), (39, 2), (40, 1), (40, 2)])
def test_kafka_renew_and_expire_delegation_token_requests_lose_the_hmac(api, version):
    """The token's HMAC authenticates its holder: it was stored in clear (found while deriving
    the credential APIs from kio's schemas, tests/unit/test_redact_undecodable.py)."""
    import dataclasses
    import datetime

    from kio.index import load_request_schema

    from rrlab.rr.protocols.kafka import normalize as norm

    cls = load_request_schema(api, version)
    period = next(f.name for f in dataclasses.fields(cls) if f.name != "hmac")
    body = cls(hmac=SECRET, **{period: datetime.timedelta(hours=1)})
    raw = encode_request(api, version, 4, "admin", body)
    new, decoded = run(Proto.KAFKA, C2S, raw)
    assert SECRET not in new and SECRET not in dumps(decoded.summary)
    assert decoded.summary["redacted"] == ["hmac"]
    assert decoded.summary["hmac"] == {"len": len(PLACEHOLDER)}
    assert decoded.body.hmac == PLACEHOLDER
    # replay: any HMAC matches the placeholder
    other = dataclasses.replace(body, hmac=b"another token's hmac")
    assert norm.request_key(api, version, decoded.body) == norm.request_key(api, version, other)
