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
every run): `record_diff` compares records by key, value and headers, in order.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from rr.canonical import dumps
from rr.codecs.kafka_apis import (
    ALTER_USER_SCRAM_CREDENTIALS,
    API_VERSIONS,
    JOIN_GROUP,
    LEAVE_GROUP,
    SASL_AUTHENTICATE,
)

from . import payload

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


def view_diff(recorded: Any, live: Any, path: str = "") -> list[str]:
    """Field-level differences of two `request_view`s (dotted paths)."""
    if recorded == live:
        return []
    if isinstance(recorded, dict) and isinstance(live, dict):
        out: list[str] = []
        for key in list(dict.fromkeys([*recorded, *live])):
            sub = f"{path}.{key}" if path else str(key)
            if key not in recorded or key not in live:
                out.append(f"{sub}: recorded {recorded.get(key)!r} live {live.get(key)!r}")
            else:
                out += view_diff(recorded[key], live[key], sub)
        return out
    if isinstance(recorded, list) and isinstance(live, list) and len(recorded) == len(live):
        out = []
        for i, (a, b) in enumerate(zip(recorded, live, strict=True)):
            out += view_diff(a, b, f"{path}[{i}]")
        return out
    return [f"{path or 'request'}: recorded {_short(recorded)} live {_short(live)}"]


def _short(value: Any) -> str:
    text = dumps(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:80] + "…"


# --- records --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class RecordFace:
    """What of a Kafka record is compared: never its timestamp, offset or batch framing."""

    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def record_diff(
    where: str,
    recorded: RecordFace,
    live: RecordFace,
    *,
    ignore_fields: Iterable[str] = (),
    ignore_headers: Iterable[str] = (),
) -> list[str]:
    """Lines like `Produce topic t partition 0 record 17 value.n: recorded 17 live 18`."""
    out = payload.diff(f"{where} key", recorded.key, live.key)
    out += payload.diff(f"{where} value", recorded.value, live.value, ignore_fields)
    skip = set(ignore_headers)
    rec_h = [(k, v) for k, v in recorded.headers if k not in skip]
    live_h = [(k, v) for k, v in live.headers if k not in skip]
    if rec_h != live_h:
        rec_names, live_names = [k for k, _ in rec_h], [k for k, _ in live_h]
        if rec_names != live_names:
            out.append(f"{where} headers: recorded {rec_names} live {live_names}")
        else:
            for (name, a), (_n, b) in zip(rec_h, live_h, strict=True):
                out += payload.diff(f"{where} header {name}", a, b)
    return out
