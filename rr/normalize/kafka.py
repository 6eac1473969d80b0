"""Kafka match keys: what of a request must equal the recorded one.

Rules (each a small named function of api key -> ignored field names, composed in RULES):
- the header's correlation id and client id never count (the live correlation id is stamped on
  every served response; client ids name software, not behaviour);
- ApiVersions: client software name and version (KIP-511) ignored;
- JoinGroup / LeaveGroup: the free-text `reason` (KIP-800) ignored;
- SaslAuthenticate auth bytes, AlterUserScramCredentials salted passwords: the credential is a
  placeholder in the cassette: any credential matches;
- request timeouts (`timeout`, `timeout_ms`: how long the client will wait, e.g. CreateTopics,
  Produce) ignored: they are configuration, not behaviour.
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
from typing import Any

from rr import diff
from rr.canonical import dumps
from rr.codecs.kafka_apis import (
    ALTER_USER_SCRAM_CREDENTIALS,
    API_VERSIONS,
    JOIN_GROUP,
    LEAVE_GROUP,
    SASL_AUTHENTICATE,
)

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
) -> list[str]:
    """Lines like `Produce topic t partition 0 record 17 value.n: recorded 17 live 18`."""
    ignore = record_rules(ignore_fields, ignore_headers)
    rec, got = ignore.apply(recorded.view()), ignore.apply(live.view())
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
