"""Redaction of SaslHandshake v0 raw SASL tokens (no Kafka header), with a connection's decoder."""

from __future__ import annotations

import struct

import pytest
from kio.schema.api_versions.v0.request import ApiVersionsRequest
from kio.schema.api_versions.v0.response import ApiVersionsResponse
from kio.schema.errors import ErrorCode
from kio.schema.sasl_handshake.v0.request import SaslHandshakeRequest
from kio.schema.sasl_handshake.v0.response import SaslHandshakeResponse

from rrlab.rr.canonical import dumps
from rrlab.rr.cassette import CassetteReader, CassetteWriter
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import decoder_for, redact
from rrlab.rr.protocols.kafka.codec import KafkaFramer, encode_request, encode_response
from rrlab.rr.protocols.kafka.rewrite import NodeMap
from rrlab.rr.record import recorder_for
from rrlab.rr.redact import PLACEHOLDER

C2S, S2C = Direction.C2S, Direction.S2C
SECRET = b"Sup3r-s3cret!"


def sized(token: bytes) -> bytes:
    return struct.pack(">i", len(token)) + token


def raw_mode_decoder(mechanism: str):
    """A connection's decoder right after a successful SaslHandshake v0."""
    dec = decoder_for("kafka")
    dec.decode(C2S, encode_request(17, 0, 1, "old", SaslHandshakeRequest(mechanism=mechanism)))
    body = SaslHandshakeResponse(error_code=ErrorCode.none, mechanisms=(mechanism,))
    dec.decode(S2C, encode_response(17, 0, 1, body))
    assert dec.raw_sasl
    return dec


def record(dec, mechanism: str, direction: Direction, raw: bytes):
    """What the recorder does: decode with the connection's decoder, then redact."""
    new, out = redact(Proto.KAFKA, direction, raw, dec.decode(direction, raw))
    assert out.summary["api"] == "SaslRawToken" and "error" not in out.summary
    assert out.summary["sasl_mechanism"] == mechanism
    assert out.summary["size"] == len(new) - 4
    assert KafkaFramer(direction).feed(new)[0].raw == new  # size prefix fixed
    assert SECRET not in new and SECRET not in dumps(out.summary)
    return new, out


@pytest.mark.parametrize(
    ("token", "kept", "what"),
    [
        (b"\x00alice\x00" + SECRET, b"\x00alice\x00", "PLAIN password"),
        (b"alice\x00alice\x00" + SECRET, b"alice\x00alice\x00", "PLAIN password"),
    ],
)
def test_plain_raw_token_keeps_the_user(token, kept, what):
    dec = raw_mode_decoder("PLAIN")
    new, out = record(dec, "PLAIN", C2S, sized(token))
    assert new == sized(kept + PLACEHOLDER)
    assert out.redacted and out.summary["redacted"] == [f"token ({what})"]
    assert out.summary["exchange"] == 1
    assert redact(Proto.KAFKA, S2C, sized(b""), dec.decode(S2C, sized(b"")))[0] == sized(b"")
    assert not dec.raw_sasl


def test_scram_raw_tokens_lose_only_the_proof():
    dec = raw_mode_decoder("SCRAM-SHA-256")
    first = sized(b"n,,n=alice,r=cnonce")
    new, out = record(dec, "SCRAM-SHA-256", C2S, first)
    assert new == first and not out.redacted  # client-first: user name and nonce only
    server_first = sized(b"r=cnonceSNONCE,s=c2FsdA==,i=4096")
    assert record(dec, "SCRAM-SHA-256", S2C, server_first)[0] == server_first
    final = b"c=biws,r=cnonceSNONCE,p="
    new, out = record(dec, "SCRAM-SHA-256", C2S, sized(final + SECRET))
    assert new == sized(final + PLACEHOLDER)
    assert out.summary["redacted"] == ["token (SCRAM client proof)"]
    assert out.summary["exchange"] == 2
    server_final = sized(b"v=c2lnbmF0dXJl")
    assert record(dec, "SCRAM-SHA-256", S2C, server_final)[0] == server_final
    assert not dec.raw_sasl


def test_other_mechanism_raw_token_replaced_whole():
    dec = raw_mode_decoder("X-CUSTOM")
    new, out = record(dec, "X-CUSTOM", C2S, sized(b"opaque-" + SECRET))
    assert new == sized(PLACEHOLDER)
    assert out.summary["redacted"] == ["token (X-CUSTOM token)"]


def test_oauthbearer_raw_token_keeps_only_the_gs2_header():
    """Kafka's OAUTHBEARER client response (RFC 7628) over SaslHandshake v0: it starts like a
    SCRAM client-first message, but the negotiated mechanism decides."""
    dec = raw_mode_decoder("OAUTHBEARER")
    token = b"n,,\x01auth=Bearer eyJhbGciOiJub25lIn0." + SECRET + b"\x01\x01"
    new, out = record(dec, "OAUTHBEARER", C2S, sized(token))
    assert new == sized(b"n,,\x01auth=Bearer " + PLACEHOLDER + b"\x01\x01")
    assert out.summary["redacted"] == ["token (OAUTHBEARER token)"]
    assert record(dec, "OAUTHBEARER", S2C, sized(b""))[0] == sized(b"")
    assert not dec.raw_sasl  # one exchange


def test_scram_raw_token_shaped_like_plain_is_replaced_whole():
    dec = raw_mode_decoder("SCRAM-SHA-512")
    new, out = record(dec, "SCRAM-SHA-512", C2S, sized(b"\x00alice\x00" + SECRET))
    assert new == sized(PLACEHOLDER)
    assert out.summary["redacted"] == ["token (SCRAM-SHA-512 token, unreadable)"]


def test_redacted_raw_token_decodes_again_to_the_recorded_summary():
    """As for every committed cassette: a connection's decoder re-reads the recorded bytes to
    the recorded summary (less the note of what was replaced)."""
    recording, replaying = raw_mode_decoder("PLAIN"), raw_mode_decoder("PLAIN")
    new, out = record(recording, "PLAIN", C2S, sized(b"\x00alice\x00" + SECRET))
    again = replaying.decode(C2S, new).summary
    assert again == {k: v for k, v in out.summary.items() if k != "redacted"}


@pytest.mark.parametrize("chunk", [1, 3, 4096])
def test_recorded_plain_v0_session_through_the_recorder(tmp_path, chunk):
    """Decoder, redactor and the proxy's response rewriter as `rrlab proxy` wires them, fed the
    bytes of a SaslHandshake v0 PLAIN session in any chunking: every byte is forwarded as it
    came (the size-0 reply included), the cassette holds the user but not the password."""
    writer = CassetteWriter.create(tmp_path / "c")
    conn = writer.open_connection("kafka", "127.0.0.1:1", "127.0.0.1:2")
    rec = recorder_for(writer, conn, "kafka", node_map=NodeMap(base_port=40000))
    hand = SaslHandshakeResponse(error_code=ErrorCode.none, mechanisms=("PLAIN",))
    versions = ApiVersionsResponse(error_code=ErrorCode.none, api_keys=())
    session = [
        (C2S, encode_request(17, 0, 1, "old", SaslHandshakeRequest(mechanism="PLAIN"))),
        (S2C, encode_response(17, 0, 1, hand)),
        (C2S, sized(b"\x00alice\x00" + SECRET)),
        (S2C, sized(b"")),
        (C2S, encode_request(18, 0, 2, "old", ApiVersionsRequest())),
        (S2C, encode_response(18, 0, 2, versions)),
    ]
    for direction, raw in session:
        sent: list[bytes] = []
        for at in range(0, len(raw), chunk):
            rec.feed(direction, raw[at : at + chunk], sent.append)
        assert b"".join(sent) == raw  # the wire is untouched: only the cassette is redacted
    rec.close("done")
    writer.finalize()
    frames = list(CassetteReader.open(tmp_path / "c").frames())
    assert [f.summary["api"] for f in frames] == [
        "SaslHandshake",
        "SaslHandshake",
        "SaslRawToken",
        "SaslRawToken",
        "ApiVersions",
        "ApiVersions",
    ]
    assert all("error" not in f.summary for f in frames)
    assert frames[2].raw == sized(b"\x00alice\x00" + PLACEHOLDER) and frames[2].redacted
    assert frames[3].raw == sized(b"") and not frames[3].redacted
    assert not any(SECRET in f.raw for f in frames)
    for path in (tmp_path / "c").rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_bytes()
