"""Which Kafka client frames the decoder cannot read may be kept whole (rr.redact
`undecodable_kept`): a request whose header reads, of a known API that carries no credential in
any version, at most MAX_VERSIONS_AHEAD past kio's newest version, on a connection where no SASL
token can be on the wire. Everything else stays fail-closed (payload replaced, header only)."""

from __future__ import annotations

import dataclasses
import re
import struct
import typing

import pytest
from kio.index import KioIndexError, load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.schema.index import api_key_map
from kio.schema.sasl_handshake.v0.request import SaslHandshakeRequest
from kio.schema.sasl_handshake.v0.response import SaslHandshakeResponse

from rrlab.rr.canonical import dumps
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import decoder_for, redact
from rrlab.rr.protocols.kafka.apis import API_NAMES, API_VERSIONS, FETCH, METADATA, PRODUCE
from rrlab.rr.protocols.kafka.codec import (
    KafkaFramer,
    encode_request,
    encode_response,
    header_flexible,
    request_versions,
)
from rrlab.rr.protocols.kafka.redact import (
    HEADER_ONLY_APIS,
    MAX_VERSIONS_AHEAD,
    UNDECODABLE,
    undecodable_kept,
)
from rrlab.rr.redact import PLACEHOLDER

C2S, S2C = Direction.C2S, Direction.S2C
SECRET = b"Sup3r-s3cret!"


def sized(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def request(api: int, version: int, body: bytes = b"\x00", client_id: bytes = b"cli") -> bytes:
    """A request frame kio cannot read: a header of the layout the API's version has (v2 adds
    an empty tagged-field section after the client id), then `body`."""
    head = struct.pack(">hhih", api, version, 7, len(client_id)) + client_id
    return sized(head + (b"\x00" if header_flexible(api, version) else b"") + body)


def too_new(api: int) -> int:
    return request_versions(api)[-1] + 1


def record(raw: bytes, decoder=None):
    """What the recorder does: the connection's decoder reads the frame, then redact."""
    decoder = decoder if decoder is not None else decoder_for("kafka")
    decoded = decoder.decode(C2S, raw)
    assert "error" in decoded.summary or decoded.summary.get("api") == "SaslRawToken"
    return decoded, *redact(Proto.KAFKA, C2S, raw, decoded, decoder)


def assert_fail_closed(raw: bytes, new: bytes, out) -> None:
    assert new == sized(PLACEHOLDER)
    assert KafkaFramer(C2S).feed(new)[0].raw == new
    assert SECRET not in new and SECRET not in dumps(out.summary)
    assert out.redacted


# --- kept ---------------------------------------------------------------------------------------

KEPT = {
    "ApiVersions v5 (a current Go client)": (API_VERSIONS, too_new(API_VERSIONS)),
    "Metadata, newer than kio": (METADATA, too_new(METADATA)),
    "Fetch, newer than kio": (FETCH, too_new(FETCH)),
    "Produce, the most ahead kept": (PRODUCE, request_versions(PRODUCE)[-1] + MAX_VERSIONS_AHEAD),
    "Fetch v3, older than kio reads": (FETCH, request_versions(FETCH)[0] - 1),
}


@pytest.mark.parametrize("name", sorted(KEPT))
def test_an_undecodable_request_of_an_api_without_credentials_is_kept_whole(name):
    api, version = KEPT[name]
    raw = request(api, version, b"\x0agoclient\x041.0\x00")
    decoded, new, out = record(raw)
    assert new is raw and out is decoded  # unchanged: the same objects
    assert out.summary["version"] == version and "redacted" not in out.summary


def test_a_known_version_whose_body_kio_rejects_is_kept_for_a_safe_api():
    raw = request(API_VERSIONS, 3, b"\xff\xff\xff\xff")  # compact strings of absurd length
    _decoded, new, _out = record(raw)
    assert new == raw


# --- fail closed --------------------------------------------------------------------------------

#: The APIs the issue names as carrying a credential: every one header-only.
NAMED = {
    "SaslHandshake",
    "SaslAuthenticate",
    "AlterUserScramCredentials",
    "CreateDelegationToken",
    "RenewDelegationToken",
    "ExpireDelegationToken",
    "DescribeDelegationToken",
}


def test_the_table_holds_every_api_the_issue_names():
    assert NAMED <= {API_NAMES[k] for k in HEADER_ONLY_APIS}


@pytest.mark.parametrize("api", sorted(HEADER_ONLY_APIS), ids=lambda k: API_NAMES[k])
@pytest.mark.parametrize("which", ["too new", "newest, bad body"])
def test_an_undecodable_request_of_an_api_that_may_carry_a_credential_stays_redacted(api, which):
    version = too_new(api) if which == "too new" else request_versions(api)[-1]
    raw = request(api, version, b"\x7f\xff" + SECRET)
    _decoded, new, out = record(raw)
    assert_fail_closed(raw, new, out)
    assert out.summary["redacted"] == [UNDECODABLE]
    assert (out.summary["api"], out.summary["version"]) == (API_NAMES[api], version)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("unknown API key", request(32000, 0, SECRET)),
        ("version far ahead", request(METADATA, too_new(METADATA) + MAX_VERSIONS_AHEAD, SECRET)),
        ("negative version", request(METADATA, -3, SECRET)),
        ("client id past the frame", sized(struct.pack(">hhih", 3, 99, 7, 400) + SECRET)),
        ("client id not UTF-8", sized(struct.pack(">hhih", 3, 99, 7, 2) + b"\xff\xfe" + SECRET)),
        ("client id length below -1", sized(struct.pack(">hhih", 3, 99, 7, -9) + SECRET)),
        # ApiVersions v5 has the flexible header: 5 tagged fields announced, none there
        ("tagged fields past the frame", sized(struct.pack(">hhih", 18, 5, 7, 1) + b"c\x05")),
        # a PLAIN token with an empty authzid and user "Dave": API 68 v24950
        ("a PLAIN token", sized(b"\x00Dave\x00" + SECRET)),
        ("too short for a client id", sized(struct.pack(">hhi", 18, 5, 7) + b"\x00")),
    ],
)
def test_an_undecodable_request_whose_header_is_not_plausible_stays_redacted(name, raw):
    _decoded, new, out = record(raw)
    assert_fail_closed(raw, new, out)


def test_without_the_connections_decoder_nothing_undecodable_is_kept():
    raw = request(API_VERSIONS, too_new(API_VERSIONS), SECRET)
    decoded = decoder_for("kafka").decode(C2S, raw)
    new, out = redact(Proto.KAFKA, C2S, raw, decoded)  # the SASL state is unknown
    assert_fail_closed(raw, new, out)
    assert not undecodable_kept(raw, decoded.summary, None)


def handshake(decoder, version: int, mechanism: str, corr: int = 1, answer: bool = True) -> None:
    from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest as V1
    from kio.schema.sasl_handshake.v1.response import SaslHandshakeResponse as V1Response

    cls, answer_cls = (
        (SaslHandshakeRequest, SaslHandshakeResponse) if version == 0 else (V1, V1Response)
    )
    decoder.decode(C2S, encode_request(17, version, corr, "c", cls(mechanism=mechanism)))
    if answer:
        body = answer_cls(error_code=ErrorCode.none, mechanisms=(mechanism,))
        decoder.decode(S2C, encode_response(17, version, corr, body))


@pytest.mark.parametrize("mechanism", ["PLAIN", "X-CUSTOM"])
def test_in_the_raw_token_state_a_frame_like_a_too_new_request_stays_redacted(mechanism):
    """KIP-43: after a SaslHandshake v0 the client's tokens have no header, whatever they look
    like (X-CUSTOM: a mechanism whose number of tokens is unknown)."""
    decoder = decoder_for("kafka")
    handshake(decoder, 0, mechanism)
    raw = request(API_VERSIONS, too_new(API_VERSIONS), SECRET)
    decoded, new, out = record(raw, decoder)
    assert decoded.summary["api"] == "SaslRawToken"
    assert SECRET not in new and new != raw


def test_while_a_sasl_handshake_awaits_its_answer_nothing_undecodable_is_kept():
    """A client may send its first raw token before it reads the handshake's answer."""
    decoder = decoder_for("kafka")
    handshake(decoder, 0, "PLAIN", answer=False)
    raw = request(API_VERSIONS, too_new(API_VERSIONS), SECRET)
    _decoded, new, out = record(raw, decoder)
    assert_fail_closed(raw, new, out)
    assert out.summary["redacted"] == [UNDECODABLE]


def test_after_a_sasl_handshake_v1_was_answered_a_too_new_request_is_kept():
    """v1 carries tokens in SaslAuthenticate requests: no raw token can follow."""
    decoder = decoder_for("kafka")
    handshake(decoder, 1, "PLAIN")
    raw = request(API_VERSIONS, too_new(API_VERSIONS), b"\x0agoclient\x041.0\x00")
    _decoded, new, _out = record(raw, decoder)
    assert new is raw


# --- the table, derived from kio's schemas ------------------------------------------------------

#: field names that are (or hold) a credential, as whole words of a field name
SECRET_FIELD = re.compile(r"(^|_)(password|passwd|salt|hmac|auth_bytes|secret|token)($|_)")
#: bytes fields of requests whose content is known and holds no credential (the client's own
#: group protocol metadata and assignments, telemetry metrics, record batches)
HARMLESS_BLOBS = {
    "JoinGroup": {"protocols.metadata"},
    "SyncGroup": {"assignments.assignment"},
    "PushTelemetry": {"metrics"},
}


def _fields(cls: type, path: str = "", seen: set | None = None):
    """(dotted path, type) of every field of a kio entity, nested entities included."""
    seen = set() if seen is None else seen
    if cls in seen:
        return
    seen.add(cls)
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        flat = [hint, *typing.get_args(hint)]
        flat += [b for a in flat for b in typing.get_args(a)]
        yield path + field.name, flat
        for part in flat:
            if dataclasses.is_dataclass(part) and isinstance(part, type):
                yield from _fields(part, f"{path}{field.name}.", seen)


def _schemas(api: int):
    for loader, kind in ((load_request_schema, "request"), (load_response_schema, "response")):
        for version in request_versions(api):
            try:
                yield kind, loader(api, version)
            except KioIndexError:
                continue


def test_every_api_with_a_secret_named_field_in_kio_is_header_only():
    found: dict[str, set[str]] = {}
    for api in api_key_map:
        for kind, cls in _schemas(api):
            for path, _types in _fields(cls):
                if SECRET_FIELD.search(path.rsplit(".", 1)[-1]):
                    found.setdefault(API_NAMES[api], set()).add(f"{kind} {path}")
    # what kio's schemas hold today (a kio upgrade that adds one shows here first)
    assert set(found) == {
        "SaslAuthenticate",
        "AlterUserScramCredentials",
        "CreateDelegationToken",
        "RenewDelegationToken",
        "ExpireDelegationToken",
        "DescribeDelegationToken",
    }, found
    missing = set(found) - {API_NAMES[k] for k in HEADER_ONLY_APIS}
    assert not missing, f"APIs with credential fields not in HEADER_ONLY_APIS: {missing}"


def test_every_bytes_field_of_a_request_is_a_known_blob_or_its_api_is_header_only():
    unknown: dict[str, set[str]] = {}
    for api in api_key_map:
        if api in HEADER_ONLY_APIS:
            continue
        for kind, cls in _schemas(api):
            if kind != "request":
                continue
            for path, types in _fields(cls):
                if bytes in types and path not in HARMLESS_BLOBS.get(API_NAMES[api], ()):
                    unknown.setdefault(API_NAMES[api], set()).add(path)
    assert not unknown, f"request blobs nobody judged (add to HEADER_ONLY_APIS or here): {unknown}"
