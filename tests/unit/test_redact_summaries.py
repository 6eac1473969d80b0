"""Redacted frames get the summary a stateful re-decode of the redacted bytes gives.

Every kind of frame redaction touches, in the session it belongs to, through one connection's
frame pipeline (`rr.protocols`): the summary written has no `error`, shows the placeholder's
length where the frame's summary shows a credential's length, and equals what a fresh decoder
fed the redacted stream makes of it (less the note of what was replaced). The replayer compares
live redacted credential frames with these summaries, so they must be right.
"""

from __future__ import annotations

import dataclasses
import datetime
import struct
from collections.abc import Callable
from typing import Any

import pamqp.encode
import pamqp.frame
import pytest
from amqtt.mqtt.connect import ConnectPacket, ConnectPayload, ConnectVariableHeader
from kio.index import load_request_schema, load_response_schema
from kio.schema.alter_user_scram_credentials.v0.request import (
    AlterUserScramCredentialsRequest,
    ScramCredentialUpsertion,
)
from kio.schema.describe_delegation_token.v3.response import DescribedDelegationToken
from kio.schema.errors import ErrorCode
from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
from kio.schema.sasl_handshake.v0.request import SaslHandshakeRequest
from kio.schema.sasl_handshake.v0.response import SaslHandshakeResponse
from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest as SaslHandshakeRequestV1
from kio.schema.sasl_handshake.v1.response import (
    SaslHandshakeResponse as SaslHandshakeResponseV1,
)
from kio.static.primitive import i8, i32, i64
from pamqp import commands

from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import protocol_for
from rrlab.rr.protocols.kafka.codec import encode_request, encode_response
from rrlab.rr.protocols.mqtt.codec import encode_remaining_length
from rrlab.rr.redact import PLACEHOLDER

C2S, S2C = Direction.C2S, Direction.S2C
SECRET = b"Sup3r-s3cret-value!"
ZERO = datetime.timedelta(0)
EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)

Session = list[tuple[Direction, bytes]]


def make(cls: type, **values: Any) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


# --- sessions ------------------------------------------------------------------------------------


def kafka_sasl_authenticate(mechanism: str, tokens: list[bytes]) -> Session:
    """SaslHandshake v1 for `mechanism`, then one SaslAuthenticate per token (the last one
    holds the secret)."""
    hand = SaslHandshakeResponseV1(error_code=ErrorCode.none, mechanisms=(mechanism,))
    session: Session = [
        (C2S, encode_request(17, 1, 1, "cli", SaslHandshakeRequestV1(mechanism=mechanism))),
        (S2C, encode_response(17, 1, 1, hand)),
    ]
    for n, token in enumerate(tokens, start=2):
        auth = SaslAuthenticateRequest(auth_bytes=token)
        session.append((C2S, encode_request(36, 2, n, "cli", auth)))
    return session


def kafka_raw_token(mechanism: str, tokens: list[bytes]) -> Session:
    """SaslHandshake v0, then raw tokens (client's last one holds the secret)."""
    hand = SaslHandshakeResponse(error_code=ErrorCode.none, mechanisms=(mechanism,))
    session: Session = [
        (C2S, encode_request(17, 0, 1, "old", SaslHandshakeRequest(mechanism=mechanism))),
        (S2C, encode_response(17, 0, 1, hand)),
    ]
    for i, token in enumerate(tokens):
        session.append((C2S, struct.pack(">i", len(token)) + token))
        if i < len(tokens) - 1:
            server = b"r=cnonceSNONCE,s=c2FsdA==,i=4096"
            session.append((S2C, struct.pack(">i", len(server)) + server))
    return session


def kafka_create_token() -> Session:
    request = make(
        load_request_schema(38, 3),
        owner_principal_type=None,
        owner_principal_name=None,
        renewers=(),
        max_lifetime=datetime.timedelta(hours=1),
    )
    response = make(
        load_response_schema(38, 3),
        error_code=ErrorCode.none,
        principal_type="User",
        principal_name="alice",
        token_requester_principal_type="User",
        token_requester_principal_name="alice",
        issue_timestamp=EPOCH,
        expiry_timestamp=EPOCH,
        max_timestamp=EPOCH,
        token_id="tok-1",
        hmac=SECRET,
        throttle_time=ZERO,
    )
    return [
        (C2S, encode_request(38, 3, 5, "adm", request)),
        (S2C, encode_response(38, 3, 5, response)),
    ]


def kafka_describe_tokens() -> Session:
    request = make(load_request_schema(41, 3), owners=None)
    token = DescribedDelegationToken(
        principal_type="User",
        principal_name="alice",
        token_requester_principal_type="User",
        token_requester_principal_name="alice",
        issue_timestamp=i64(0),
        expiry_timestamp=i64(0),
        max_timestamp=i64(0),
        token_id="tok-1",
        hmac=SECRET,
        renewers=(),
    )
    response = make(
        load_response_schema(41, 3),
        error_code=ErrorCode.none,
        tokens=(token, dataclasses.replace(token, token_id="tok-2", hmac=SECRET * 2)),
        throttle_time=ZERO,
    )
    return [
        (C2S, encode_request(41, 3, 6, "adm", request)),
        (S2C, encode_response(41, 3, 6, response)),
    ]


def kafka_scram_credentials() -> Session:
    upsertion = ScramCredentialUpsertion(
        name="alice", mechanism=i8(1), iterations=i32(4096), salt=b"salt", salted_password=SECRET
    )
    body = AlterUserScramCredentialsRequest(deletions=(), upsertions=(upsertion,))
    return [(C2S, encode_request(51, 0, 3, "adm", body))]


def amqp_start_ok(mechanism: str, response: bytes) -> Session:
    method = commands.Connection.StartOk(
        client_properties={"product": "pika"}, mechanism=mechanism, response=response.decode()
    )
    return [(C2S, b"AMQP\x00\x00\x09\x01"), (C2S, pamqp.frame.marshal(method, 0))]


def amqp_secure_ok() -> Session:
    start_ok = amqp_start_ok("X-CUSTOM", b"")
    secure = commands.Connection.SecureOk(response=SECRET.decode())
    return [*start_ok, (C2S, pamqp.frame.marshal(secure, 0))]


def mqtt_connect_v311() -> Session:
    vh = ConnectVariableHeader(keep_alive=30)
    vh.username_flag = vh.password_flag = True
    payload = ConnectPayload(client_id="w1", username="rrlab", password=SECRET.decode())
    return [(C2S, bytes(ConnectPacket(variable_header=vh, payload=payload).to_bytes()))]


def _text(value: bytes) -> bytes:
    return struct.pack(">H", len(value)) + value


def _v5_props() -> bytes:
    body = b"\x15" + _text(b"SCRAM-SHA-256") + b"\x16" + _text(SECRET)
    return encode_remaining_length(len(body)) + body


def mqtt_connect_v5(password: bool) -> Session:
    flags = 0x80 | (0x40 if password else 0) | 0x02
    variable = _text(b"MQTT") + bytes([5, flags]) + b"\x00\x3c" + _v5_props()
    body = variable + _text(b"client-1") + _text(b"alice") + (_text(SECRET) if password else b"")
    return [(C2S, b"\x10" + encode_remaining_length(len(body)) + body)]


def mqtt_auth_v5() -> Session:
    body = b"\x18" + _v5_props()
    return [*mqtt_connect_v5(False), (C2S, b"\xf0" + encode_remaining_length(len(body)) + body)]


def _len(value: bytes) -> dict[str, int]:
    return {"len": len(value)}


def _plain(user: bytes) -> bytes:
    return b"\x00" + user + b"\x00" + PLACEHOLDER


#: name -> (protocol, session, index of the frame checked, what its summary must show)
CASES: dict[str, tuple[str, Callable[[], Session], int, Callable[[dict], object], object]] = {
    "kafka SaslAuthenticate PLAIN": (
        "kafka",
        lambda: kafka_sasl_authenticate("PLAIN", [b"\x00alice\x00" + SECRET]),
        2,
        lambda s: s["auth_bytes"],
        _len(_plain(b"alice")),
    ),
    "kafka SaslAuthenticate SCRAM client-final": (
        "kafka",
        lambda: kafka_sasl_authenticate(
            "SCRAM-SHA-256", [b"n,,n=alice,r=abc", b"c=biws,r=abcNONCE,p=" + SECRET]
        ),
        3,
        lambda s: (s["auth_bytes"], s["exchange"]),
        (_len(b"c=biws,r=abcNONCE,p=" + PLACEHOLDER), 2),
    ),
    "kafka SaslAuthenticate OAUTHBEARER": (
        "kafka",
        lambda: kafka_sasl_authenticate(
            "OAUTHBEARER", [b"n,,\x01auth=Bearer " + SECRET + b"\x01\x01"]
        ),
        2,
        lambda s: (s["auth_bytes"], s["sasl_mechanism"]),
        (_len(b"n,,\x01auth=Bearer " + PLACEHOLDER + b"\x01\x01"), "OAUTHBEARER"),
    ),
    "kafka SaslAuthenticate other mechanism": (
        "kafka",
        lambda: kafka_sasl_authenticate("GSSAPI", [b"oauth-" + SECRET]),
        2,
        lambda s: s["auth_bytes"],
        _len(PLACEHOLDER),
    ),
    "kafka raw token PLAIN": (
        "kafka",
        lambda: kafka_raw_token("PLAIN", [b"\x00alice\x00" + SECRET]),
        2,
        lambda s: s["size"],
        len(_plain(b"alice")),
    ),
    "kafka raw token SCRAM client-final": (
        "kafka",
        lambda: kafka_raw_token(
            "SCRAM-SHA-256", [b"n,,n=alice,r=cnonce", b"c=biws,r=cnonceSNONCE,p=" + SECRET]
        ),
        4,
        lambda s: s["size"],
        len(b"c=biws,r=cnonceSNONCE,p=" + PLACEHOLDER),
    ),
    "kafka raw token other mechanism": (
        "kafka",
        lambda: kafka_raw_token("X-CUSTOM", [b"opaque-" + SECRET]),
        2,
        lambda s: s["size"],
        len(PLACEHOLDER),
    ),
    "kafka CreateDelegationToken response": (
        "kafka",
        kafka_create_token,
        1,
        lambda s: s["hmac"],
        _len(PLACEHOLDER),
    ),
    "kafka DescribeDelegationToken response": (
        "kafka",
        kafka_describe_tokens,
        1,
        lambda s: [t["hmac"] for t in s["tokens"]],
        [_len(PLACEHOLDER)] * 2,
    ),
    "kafka AlterUserScramCredentials request": (
        "kafka",
        kafka_scram_credentials,
        0,
        lambda s: s["upsertions"],
        [{"name": "alice", "salted_password": _len(PLACEHOLDER)}],
    ),
    "amqp StartOk PLAIN": (
        "amqp",
        lambda: amqp_start_ok("PLAIN", b"\x00rrlab\x00" + SECRET),
        1,
        lambda s: s["args"]["response"],
        _len(_plain(b"rrlab")),
    ),
    "amqp StartOk AMQPLAIN": (
        "amqp",
        lambda: amqp_start_ok(
            "AMQPLAIN",
            pamqp.encode.field_table({"LOGIN": "rrlab", "PASSWORD": SECRET.decode()})[4:],
        ),
        1,
        lambda s: s["args"]["response"],
        _len(pamqp.encode.field_table({"LOGIN": "rrlab", "PASSWORD": PLACEHOLDER.decode()})[4:]),
    ),
    "amqp SecureOk": (
        "amqp",
        amqp_secure_ok,
        2,
        lambda s: s["args"]["response"],
        _len(PLACEHOLDER),
    ),
    "mqtt CONNECT password": (
        "mqtt",
        mqtt_connect_v311,
        0,
        lambda s: (s["username"], s["has_password"]),
        ("rrlab", True),
    ),
    "mqtt 5 CONNECT authentication data and password": (
        "mqtt",
        lambda: mqtt_connect_v5(True),
        0,
        lambda s: s["properties"]["authentication_data"],
        _len(PLACEHOLDER),
    ),
    "mqtt 5 AUTH authentication data": (
        "mqtt",
        mqtt_auth_v5,
        1,
        lambda s: s["properties"]["authentication_data"],
        _len(PLACEHOLDER),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_redacted_summary_is_the_stateful_re_decode(name):
    proto, build, index, shown, expected = CASES[name]
    protocol = protocol_for(proto)
    session = build()
    conn = protocol.connection()
    out = [frame for direction, raw in session for frame in conn.feed(direction, raw)]
    assert [f.wire for f in out] == [raw for _d, raw in session]  # one frame per message
    frame = out[index]
    assert frame.redacted and SECRET not in frame.raw and PLACEHOLDER in frame.raw
    summary = frame.summary
    assert "error" not in summary, summary
    assert summary["redacted"], summary
    assert shown(summary) == expected
    # a fresh connection's decoder reading the redacted stream, as the replayer and the
    # committed-cassette test do
    replay = protocol.decoder()
    for (direction, _raw), recorded in zip(session, out, strict=True):
        again = replay.decode(direction, recorded.raw).summary
        assert again == {k: v for k, v in recorded.summary.items() if k != "redacted"}


def test_every_kind_redaction_touches_is_covered():
    kinds = {name.split(" ", 1)[0] for name in CASES}
    assert kinds == {"kafka", "amqp", "mqtt"} and len(CASES) == 16


def test_unredacted_frames_keep_their_decoded_summary():
    conn = protocol_for(Proto.KAFKA).connection()
    session = kafka_sasl_authenticate("SCRAM-SHA-256", [b"n,,n=alice,r=nonce"])
    for direction, raw in session[:-1]:
        conn.feed(direction, raw)
    (frame,) = conn.feed(C2S, session[-1][1])
    assert not frame.redacted and frame.raw is frame.wire
    assert frame.summary is frame.decoded.summary
