"""Kafka SASL redaction by the mechanism the connection negotiated, never by a token's bytes.

Each connection's decoder sees the SaslHandshake (v1: tokens in SaslAuthenticate; v0 raw tokens:
test_redact_sasl_v0.py) and its answer, then the client's tokens: PLAIN keeps authzid and user,
SCRAM-SHA-256/512 keeps the client-first message and hides the client-final proof, OAUTHBEARER
keeps the gs2 header only, any other or unknown mechanism (or none negotiated, or a refused
handshake) loses the whole token, and so does a token that does not read as its mechanism's.
"""

from __future__ import annotations

import pytest
from kio.schema.errors import ErrorCode
from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest
from kio.schema.sasl_handshake.v1.response import SaslHandshakeResponse

from rrlab.rr.canonical import dumps
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import decoder_for, redact
from rrlab.rr.protocols.kafka.codec import (
    KafkaFramer,
    decode_request,
    encode_request,
    encode_response,
)
from rrlab.rr.redact import PLACEHOLDER

C2S, S2C = Direction.C2S, Direction.S2C
SECRET = b"Sup3r-s3cret!"
#: an OAUTHBEARER client response as Kafka's Java client sends it (RFC 7628), one extension
BEARER = b"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9." + SECRET
OAUTH = b"n,,\x01auth=Bearer " + BEARER + b"\x01traceId=" + SECRET + b"\x01\x01"


def authenticate(mechanism: str | None, tokens: list[bytes], error=ErrorCode.none) -> list:
    """SaslHandshake v1 for `mechanism` (None: none) answered with `error`, then one
    SaslAuthenticate per token through the same decoder, each redacted as the proxy does.
    Returns [(recorded bytes, decoded summary)] of the SaslAuthenticate requests."""
    dec = decoder_for("kafka")
    if mechanism is not None:
        hand = encode_request(17, 1, 1, "cli", SaslHandshakeRequest(mechanism=mechanism))
        dec.decode(C2S, hand)
        answer = SaslHandshakeResponse(error_code=error, mechanisms=(mechanism,))
        dec.decode(S2C, encode_response(17, 1, 1, answer))
    out = []
    for n, token in enumerate(tokens, start=2):
        raw = encode_request(36, 2, n, "cli", SaslAuthenticateRequest(auth_bytes=token))
        new, decoded = redact(Proto.KAFKA, C2S, raw, dec.decode(C2S, raw), dec)
        assert KafkaFramer(C2S).feed(new)[0].raw == new  # still a frame, size updated
        assert decoded.summary["sasl_mechanism"] == (None if error else mechanism)
        assert SECRET not in new and SECRET not in dumps(decoded.summary)
        out.append((decode_request(new).body.auth_bytes, decoded.summary))
    return out


def test_plain_keeps_authzid_and_user():
    ((kept, summary),) = authenticate("PLAIN", [b"admin\x00alice\x00" + SECRET])
    assert kept == b"admin\x00alice\x00" + PLACEHOLDER
    assert summary["redacted"] == ["auth_bytes (PLAIN password)"] and summary["exchange"] == 1


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_keeps_the_client_first_and_hides_the_proof(mechanism):
    first = b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL"
    final = b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p="
    (got_first, s1), (got_final, s2) = authenticate(mechanism, [first, final + SECRET])
    assert got_first == first and "redacted" not in s1 and s1["exchange"] == 1
    assert got_final == final + PLACEHOLDER and s2["exchange"] == 2
    assert s2["redacted"] == ["auth_bytes (SCRAM client proof)"]


def test_scram_delegation_token_client_first_keeps_its_extension():
    first = b"n,,n=tokenid-1,r=cnonce,tokenauth=true"
    ((kept, summary),) = authenticate("SCRAM-SHA-256", [first])
    assert kept == first and "redacted" not in summary


@pytest.mark.parametrize(
    ("token", "kept"),
    [
        (OAUTH, b"n,,"),
        (b"n,a=alice,\x01auth=Bearer " + BEARER + b"\x01\x01", b"n,a=alice,"),
        (b"y,,\x01host=h\x01auth=Bearer " + BEARER + b"\x01\x01", b"y,,"),
    ],
)
def test_oauthbearer_keeps_only_the_gs2_header(token, kept):
    ((got, summary),) = authenticate("OAUTHBEARER", [token])
    assert got == kept + b"\x01auth=Bearer " + PLACEHOLDER + b"\x01\x01"
    assert BEARER not in got and b"traceId" not in got
    assert summary["redacted"] == ["auth_bytes (OAUTHBEARER token)"]


def test_the_oauthbearer_client_message_never_passes_for_scram_client_first():
    """The bug: `n,,\\x01auth=Bearer ...` starts like a SCRAM client-first message and was
    kept whole. Without a negotiated OAUTHBEARER it is now replaced whole, whatever was
    negotiated."""
    ((got, summary),) = authenticate(None, [OAUTH])
    assert got == PLACEHOLDER
    assert summary["redacted"] == ["auth_bytes (SASL token, no mechanism negotiated)"]
    ((got, summary),) = authenticate("SCRAM-SHA-256", [OAUTH])
    assert got == PLACEHOLDER
    assert summary["redacted"] == ["auth_bytes (SCRAM-SHA-256 token, unreadable)"]


@pytest.mark.parametrize(
    ("mechanism", "token"),
    [
        ("SCRAM-SHA-256", b"\x00alice\x00" + SECRET),  # PLAIN-shaped, under SCRAM
        ("OAUTHBEARER", b"\x00alice\x00" + SECRET),  # PLAIN-shaped, under OAUTHBEARER
        ("OAUTHBEARER", b"n,,n=alice,r=" + SECRET),  # SCRAM client-first, under OAUTHBEARER
        ("PLAIN", b"c=biws,r=nonce,p=" + SECRET),  # SCRAM client-final, under PLAIN
        ("PLAIN", OAUTH),  # OAUTHBEARER, under PLAIN
        ("SCRAM-SHA-512", b"n,,n=alice,r=nonce,m=" + SECRET),  # an extension SCRAM lacks
        ("GSSAPI", b"n,,n=alice,r=" + SECRET),  # another mechanism: whole
        ("X-CUSTOM", b"\x00alice\x00" + SECRET),
    ],
)
def test_a_token_shaped_like_another_mechanism_is_replaced_whole(mechanism, token):
    ((got, summary),) = authenticate(mechanism, [token])
    assert got == PLACEHOLDER
    (what,) = summary["redacted"]
    assert what.startswith(f"auth_bytes ({mechanism} token")


def test_a_scram_client_final_sent_first_is_replaced_whole():
    """The exchange number, not the token, says which SCRAM message it is."""
    ((got, _summary),) = authenticate("SCRAM-SHA-256", [b"c=biws,r=nonce,p=" + SECRET])
    assert got == PLACEHOLDER


def test_a_refused_handshake_negotiates_nothing():
    ((got, summary),) = authenticate(
        "PLAIN", [b"\x00alice\x00" + SECRET], error=ErrorCode.unsupported_sasl_mechanism
    )
    assert got == PLACEHOLDER and summary["sasl_mechanism"] is None


def test_re_authentication_starts_over_with_the_new_mechanism():
    """KIP-368: a new SaslHandshake on the same connection; its exchange count restarts."""
    dec = decoder_for("kafka")

    def step(cid: int, direction: Direction, raw: bytes):
        return redact(Proto.KAFKA, direction, raw, dec.decode(direction, raw), dec)

    for cid, mechanism, token, kept in (
        (1, "PLAIN", b"\x00alice\x00" + SECRET, b"\x00alice\x00" + PLACEHOLDER),
        (3, "OAUTHBEARER", OAUTH, b"n,,\x01auth=Bearer " + PLACEHOLDER + b"\x01\x01"),
    ):
        step(cid, C2S, encode_request(17, 1, cid, "c", SaslHandshakeRequest(mechanism=mechanism)))
        answer = SaslHandshakeResponse(error_code=ErrorCode.none, mechanisms=(mechanism,))
        step(cid, S2C, encode_response(17, 1, cid, answer))
        auth = encode_request(36, 2, cid + 1, "c", SaslAuthenticateRequest(auth_bytes=token))
        new, decoded = step(cid + 1, C2S, auth)
        assert decode_request(new).body.auth_bytes == kept
        assert decoded.summary["sasl_mechanism"] == mechanism
        assert decoded.summary["exchange"] == 1
