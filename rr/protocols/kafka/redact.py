"""What is secret in Kafka frames, and how it leaves them: the one place that decides it
(the generic step after it is `rr.redact.redacted`).

Secret: SaslAuthenticate auth bytes and SaslHandshake v0 raw SASL tokens, hidden by the
mechanism the connection negotiated (`sasl_token`; never guessed from the token's bytes),
AlterUserScramCredentials salted passwords, delegation-token HMACs (Create/Describe answers,
Renew/Expire requests), and a client frame the decoder could not read as a request (a version
newer than kio, an unknown API, a body kio rejects), unless `undecodable_kept` says it is a
request that cannot hold a credential: its header reads (size, api key, version, correlation
id, client id, and a flexible header's tagged fields), its API is known and carries no
credential in any version (not one of `HEADER_ONLY_APIS`), its version is at most
`MAX_VERSIONS_AHEAD` past kio's newest, and no SASL token can be on the wire (no raw-token
mode, no SaslHandshake awaiting its answer). Otherwise it fails closed: its payload is replaced
whole (it may be a token in disguise) and its summary keeps the header only (replay then
matches it by API key and version alone). Not secret: SaslHandshake (a mechanism name), SCRAM
client-first messages (user name and nonce), the server's SASL tokens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from rrlab.rr.codecs import Decoded, Decoder, Direction
from rrlab.rr.redact import PLACEHOLDER, RedactionError, apply

from . import codec as kafka_codec
from .apis import (
    ALTER_CONFIGS,
    ALTER_USER_SCRAM_CREDENTIALS,
    API_NAMES,
    CREATE_DELEGATION_TOKEN,
    DESCRIBE_DELEGATION_TOKEN,
    ENVELOPE,
    EXPIRE_DELEGATION_TOKEN,
    INCREMENTAL_ALTER_CONFIGS,
    RENEW_DELEGATION_TOKEN,
    SASL_AUTHENTICATE,
    SASL_HANDSHAKE,
    SASL_RAW_TOKEN,
    SIZE,
    api_name,
)

_C2S = Direction.C2S


def redact(
    direction: Direction | str, raw: bytes, decoded: Decoded, decoder: Decoder | None = None
) -> tuple[bytes, Decoded]:
    """Replace credentials in one Kafka frame. Raises RedactionError rather than let one through.

    `decoder` is the connection's decoder that produced `decoded` (without it a fresh one is
    used, which is right only for frames whose reading needs no connection state).
    """
    if direction.__class__ is not Direction:  # the hot path passes members
        direction = Direction(direction)
    if direction is _C2S:
        opaque = _kafka_opaque(raw, decoded, decoder)
        if opaque is not None:
            return opaque
    return apply(_kafka, kafka_codec.KafkaDecoder, direction, raw, decoded, decoder)


UNDECODABLE = "undecodable client frame (may hold a credential)"


#: Kafka APIs whose requests are never kept when the codec cannot read them, and why: each has,
#: in some version, a field that is or may hold a credential (found in kio's schemas by field
#: name, `password`/`salt`/`hmac`/`auth_bytes`/`secret`/`token`; tests/unit/
#: test_redact_undecodable.py re-derives them, so a kio upgrade that adds one fails it), a blob
#: that may be another request, a broker config value, or it changes how SASL tokens travel.
HEADER_ONLY_APIS: dict[int, str] = {
    SASL_HANDSHAKE: "switches the connection to raw SASL tokens (v0)",
    SASL_AUTHENTICATE: "auth_bytes",
    CREATE_DELEGATION_TOKEN: "answered with the token's hmac",
    RENEW_DELEGATION_TOKEN: "hmac",
    EXPIRE_DELEGATION_TOKEN: "hmac",
    DESCRIBE_DELEGATION_TOKEN: "answered with tokens[].hmac",
    ALTER_USER_SCRAM_CREDENTIALS: "upsertions[].salt and salted_password",
    ALTER_CONFIGS: "config values (a broker's password configs)",
    INCREMENTAL_ALTER_CONFIGS: "config values (a broker's password configs)",
    ENVELOPE: "request_data (a forwarded request of any API)",
}
#: How far past the newest version kio reads a request may claim to be and still count as a newer
#: client's (Kafka adds a version or two a year to an API): a header claiming more is taken for
#: bytes that only look like one (a PLAIN token "\x00Dave\x00..." reads as API 68 v24950).
MAX_VERSIONS_AHEAD = 8


def undecodable_kept(raw: bytes, summary: dict[str, Any], decoder: Decoder | None) -> bool:
    """Whether a Kafka client frame the decoder could not read may be stored as it is (replay
    then matches it by its bytes). Only a request that cannot hold a credential: a known API
    outside `HEADER_ONLY_APIS`, a version from 0 to `MAX_VERSIONS_AHEAD` past kio's newest, a
    header kio reads (v1, and v2's tagged fields where the API is flexible), on a connection
    where no SASL token can be on the wire. Without the connection's decoder (its SASL state
    unknown), never."""
    api_key, version = summary.get("api_key"), summary.get("version")
    if api_key not in API_NAMES or api_key in HEADER_ONLY_APIS or not isinstance(version, int):
        return False
    tracker = getattr(decoder, "tracker", None)
    if tracker is None or tracker.raw_sasl_possible:
        return False
    versions = kafka_codec.request_versions(api_key)
    if not versions or not 0 <= version <= versions[-1] + MAX_VERSIONS_AHEAD:
        return False
    try:
        kafka_codec.read_request_header(raw, kafka_codec.header_flexible(api_key, version))
    except kafka_codec.KafkaCodecError:
        return False
    return True


def _kafka_opaque(
    raw: bytes, decoded: Decoded, decoder: Decoder | None
) -> tuple[bytes, Decoded] | None:
    """Client frames with no readable Kafka request around their bytes: a raw SASL token
    (after SaslHandshake v0), or anything the decoder could not read. The latter is kept only
    when `undecodable_kept` says so; otherwise fail closed, since it may be a token the decoder
    did not recognise as one.

    A frame not kept gets its summary built here: nothing of its payload may be shown.
    """
    summary = decoded.summary
    if summary.get("api") == SASL_RAW_TOKEN:
        token = raw[4:]
        new, what = sasl_token(summary["sasl_mechanism"], summary["exchange"], token)
        if new == token:
            return None
        new_raw = SIZE.pack(len(new)) + new
        fresh = (decoder or kafka_codec.KafkaDecoder()).redecode(_C2S, new_raw, decoded)
        summary = dict(fresh.summary)
        summary["redacted"] = [f"token ({what})"]
        return new_raw, Decoded(summary, redacted=True, extra=dict(fresh.extra))
    if "error" not in summary and decoded.body is not None:
        return None
    if undecodable_kept(raw, summary, decoder):
        return None
    kept: dict[str, Any] = {"api": "Undecodable"}
    if summary.get("api_key") in API_NAMES:  # a real header: its fields are no secret
        kept = {k: summary[k] for k in _HEADER_KEYS if k in summary}
        kept["error"] = summary.get("error", "request body not decoded")
    else:  # the "header" may be the first bytes of a token: keep none of them
        kept["error"] = "not a request of a known Kafka API"
    kept["redacted"] = [UNDECODABLE]
    new_raw = SIZE.pack(len(PLACEHOLDER)) + PLACEHOLDER
    return new_raw, Decoded(kept, redacted=True, extra={})


_HEADER_KEYS = ("api_key", "api", "version", "correlation_id")


#: Kafka APIs whose frames are read for a credential, by direction (Renew/Expire hold the HMAC
#: in the request only: their answers, never read, cannot stop a recording)
_KAFKA_SECRET_APIS = {
    Direction.S2C: frozenset(
        {
            SASL_AUTHENTICATE,
            ALTER_USER_SCRAM_CREDENTIALS,
            CREATE_DELEGATION_TOKEN,
            DESCRIBE_DELEGATION_TOKEN,
        }
    ),
}
_KAFKA_SECRET_APIS[Direction.C2S] = _KAFKA_SECRET_APIS[Direction.S2C] | {
    RENEW_DELEGATION_TOKEN,
    EXPIRE_DELEGATION_TOKEN,
}


def _kafka(direction: Direction, raw: bytes, decoded: Decoded) -> tuple[bytes, list[str]] | None:
    api_key = decoded.summary.get("api_key")
    if api_key not in _KAFKA_SECRET_APIS[direction]:
        return None
    version = decoded.summary["version"]
    correlation_id = decoded.summary["correlation_id"]
    try:
        if direction is Direction.C2S:
            request = kafka_codec.decode_request(raw)
            body, fields = _kafka_request_body(api_key, request.body, decoded.summary)
            if body is None:
                return None
            client_id = request.header.client_id
            return kafka_codec.encode_request(
                api_key, version, correlation_id, client_id, body
            ), fields
        body = kafka_codec.decode_response_body(api_key, version, raw)
        body, fields = _kafka_response_body(api_key, body)
        if body is None:
            return None
        return kafka_codec.encode_response(api_key, version, correlation_id, body), fields
    except kafka_codec.KafkaCodecError as err:
        raise RedactionError(
            f"cannot redact Kafka {api_name(api_key)} v{version} "
            f"(correlation id {correlation_id}): {err}"
        ) from err


def _kafka_request_body(api_key: int, body: Any, summary: dict[str, Any]) -> tuple[Any, list[str]]:
    if api_key == SASL_AUTHENTICATE:
        # the decoder names the negotiated mechanism; a summary without it knows of none
        mechanism, exchange = summary.get("sasl_mechanism"), summary.get("exchange", 1)
        new, what = sasl_token(mechanism, exchange, body.auth_bytes)
        if new == body.auth_bytes:
            return None, []
        return dataclasses.replace(body, auth_bytes=new), [f"auth_bytes ({what})"]
    if api_key == ALTER_USER_SCRAM_CREDENTIALS and body.upsertions:
        upsertions = tuple(
            dataclasses.replace(u, salted_password=PLACEHOLDER) for u in body.upsertions
        )
        return dataclasses.replace(body, upsertions=upsertions), ["upsertions[].salted_password"]
    if api_key in (RENEW_DELEGATION_TOKEN, EXPIRE_DELEGATION_TOKEN) and body.hmac:
        return dataclasses.replace(body, hmac=PLACEHOLDER), ["hmac"]  # the token's own HMAC
    return None, []


def _kafka_response_body(api_key: int, body: Any) -> tuple[Any, list[str]]:
    if api_key == CREATE_DELEGATION_TOKEN and body.hmac:
        return dataclasses.replace(body, hmac=PLACEHOLDER), ["hmac"]
    if api_key == DESCRIBE_DELEGATION_TOKEN and body.tokens:
        tokens = tuple(dataclasses.replace(t, hmac=PLACEHOLDER) for t in body.tokens)
        return dataclasses.replace(body, tokens=tokens), ["tokens[].hmac"]
    return None, []


def sasl_token(mechanism: str | None, exchange: int, token: bytes) -> tuple[bytes, str]:
    """Redact one client SASL token (Kafka auth bytes or a raw token) of the negotiated
    `mechanism` (None: none negotiated), the `exchange`-th the client sent under it. Returns
    (new token, what was replaced).

    Decided by the mechanism, never by the token's bytes: PLAIN keeps authzid and user and
    hides the password; SCRAM-SHA-256/512 keeps the client-first message (user name, nonce) and
    hides the client-final proof; OAUTHBEARER keeps the gs2 header (authzid) and hides the rest
    (the bearer token and any extensions). A token that does not read as its mechanism's
    message at that step, and any other or unknown mechanism's token, is replaced whole.
    """
    if not token:
        return token, "none"
    redactor = _SASL_REDACTORS.get(mechanism or "")
    if redactor is None:
        return (
            PLACEHOLDER,
            f"{mechanism} token" if mechanism else "SASL token, no mechanism negotiated",
        )
    redacted = redactor(exchange, token)
    if redacted is None:
        return PLACEHOLDER, f"{mechanism} token, unreadable"
    return redacted


def _plain(_exchange: int, token: bytes) -> tuple[bytes, str] | None:
    """RFC 4616: [authzid] NUL authcid NUL passwd."""
    if token.count(b"\x00") != 2:
        return None
    authzid, user, _password = token.split(b"\x00")
    return b"\x00".join((authzid, user, PLACEHOLDER)), "PLAIN password"


def _gs2_header(token: bytes) -> int | None:
    """Length of an RFC 5801 gs2 header ("n,," / "y,a=x," / "p=cb,a=x,"), None if none."""
    parts = token.split(b",", 2)
    if len(parts) < 3:
        return None
    flag, authzid = parts[0], parts[1]
    if not (flag in (b"n", b"y") or flag.startswith(b"p=")):
        return None
    if authzid and not authzid.startswith(b"a="):
        return None
    return len(flag) + len(authzid) + 2


#: SCRAM client-first attributes after the gs2 header: user, nonce, then Kafka's one extension
#: (KIP-48 delegation tokens); anything else is not understood (and redacted whole).
_SCRAM_FIRST = (b"n=", b"r=")
_SCRAM_EXTENSIONS = (b"tokenauth=",)


def _scram(exchange: int, token: bytes) -> tuple[bytes, str] | None:
    """RFC 5802: client-first (exchange 1) carries no secret; client-final (2) hides its proof."""
    if exchange == 1:
        header = _gs2_header(token)
        if header is None:
            return None
        attrs = token[header:].split(b",")
        if len(attrs) < 2 or [a[:2] for a in attrs[:2]] != list(_SCRAM_FIRST):
            return None
        if not all(a.startswith(_SCRAM_EXTENSIONS) for a in attrs[2:]):
            return None
        return token, "none"
    if exchange == 2:
        attrs = token.split(b",")
        if len(attrs) < 3 or attrs[0][:2] != b"c=" or attrs[1][:2] != b"r=":
            return None
        if attrs[-1][:2] != b"p=":
            return None
        return b",".join([*attrs[:-1], b"p=" + PLACEHOLDER]), "SCRAM client proof"
    return None


def _oauthbearer(exchange: int, token: bytes) -> tuple[bytes, str] | None:
    """RFC 7628 client response: gs2 header, then \\x01-separated key=value pairs (auth=Bearer
    <token>, Kafka's SASL extensions). The header stays; every pair is replaced."""
    header = _gs2_header(token) if exchange == 1 else None
    if header is None or token[header : header + 1] != b"\x01":
        return None
    return token[:header] + b"\x01auth=Bearer " + PLACEHOLDER + b"\x01\x01", "OAUTHBEARER token"


_SASL_REDACTORS: dict[str, Callable[[int, bytes], tuple[bytes, str] | None]] = {
    "PLAIN": _plain,
    "SCRAM-SHA-256": _scram,
    "SCRAM-SHA-512": _scram,
    "OAUTHBEARER": _oauthbearer,
}
