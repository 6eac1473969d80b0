"""Kafka match keys: what of a request must equal the recorded one.

Rules (each a small named function of api key -> ignored field names, composed in RULES):
- the header's correlation id and client id never count (the live correlation id is stamped on
  every served response; client ids name software, not behaviour);
- ApiVersions: client software name and version (KIP-511) ignored;
- JoinGroup / LeaveGroup: the free-text `reason` (KIP-800) ignored;
- SaslAuthenticate auth bytes, AlterUserScramCredentials salted passwords, Renew/Expire
  DelegationToken HMACs: the credential is a placeholder in the cassette: any credential matches;
- request timeouts (`timeout`, `timeout_ms`: how long the client will wait, e.g. CreateTopics,
  Produce) ignored: they are configuration, not behaviour.
A request the codec cannot decode (a version newer than kio) is compared as bytes, correlation
and client id masked (`opaque_request_key`): nothing of it can be read to ignore a field.
Record batches are never compared as bytes (timestamps, CRC, producer id/epoch/sequence change
every run): records are, by key, value and headers (by name, in any order); ignore rules and
diff lines are `rr.diff`'s, on the record's view (`key`, `value`, `headers`).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import hashlib
import uuid
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from rrlab.rr import diff
from rrlab.rr.canonical import dumps

from .apis import (
    ALTER_USER_SCRAM_CREDENTIALS,
    API_VERSIONS,
    EXPIRE_DELEGATION_TOKEN,
    JOIN_GROUP,
    LEAVE_GROUP,
    RENEW_DELEGATION_TOKEN,
    SASL_AUTHENTICATE,
)
from .codec import KafkaCodecError, read_request_header

Rule = Callable[[int], Iterable[str]]


def ignore_client_software(api_key: int) -> Iterable[str]:
    return ("client_software_name", "client_software_version") if api_key == API_VERSIONS else ()


def ignore_free_text_reasons(api_key: int) -> Iterable[str]:
    return ("reason",) if api_key in (JOIN_GROUP, LEAVE_GROUP) else ()


def any_credentials(api_key: int) -> Iterable[str]:
    """Fields the redactor replaces (rr.redact): a placeholder in the cassette, any live value."""
    return _CREDENTIAL_FIELDS.get(api_key, ())


_CREDENTIAL_FIELDS = {
    SASL_AUTHENTICATE: ("auth_bytes",),
    ALTER_USER_SCRAM_CREDENTIALS: ("salted_password",),
    RENEW_DELEGATION_TOKEN: ("hmac",),
    EXPIRE_DELEGATION_TOKEN: ("hmac",),
}


def ignore_request_timeouts(api_key: int) -> Iterable[str]:
    return ("timeout", "timeout_ms")


RULES: tuple[Rule, ...] = (
    ignore_client_software,
    ignore_free_text_reasons,
    any_credentials,
    ignore_request_timeouts,
)


def ignored_fields(api_key: int, rules: Iterable[Rule] = RULES) -> frozenset[str]:
    return frozenset(name for rule in rules for name in rule(api_key))


_BYTES_SHOWN = 64


def entity_view(value: Any, ignore: frozenset[str] = frozenset()) -> Any:
    """A JSON-able, order-preserving view of a kio entity without the `ignore`d fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: entity_view(getattr(value, f.name), ignore)
            for f in dataclasses.fields(value)
            if f.name not in ignore
        }
    if isinstance(value, tuple | list):
        return [entity_view(v, ignore) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        if len(data) <= _BYTES_SHOWN:
            return {"hex": data.hex()}
        return {"len": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds() * 1000)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def request_key(api_key: int, version: int, body: Any) -> str:
    """The match key of a decoded request body (canonical JSON text)."""
    view = entity_view(body, ignored_fields(api_key))
    return dumps([api_key, version, view]).decode()


def request_view(api_key: int, body: Any) -> Any:
    """What of a request is compared, for a miss's field-level diff."""
    return entity_view(body, ignored_fields(api_key))


def view_diff(recorded: Any, live: Any) -> list[str]:
    """Field-level differences of two `request_view`s (dotted paths)."""
    return diff.lines(recorded, live, whole="request")


# --- records --------------------------------------------------------------------------------


#: A record as an ignore path sees it: `key`, `value`, `headers` (a path without one of these
#: names starts in the value).
RECORD = diff.Shape(frozenset({"key", "value", "headers"}), "value", ("headers",))


@dataclasses.dataclass(frozen=True, slots=True)
class RecordFace:
    """What of a Kafka record is compared: never its timestamp, offset or batch framing."""

    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]

    def view(self) -> dict[str, Any]:
        """The record as a value: key and value by `rr.diff.value_of`, headers by name."""
        return {
            "headers": diff.by_name(self.headers, diff.value_of),
            "key": diff.value_of(self.key),
            "value": diff.value_of(self.value),
        }


@functools.cache
def _record_rules(fields: tuple[str, ...], headers: tuple[str, ...]) -> diff.Ignore:
    return diff.Ignore.build(RECORD, fields, headers)


def record_rules(
    ignore_fields: Iterable[str] = (), ignore_headers: Iterable[str] = ()
) -> diff.Ignore:
    """A run's ignore rules as paths into a record's view."""
    return _record_rules(tuple(ignore_fields), tuple(ignore_headers))


def record_key(face: RecordFace, ignore: diff.Ignore = diff.NO_IGNORE) -> bytes:
    """What a produced record is matched by: its bytes (headers by name, in any order), a part
    an ignore path reaches into as its value without the ignored fields."""
    h = hashlib.sha1(usedforsecurity=False)
    if ignore:
        view = face.view()
        exact = {
            "key": _hex(face.key),
            "value": _hex(face.value),
            "headers": sorted([k, _hex(v)] for k, v in face.headers),
        }
        compared = {part: view[part] if ignore.touches(part) else exact[part] for part in exact}
        h.update(diff.canonical(ignore.apply(compared)))
        return h.digest()
    for part in (face.key, face.value):
        h.update(b"\x00" if part is None else b"\x01%d:" % len(part) + part)
    for k, v in sorted(face.headers, key=lambda kv: kv[0]):
        h.update(b"\x02" + k.encode() + b"\x00" + (b"\x00" if v is None else b"\x01" + v))
    return h.digest()


def _hex(data: bytes | None) -> str | None:
    return None if data is None else data.hex()


def record_diff(
    where: str,
    recorded: RecordFace,
    live: RecordFace,
    *,
    ignore_fields: Iterable[str] = (),
    ignore_headers: Iterable[str] = (),
    bindings: Any = None,
) -> list[str]:
    """Lines like `Produce topic t partition 0 record 17 value.n: recorded 17 live 18`; with the
    run's `bindings`, values that would bind are not named."""
    ignore = record_rules(ignore_fields, ignore_headers)
    rec, got = ignore.apply(recorded.view()), ignore.apply(live.view())
    if bindings is not None:
        got = bindings.aligned(rec, got)
    out = diff.lines(rec, got)
    if not out:  # equal as values, perhaps not as bytes (e.g. JSON spacing)
        out = [
            f"{part}: same value, different bytes" for part in _bytes_differ(recorded, live, ignore)
        ]
    return [f"{where} {line}" for line in out]


def _bytes_differ(recorded: RecordFace, live: RecordFace, ignore: diff.Ignore) -> list[str]:
    """The parts no ignore path reaches into whose bytes differ."""
    parts = [p for p in ("key", "value") if getattr(recorded, p) != getattr(live, p)]
    if sorted(recorded.headers) != sorted(live.headers):
        parts.append("headers")
    return [p for p in parts if not ignore.touches(p)]


# --- requests the codec cannot decode -----------------------------------------------------------

#: bytes shown before and after the first difference of two undecodable requests
_WINDOW_BEFORE, _WINDOW_AFTER = 6, 10


def _client_id_end(raw: bytes) -> int | None:
    try:
        return read_request_header(raw, flexible=False)
    except KafkaCodecError:
        return None


def opaque_request_key(raw: bytes) -> bytes | None:
    """What a request the codec cannot decode (a version newer than kio, a body kio rejects) is
    matched by: its api key and version, then every byte after its client id (a flexible
    header's tagged fields, the body). Size, correlation id and client id never count, as for
    every request. None when the header does not read as far as the client id."""
    end = _client_id_end(raw)
    return None if end is None else raw[4:8] + raw[end:]


def opaque_request_digest(raw: bytes) -> bytes | None:
    """A digest of `opaque_request_key` (None when there is none)."""
    key = opaque_request_key(raw)
    return None if key is None else hashlib.sha256(key).digest()


class OpaqueDifference(NamedTuple):
    """Where two undecodable requests first differ: `at`, the offset in the live frame (-1 when
    a header does not read), and one line saying so."""

    at: int
    line: str


def opaque_difference(recorded: bytes, live: bytes) -> OpaqueDifference | None:
    """Where a live undecodable request first differs from a recorded one, correlation and
    client id masked; None when they match. Offsets count from the frame's first byte (its
    size included): `first differs at byte 41 of the live frame (byte 37 of the recorded):
    recorded 72 61 77 04 31 2e|30 00, live 72 61 77 04 31 2e|31 00` (`|`: the first byte that
    differs, `<end>`: where a frame ends)."""
    rec_end, live_end = _client_id_end(recorded), _client_id_end(live)
    if rec_end is None or live_end is None:
        which = "recorded" if rec_end is None else "live"
        return OpaqueDifference(-1, f"the {which} request's header does not read to its client id")
    if recorded[4:8] != live[4:8]:
        return OpaqueDifference(4, "api key or version differ")
    rec_tail, live_tail = recorded[rec_end:], live[live_end:]
    same = 0
    for a, b in zip(rec_tail, live_tail, strict=False):
        if a != b:
            break
        same += 1
    if same == len(rec_tail) == len(live_tail):
        return None
    where = f"byte {live_end + same} of the live frame (byte {rec_end + same} of the recorded)"
    line = (
        f"first differs at {where}: recorded {_window(rec_tail, same)}, "
        f"live {_window(live_tail, same)}"
    )
    return OpaqueDifference(live_end + same, line)


def _window(data: bytes, at: int) -> str:
    before = data[max(0, at - _WINDOW_BEFORE) : at].hex(" ")
    after = data[at : at + _WINDOW_AFTER].hex(" ") or "<end>"
    if at + _WINDOW_AFTER < len(data):
        after += " ..."
    return f"{before}|{after}" if before else f"|{after}"
