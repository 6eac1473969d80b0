"""What is secret in AMQP 0-9-1 frames: the SASL response of Connection.StartOk / SecureOk
(PLAIN and AMQPLAIN keep the user name; EXTERNAL's empty response is no secret). The one place
that decides it (the generic step after it is `rr.redact.redacted`)."""

from __future__ import annotations

import struct

import pamqp.decode
import pamqp.encode

from rrlab.rr.codecs import Decoded, Decoder, Direction
from rrlab.rr.redact import PLACEHOLDER, RedactionError, apply

from .codec import AmqpDecoder


def redact(
    direction: Direction | str, raw: bytes, decoded: Decoded, decoder: Decoder | None = None
) -> tuple[bytes, Decoded]:
    """Replace credentials in one AMQP frame. Raises RedactionError rather than let one through."""
    return apply(_amqp, AmqpDecoder, direction, raw, decoded, decoder)


_START_OK, _SECURE_OK = 0x000A000B, 0x000A0015  # Connection.StartOk, Connection.SecureOk
_FRAME_HEADER = struct.Struct(">BHI")
_C2S = Direction.C2S


def _amqp(direction: Direction, raw: bytes, decoded: Decoded) -> tuple[bytes, list[str]] | None:
    # only client method frames (the protocol header starts with "A")
    if raw[:1] != b"\x01" or direction is not _C2S or len(raw) < 12:
        return None
    try:
        return _amqp_method(raw)
    except (struct.error, IndexError) as err:
        raise RedactionError(f"cannot redact a malformed AMQP Connection method: {err}") from err


def _amqp_method(raw: bytes) -> tuple[bytes, list[str]] | None:
    """Splice the SASL response of StartOk/SecureOk; every other byte stays as it was."""
    (method,) = struct.unpack_from(">I", raw, 7)
    if method == _START_OK:
        table_len = struct.unpack_from(">I", raw, 11)[0]
        mech_at = 15 + table_len
        mechanism = raw[mech_at + 1 : mech_at + 1 + raw[mech_at]].decode("ascii", "replace")
        at = mech_at + 1 + raw[mech_at]
    elif method == _SECURE_OK:
        mechanism, at = "", 11
    else:
        return None
    (length,) = struct.unpack_from(">I", raw, at)
    if at + 4 + length > len(raw) - 1:
        raise IndexError(f"response of {length} bytes runs past the frame")
    response = raw[at + 4 : at + 4 + length]
    new, what = amqp_response(mechanism, response)
    if new == response:
        return None
    name = "Connection.StartOk" if method == _START_OK else "Connection.SecureOk"
    payload = raw[7:at] + struct.pack(">I", len(new)) + new + raw[at + 4 + length : -1]
    header = _FRAME_HEADER.pack(raw[0], int.from_bytes(raw[1:3], "big"), len(payload))
    return header + payload + b"\xce", [f"{name}.response ({what})"]


def amqp_response(mechanism: str, response: bytes) -> tuple[bytes, str]:
    """Redact a Connection.StartOk/SecureOk SASL response. Returns (new response, what)."""
    if not response:
        return response, "none"
    if mechanism == "PLAIN" and response.count(b"\x00") == 2:
        authzid, user, _password = response.split(b"\x00")
        return b"\x00".join((authzid, user, PLACEHOLDER)), "PLAIN password"
    if mechanism == "AMQPLAIN":
        try:
            _n, table = pamqp.decode.field_table(struct.pack(">I", len(response)) + response)
        except (ValueError, struct.error):
            return PLACEHOLDER, "AMQPLAIN response"
        if "PASSWORD" in table:
            table["PASSWORD"] = PLACEHOLDER.decode()
            return pamqp.encode.field_table(table)[4:], "AMQPLAIN PASSWORD"
    return PLACEHOLDER, f"{mechanism or 'SASL'} response"
