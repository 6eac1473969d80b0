"""Kafka wire codec: int32 size-prefixed framing, kio-based decoding, re-encoding helpers."""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, overload

from kio.index import KioIndexError, load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.schema.index import api_key_map, schema_name_map
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.serial import entity_reader, entity_writer
from kio.serial.errors import SerialError
from kio.static.primitive import i16, i32

from rrlab.rr.codecs._framing import BufferedFramer
from rrlab.rr.codecs.base import Decoded, Direction, Proto

from . import guard as kafka_guard
from .apis import (
    ALTER_USER_SCRAM_CREDENTIALS,
    API_VERSIONS,
    CREATE_DELEGATION_TOKEN,
    DESCRIBE_DELEGATION_TOKEN,
    EXPIRE_DELEGATION_TOKEN,
    FETCH,
    PRODUCE,
    RENEW_DELEGATION_TOKEN,
    REQUEST_HEAD_BYTES,
    RESPONSE_HEAD_BYTES,
    SASL_AUTHENTICATE,
    SASL_HANDSHAKE,
    SASL_RAW_TOKEN,
    api_name,
    request_key,
    response_correlation_id,
)
from .records import (
    MIN_RECORD_BYTES,
    RecordsError,
    read_record_set,
    read_records,
    record_glimpses,
    scan_record_set,
)
from .track import CorrelationTracker, Pairing, raw_token_summary

_SIZE = struct.Struct(">i")
_REQ_PREFIX = struct.Struct(">hh")


class KafkaFramer(BufferedFramer):
    """Splits a Kafka stream (either direction) into frames; each keeps its size prefix.

    Any size from 0 up to the budget frames: after a SaslHandshake v0 the SASL tokens travel
    with the size prefix only, and a broker's PLAIN success is an empty one (size 0). So a frame
    may be shorter than a Kafka header; the decoder, not the framer, says what it is.
    """

    proto = Proto.KAFKA

    def _frame_length(self, buf: bytearray, start: int, offset: int) -> int | None:
        if len(buf) - start < 4:
            return None
        (size,) = _SIZE.unpack_from(buf, start)
        if size < 0:
            raise self._error(offset, f"declared frame size {size} is negative")
        if size + 4 > self.max_frame_bytes:
            raise self._error(
                offset,
                f"declared frame size {size} exceeds the frame budget of "
                f"{self.max_frame_bytes} bytes (raise max_frame_bytes if this is genuine)",
            )
        return size + 4


# --- decoding -----------------------------------------------------------------------------------

_PREVIEW = 24  # characters of a key/value shown in a summary
_SUMMARY_RECORDS = 10  # records per partition listed in a summary


class KafkaCodecError(ValueError):
    """A Kafka frame kio cannot decode or encode (unknown API/version, malformed body)."""


@cache
def request_schema(api_key: int, version: int) -> type[Any]:
    """kio's request class for (api_key, version); KafkaCodecError if kio has none (remembered:
    kio resolves a module path on every lookup, a cost paid per frame)."""
    try:
        return load_request_schema(api_key, version)
    except KioIndexError as err:
        raise KafkaCodecError(f"no kio schema for {api_name(api_key)} v{version} request") from err


@cache
def response_schema(api_key: int, version: int) -> type[Any]:
    """kio's response class for (api_key, version); KafkaCodecError if kio has none
    (remembered, as `request_schema`)."""
    try:
        return load_response_schema(api_key, version)
    except KioIndexError as err:
        raise KafkaCodecError(f"no kio schema for {api_name(api_key)} v{version} response") from err


def _read(cls: type[Any], buf: memoryview, offset: int) -> tuple[Any, int]:
    """kio's reader, returning (entity, next offset) and one error type.

    The bounds walk first: kio's native reader would abort the process on a huge array length.
    """
    try:
        kafka_guard.check(cls, buf, offset)
        entity, size = entity_reader(cls)(buf, offset)
    except Exception as err:  # kio raises SerialError, ValueError, KeyError, ... on bad bytes
        raise KafkaCodecError(f"{cls.__name__}: {type(err).__name__}: {err}") from err
    return entity, offset + size


def _write(cls: type[Any], entity: Any, out: io.BytesIO) -> None:
    try:
        entity_writer(cls)(out, entity)
    except (SerialError, ValueError, TypeError, struct.error) as err:
        raise KafkaCodecError(f"cannot encode {cls.__name__}: {err}") from err


#: bodies up to this many bytes are remembered by their bytes (see `_whole`)
_BODY_MEMO_BYTES = 4096
_BODY_MEMO_MAX = 512
_BODY_MEMO: dict[tuple[type[Any], bytes], Any] = {}


def _whole(cls: type[Any], raw: bytes, offset: int) -> Any:
    """The entity `cls` filling `raw` from `offset` to its end.

    Small bodies repeat (ApiVersions, Metadata, heartbeats, a client's polls): the entity read
    from the same bytes as the same class is the same, and kio's entities are frozen, so a
    remembered one is handed out again without the bounds walk and the read (bounded: cleared
    when full). A body that does not read is never remembered: it raises every time."""
    small = len(raw) - offset <= _BODY_MEMO_BYTES
    if small:
        key = (cls, raw[offset:])
        entity = _BODY_MEMO.get(key)
        if entity is not None:
            return entity
    entity, end = _read(cls, memoryview(raw), offset)
    if end != len(raw):
        raise KafkaCodecError(
            f"{cls.__name__} ends at byte {end} but the frame has {len(raw)} bytes"
        )
    if small:
        if len(_BODY_MEMO) >= _BODY_MEMO_MAX:
            _BODY_MEMO.clear()
        _BODY_MEMO[key] = entity
    return entity


@dataclass(frozen=True, slots=True)
class KafkaRequest:
    """A decoded request: kio header and body entities."""

    header: Any
    body: Any


def decode_request(raw: bytes) -> KafkaRequest:
    """Decode a whole request frame (with size prefix) into kio header + body."""
    api_key, version = _REQ_PREFIX.unpack_from(raw, 4)
    cls = request_schema(api_key, version)
    header, end = _read(cls.__header_schema__, memoryview(raw), 4)
    return KafkaRequest(header, _whole(cls, raw, end))


def request_versions(api_key: int) -> tuple[int, ...]:
    """The request versions kio has a schema for, ascending (empty: an API kio does not know)."""
    name = api_key_map.get(api_key)
    return tuple(sorted(schema_name_map.get(name, {}))) if name is not None else ()


def header_flexible(api_key: int, version: int) -> bool:
    """Whether a request of (api_key, version) has the flexible header (v2: v1 plus tagged
    fields), for versions kio does not know too: a newer one is flexible when kio's newest is
    (Kafka never takes flexibility back), an older one or an unknown API is taken as v1."""
    versions = request_versions(api_key)
    if not versions or version < versions[0]:
        return False
    known = version if version in versions else versions[-1]
    return bool(request_schema(api_key, known).__flexible__)


def read_request_header(raw: bytes, flexible: bool) -> int:
    """Read a request frame's header with kio, whatever its API and version: v1 (api key,
    version, correlation id, client id), then, when `flexible`, v2's tagged fields. Returns the
    offset just past it; KafkaCodecError when it does not read (too short, a client id running
    past the frame or not UTF-8, tagged fields that do not fit)."""
    header_cls = RequestHeaderV2 if flexible else RequestHeaderV1
    return _read(header_cls, memoryview(raw), _SIZE.size)[1]


def decode_response_body(api_key: int, version: int, raw: bytes) -> Any:
    """Decode a whole response frame (with size prefix) as the body of (api_key, version).

    Responses do not name their API: the caller knows it from the paired request.
    """
    cls = response_schema(api_key, version)
    _header, end = _read(cls.__header_schema__, memoryview(raw), 4)
    return _whole(cls, raw, end)


def encode_request(
    api_key: int, version: int, correlation_id: int, client_id: str | None, entity: Any
) -> bytes:
    """Encode a request frame, size prefix included, with the header version the API uses."""
    cls = request_schema(api_key, version)
    _check_entity(cls, entity)
    header_cls = cls.__header_schema__
    header = header_cls(
        request_api_key=i16(api_key),
        request_api_version=i16(version),
        correlation_id=i32(correlation_id),
        client_id=client_id,
    )
    out = io.BytesIO()
    _write(header_cls, header, out)
    _write(cls, entity, out)
    return _SIZE.pack(len(out.getvalue())) + out.getvalue()


def encode_response(api_key: int, version: int, correlation_id: int, entity: Any) -> bytes:
    """Encode a response frame, size prefix included (ApiVersions keeps header v0, as Kafka)."""
    cls = response_schema(api_key, version)
    _check_entity(cls, entity)
    header_cls = cls.__header_schema__
    out = io.BytesIO()
    _write(header_cls, header_cls(correlation_id=i32(correlation_id)), out)
    _write(cls, entity, out)
    return _SIZE.pack(len(out.getvalue())) + out.getvalue()


def _check_entity(cls: type[Any], entity: Any) -> None:
    if type(entity) is not cls:
        raise KafkaCodecError(f"expected a {cls.__module__}.{cls.__name__}, got {type(entity)!r}")


class KafkaDecoder:
    """Decodes one Kafka connection; pairs responses to requests through its `tracker`.

    Summaries: `api_key`, `api`, `version`, `correlation_id`, plus `client_id` and `flexible` on
    requests, `error_code` on responses that have one, compact `records` on Produce requests
    and Fetch responses (every record on demand: `records_of(decoded)`), and the length of each
    credential a frame carries (SaslAuthenticate auth bytes, SCRAM salted passwords, delegation
    token HMACs: `{"len": n}`, as AMQP and MQTT summaries show theirs). A frame kio cannot read
    gets `error` in its summary instead of raising: recording must go on.

    Raw SASL tokens (after a SaslHandshake v0, see `kafka_track`) decode as
    `{"api": "SaslRawToken", "sasl_mechanism", "exchange", "size"}` (no kio decode), and a
    SaslAuthenticate request's summary also names the negotiated `sasl_mechanism` (null: none)
    and the token's `exchange` number: the redactor hides the token by these.

    `tracker` is the connection's one `CorrelationTracker`: pass the same one to whatever else
    must pair responses on this connection (the proxy's address rewriter).
    """

    def __init__(self, tracker: CorrelationTracker | None = None, *, records: bool = True) -> None:
        self.tracker = tracker if tracker is not None else CorrelationTracker()
        #: False: no `records` in summaries, nothing of a record batch read (the fake broker's
        #: world reads every Produce record itself, once, and scans Fetch batches' headers)
        self.records = records

    @property
    def raw_sasl(self) -> bool:
        """Whether the next frames are SASL tokens without a Kafka header (SaslHandshake v0)."""
        return self.tracker.raw_sasl

    @property
    def pending(self) -> dict[int, tuple[int, int]]:
        """Requests still waiting for their response: correlation id -> (api key, version)."""
        return self.tracker.pending

    def decode(self, direction: Direction, raw: bytes) -> Decoded:
        if Direction(direction) is Direction.C2S:
            return self._request(raw)
        return self._response(raw)

    def redecode(self, direction: Direction, raw: bytes, decoded: Decoded) -> Decoded:
        """Decode `raw`, a changed copy (e.g. redacted) of the frame `decoded` came from, as that
        frame was read: same pairing, same raw-token exchange, the connection's state untouched.
        What a fresh decoder replaying the changed stream would make of it."""
        summary = decoded.summary
        if summary.get("api") == SASL_RAW_TOKEN:
            mechanism, exchange = summary["sasl_mechanism"], summary["exchange"]
            return Decoded(raw_token_summary(mechanism, exchange, raw))
        if Direction(direction) is Direction.C2S:
            fresh = read_request(raw)
            for key in _SASL_STATE:  # what the connection's SASL state said of this token
                if key in summary:
                    fresh.summary[key] = summary[key]
            return fresh
        if "api_key" not in summary:  # unpaired: nothing to read it as
            return Decoded(dict(summary))
        pairing = Pairing(
            summary["api_key"], summary["version"], bool(summary.get("unexpected_response"))
        )
        return read_response(raw, pairing)

    def _request(self, raw: bytes) -> Decoded:
        tracker = self.tracker
        if tracker.raw_sasl:
            if tracker.raw_sasl_known_length or not _whole_request(raw):
                return Decoded(tracker.client_token(raw))
            tracker.end_raw_sasl()  # unknown mechanism: a real request again
        decoded = read_request(raw, records=self.records)
        summary = decoded.summary
        if "api_key" not in summary:  # too short for a header
            return decoded
        api_key, version, correlation_id = (
            summary["api_key"],
            summary["version"],
            summary["correlation_id"],
        )
        body = decoded.body
        if body is not None and api_key == SASL_HANDSHAKE:
            tracker.sasl_handshake(correlation_id, str(body.mechanism), version)
        elif body is not None and api_key == SASL_AUTHENTICATE:
            summary["sasl_mechanism"], summary["exchange"] = tracker.sasl_authenticate()
        answered = summary.get("expects_response", True)
        tracker.request(api_key, version, correlation_id, answered=answered)
        return decoded

    def _response(self, raw: bytes) -> Decoded:
        tracker = self.tracker
        if tracker.raw_sasl:
            return Decoded(tracker.server_token(raw))
        if len(raw) < RESPONSE_HEAD_BYTES:
            return Decoded({"error": f"response frame of {len(raw)} bytes is too short"})
        correlation_id = response_correlation_id(raw)
        pairing = tracker.response(correlation_id)
        if pairing is None:
            return Decoded(
                {"correlation_id": correlation_id, "error": "no pending request has this id"}
            )
        decoded = read_response(raw, pairing, records=self.records)
        if pairing.api_key == SASL_HANDSHAKE:
            tracker.sasl_handshake_answered(correlation_id, decoded.summary.get("error_code"))
        return decoded


#: Summary keys a SaslAuthenticate request gets from the connection's SASL state.
_SASL_STATE = ("sasl_mechanism", "exchange")


def read_request(raw: bytes, *, records: bool = True) -> Decoded:
    """A request frame's summary and kio body; no connection state read or changed. `records`
    False: a Produce's record batches are left unread (no `records` in the summary)."""
    if len(raw) < REQUEST_HEAD_BYTES:
        return Decoded({"error": f"request frame of {len(raw)} bytes is too short"})
    api_key, version, correlation_id = request_key(raw)
    summary: dict[str, Any] = {
        "api_key": api_key,
        "api": api_name(api_key),
        "version": version,
        "correlation_id": correlation_id,
    }
    try:
        cls = request_schema(api_key, version)
    except KafkaCodecError as err:
        summary["error"] = str(err)
        return Decoded(summary)
    summary["flexible"] = bool(cls.__flexible__)
    try:
        request = decode_request(raw)
    except KafkaCodecError as err:
        summary["error"] = str(err)
        return Decoded(summary)
    summary["client_id"] = request.header.client_id
    body = request.body
    decoded = Decoded(summary, body=body, extra={"header": request.header})
    if api_key == PRODUCE:
        if body.acks == 0:  # Kafka sends no response
            summary["expects_response"] = False
        if records:
            _attach_records(decoded, _produce_partitions(body))
    elif api_key in _CREDENTIAL_REQUESTS:
        summary.update(_CREDENTIAL_REQUESTS[api_key](body))
    return decoded


def read_response(raw: bytes, pairing: Pairing, *, records: bool = True) -> Decoded:
    """A response frame's summary and kio body, read as the answer to `pairing` (`records`: as
    `read_request`'s, for a Fetch)."""
    api_key, version = pairing.api_key, pairing.version
    summary: dict[str, Any] = {
        "api_key": api_key,
        "api": api_name(api_key),
        "version": version,
        "correlation_id": response_correlation_id(raw),
    }
    if pairing.unexpected:
        summary["unexpected_response"] = True
    try:
        body, answered = decode_response_any(api_key, version, raw)
    except KafkaCodecError as err:
        summary["error"] = str(err)
        return Decoded(summary)
    if answered != version:
        summary["answered_version"] = answered
    error_code = getattr(body, "error_code", None)
    if error_code is not None:
        summary["error_code"] = int(error_code)
    decoded = Decoded(summary, body=body)
    if api_key == FETCH:
        if records:
            _attach_records(decoded, _fetch_partitions(body))
    elif api_key in _CREDENTIAL_RESPONSES:
        summary.update(_CREDENTIAL_RESPONSES[api_key](body))
    return decoded


def decode_response_any(api_key: int, version: int, raw: bytes) -> tuple[Any, int]:
    """(body, version it was read as): the one ApiVersions fallback.

    A broker that does not support the client's ApiVersions version answers in the v0 format
    (UNSUPPORTED_VERSION plus its own ranges) and the client retries; anything else that does
    not read as `version` raises KafkaCodecError.
    """
    try:
        return decode_response_body(api_key, version, raw), version
    except KafkaCodecError as err:
        if api_key != API_VERSIONS or version == 0:
            raise
        try:
            body = decode_response_body(API_VERSIONS, 0, raw)
        except KafkaCodecError as err0:
            raise KafkaCodecError(f"{err}; as v0: {err0}") from err
        if body.error_code != ErrorCode.unsupported_version:
            raise KafkaCodecError(
                f"{err}; as v0: error code {int(body.error_code)}, not UNSUPPORTED_VERSION"
            ) from err
        return body, 0


def _len(value: bytes | None) -> dict[str, int]:
    return {"len": len(value or b"")}


#: Credentials a summary shows by length only (the redactor replaces them; the replayer
#: compares the placeholder's length), by api key.
_CREDENTIAL_REQUESTS = {
    SASL_AUTHENTICATE: lambda body: {"auth_bytes": _len(body.auth_bytes)},
    RENEW_DELEGATION_TOKEN: lambda body: {"hmac": _len(body.hmac)},
    EXPIRE_DELEGATION_TOKEN: lambda body: {"hmac": _len(body.hmac)},
    ALTER_USER_SCRAM_CREDENTIALS: lambda body: {
        "upsertions": [
            {"name": u.name, "salted_password": _len(u.salted_password)}
            for u in body.upsertions or ()
        ]
    },
}
_CREDENTIAL_RESPONSES = {
    CREATE_DELEGATION_TOKEN: lambda body: {"hmac": _len(body.hmac)},
    DESCRIBE_DELEGATION_TOKEN: lambda body: {
        "tokens": [{"token_id": t.token_id, "hmac": _len(t.hmac)} for t in body.tokens or ()]
    },
}


def _whole_request(raw: bytes) -> bool:
    """Whether kio reads `raw` to its last byte as a request of a known API and version."""
    if len(raw) < REQUEST_HEAD_BYTES:
        return False
    try:
        decode_request(raw)
    except KafkaCodecError:
        return False
    return True


def _produce_topic(topic: Any) -> str:
    """Produce v13+ (KIP-516, Kafka 4 clients) names topics by id, as Fetch v13+ does."""
    name = getattr(topic, "name", None)
    return str(topic.topic_id) if name is None else name


def _produce_partitions(body: Any) -> list[tuple[str, int, bytes | None]]:
    return [
        (_produce_topic(topic), int(part.index), part.records)
        for topic in body.topic_data or ()
        for part in topic.partition_data or ()
    ]


def _fetch_partitions(body: Any) -> list[tuple[str, int, bytes | None]]:
    out = []
    for topic in body.responses or ():
        name = getattr(topic, "topic", None)
        if name is None:  # Fetch v13+ names topics by id
            name = str(getattr(topic, "topic_id", ""))
        for part in topic.partitions or ():
            out.append((name, int(part.partition_index), part.records))
    return out


def _attach_records(decoded: Decoded, partitions: list[tuple[str, int, bytes | None]]) -> None:
    """A compact view in summary["records"]; every record later, on demand (`records_of`).

    Counts come from the batch headers, and only the records the summary lists are decoded:
    a Fetch may carry thousands, and the recorder keeps none of them but the first few.
    """
    compact: list[dict[str, Any]] = []
    for topic, partition, data in partitions:
        try:
            compact.append(_partition_summary(topic, partition, data))
        except RecordsError as err:
            compact.append({"topic": topic, "partition": partition, "error": str(err)})
    decoded.summary["records"] = compact
    decoded.extra["records"] = RecordList(partitions)


def _partition_summary(topic: str, partition: int, data: bytes | None) -> dict[str, Any]:
    record_set = scan_record_set(data)
    entry: dict[str, Any] = {"topic": topic, "partition": partition, "count": 0}
    items: list[dict[str, Any]] = []
    count = 0
    for batch in record_set.batches:
        if batch.note:
            entry.setdefault("notes", []).append(batch.note)
        entry.setdefault("base_offsets", []).append(batch.base_offset)
        if batch.is_control:
            entry["control_batches"] = entry.get("control_batches", 0) + 1
            continue
        if batch.magic != 2:
            continue  # a legacy message set: nothing read, nothing counted
        declared = max(batch.record_count, 0)
        body = batch.body
        if body is not None and batch.note is None and batch.compression == "none":
            if declared * MIN_RECORD_BYTES > len(body):  # a count the bytes cannot hold:
                read_records(batch)  # read them all, so the error names the bad record
        count += declared
        if len(items) < _SUMMARY_RECORDS:
            items += map(_glimpse_view, record_glimpses(batch, _SUMMARY_RECORDS - len(items)))
    entry["count"] = count
    if items:
        entry["records"] = items
    if record_set.partial_tail:
        entry["partial_tail"] = True
    return entry


class RecordList(Sequence[dict[str, Any]]):
    """Every record of a Produce request or Fetch response, decoded on first use.

    Each is {"topic", "partition", "offset", "timestamp_ms", "key", "value", "headers"}, in
    frame order; control batches and partitions whose records do not decode are left out.
    """

    def __init__(self, partitions: list[tuple[str, int, bytes | None]]) -> None:
        self._partitions = partitions
        self._records: list[dict[str, Any]] | None = None

    def _all(self) -> list[dict[str, Any]]:
        if self._records is None:
            self._records = _full_records(self._partitions)
        return self._records

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> Any:
        return self._all()[index]

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        state = "not decoded" if self._records is None else f"{len(self._records)} records"
        return f"<RecordList of {len(self._partitions)} partitions, {state}>"


def records_of(decoded: Decoded) -> list[dict[str, Any]]:
    """Every record of a decoded Produce request or Fetch response ([] for other frames)."""
    records = decoded.extra.get("records")
    return list(records) if records is not None else []


def _full_records(partitions: list[tuple[str, int, bytes | None]]) -> list[dict[str, Any]]:
    full: list[dict[str, Any]] = []
    for topic, partition, data in partitions:
        try:
            record_set = read_record_set(data)
        except RecordsError:
            continue  # its summary entry carries the error
        for batch in record_set.batches:
            if batch.is_control:
                continue
            for rec in batch.records:
                full.append(
                    {
                        "topic": topic,
                        "partition": partition,
                        "offset": rec.offset,
                        "timestamp_ms": rec.timestamp_ms,
                        "key": rec.key,
                        "value": rec.value,
                        "headers": list(rec.headers),
                    }
                )
    return full


def _glimpse_view(glimpse: tuple[int, bytes | None, int, list[str]]) -> dict[str, Any]:
    """A record as a summary lists it (from `record_glimpses`)."""
    offset, key, value_len, header_keys = glimpse
    view: dict[str, Any] = {"offset": offset, "key": _preview(key), "value_len": value_len}
    if header_keys:
        view["headers"] = sorted(header_keys)
    return view


def _preview(data: bytes | None) -> str | None:
    """A short, JSON-safe glimpse of a key: text if it is UTF-8, else its length."""
    if data is None:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(data)} bytes>"
    return text if len(text) <= _PREVIEW else text[:_PREVIEW] + "…"
