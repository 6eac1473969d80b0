"""Kafka wire codec: int32 size-prefixed framing, kio-based decoding, re-encoding helpers."""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, overload

from kio.index import KioIndexError, load_request_schema, load_response_schema
from kio.schema.index import api_key_map
from kio.serial import entity_reader, entity_writer
from kio.serial.errors import SerialError
from kio.static.primitive import i16, i32

from . import kafka_guard
from ._framing import BufferedFramer
from .base import Decoded, Direction, Proto
from .kafka_records import (
    MIN_RECORD_BYTES,
    Record,
    RecordsError,
    read_record_set,
    read_records,
    scan_record_set,
)

_SIZE = struct.Struct(">i")


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

#: Kafka's own API names (ApiVersions, SaslAuthenticate, ...), from kio's key -> module map.
API_NAMES = {key: name.title().replace("_", "") for key, name in api_key_map.items()}
_PREVIEW = 24  # characters of a key/value shown in a summary
_SUMMARY_RECORDS = 10  # records per partition listed in a summary


class KafkaCodecError(ValueError):
    """A Kafka frame kio cannot decode or encode (unknown API/version, malformed body)."""


def api_name(api_key: int) -> str:
    return API_NAMES.get(api_key, f"Unknown{api_key}")


def request_schema(api_key: int, version: int) -> type[Any]:
    """kio's request class for (api_key, version); KafkaCodecError if kio has none."""
    try:
        return load_request_schema(api_key, version)
    except KioIndexError as err:
        raise KafkaCodecError(f"no kio schema for {api_name(api_key)} v{version} request") from err


def response_schema(api_key: int, version: int) -> type[Any]:
    """kio's response class for (api_key, version); KafkaCodecError if kio has none."""
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


def _whole(cls: type[Any], raw: bytes, offset: int) -> Any:
    entity, end = _read(cls, memoryview(raw), offset)
    if end != len(raw):
        raise KafkaCodecError(
            f"{cls.__name__} ends at byte {end} but the frame has {len(raw)} bytes"
        )
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
    """Decodes one Kafka connection; pairs responses to requests by correlation id.

    Summaries: `api_key`, `api`, `version`, `correlation_id`, plus `client_id` and `flexible` on
    requests, `error_code` on responses that have one, compact `records` on Produce requests
    and Fetch responses (every record on demand: `records_of(decoded)`). A frame kio cannot read
    gets `error` in its summary instead of raising: recording must go on.

    Raw SASL (KIP-43): after a SaslHandshake v0 answered with error code 0 the SASL tokens
    travel with no Kafka header, as bare size-prefixed frames, both ways. Such frames decode as
    `{"api": "SaslRawToken", "sasl_mechanism", "exchange", "size"}` (no kio decode). The mode
    ends after a known number of server tokens: PLAIN and OAUTHBEARER 1, SCRAM-SHA-256/512 2
    (client-first/server-first, client-final/server-final); on failure the broker closes the
    connection. For any other mechanism (GSSAPI is not handled) it ends at the first client
    frame that kio reads whole, to its last byte, as a request of a known API and version.
    """

    def __init__(self) -> None:
        self._pending: dict[int, tuple[int, int]] = {}  # correlation id -> (api key, version)
        # acks=0 Produce requests: Kafka sends no response, but some brokers (Tansu) do; such a
        # late answer is still decoded, flagged "unexpected_response". Bounded: oldest dropped.
        self._unanswered: dict[int, tuple[int, int]] = {}
        self._handshakes: dict[int, str] = {}  # SaslHandshake v0 correlation id -> mechanism
        self._raw_sasl: _RawSasl | None = None  # set while tokens travel without a header

    @property
    def raw_sasl(self) -> bool:
        """Whether the next frames are SASL tokens without a Kafka header (SaslHandshake v0)."""
        return self._raw_sasl is not None

    @property
    def pending(self) -> dict[int, tuple[int, int]]:
        """Requests still waiting for their response: correlation id -> (api key, version)."""
        return dict(self._pending)

    def decode(self, direction: Direction, raw: bytes) -> Decoded:
        if Direction(direction) is Direction.C2S:
            return self._request(raw)
        return self._response(raw)

    def _request(self, raw: bytes) -> Decoded:
        sasl = self._raw_sasl
        if sasl is not None:
            if sasl.exchanges is not None or not _whole_request(raw):
                sasl.client_tokens += 1
                return Decoded(sasl.summary(sasl.client_tokens, raw))
            self._raw_sasl = None  # unknown mechanism: a real request again
        if len(raw) < 12:
            return Decoded({"error": f"request frame of {len(raw)} bytes is too short"})
        api_key, version, correlation_id = _REQ_PREFIX_CID.unpack_from(raw, 4)
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
            self._pending[correlation_id] = (api_key, version)
            return Decoded(summary)
        summary["flexible"] = bool(cls.__flexible__)
        try:
            request = decode_request(raw)
        except KafkaCodecError as err:
            summary["error"] = str(err)
            self._pending[correlation_id] = (api_key, version)
            return Decoded(summary)
        summary["client_id"] = request.header.client_id
        decoded = Decoded(summary, body=request.body, extra={"header": request.header})
        if api_key == SASL_HANDSHAKE and version == 0:
            self._handshakes[correlation_id] = str(request.body.mechanism)
            if len(self._handshakes) > _MAX_HANDSHAKES:
                del self._handshakes[next(iter(self._handshakes))]
        expects_response = not (api_key == PRODUCE and request.body.acks == 0)
        if expects_response:
            self._pending[correlation_id] = (api_key, version)
        else:
            summary["expects_response"] = False
            self._unanswered[correlation_id] = (api_key, version)
            if len(self._unanswered) > _MAX_UNANSWERED:
                del self._unanswered[next(iter(self._unanswered))]
        if api_key == PRODUCE:
            _attach_records(decoded, _produce_partitions(request.body))
        return decoded

    def _response(self, raw: bytes) -> Decoded:
        sasl = self._raw_sasl
        if sasl is not None:
            sasl.server_tokens += 1
            if sasl.exchanges is not None and sasl.server_tokens >= sasl.exchanges:
                self._raw_sasl = None
            return Decoded(sasl.summary(sasl.server_tokens, raw))
        if len(raw) < 8:
            return Decoded({"error": f"response frame of {len(raw)} bytes is too short"})
        (correlation_id,) = _SIZE.unpack_from(raw, 4)
        paired = self._pending.pop(correlation_id, None)
        unexpected = paired is None and correlation_id in self._unanswered
        if unexpected:
            paired = self._unanswered.pop(correlation_id)
        if paired is None:
            return Decoded(
                {"correlation_id": correlation_id, "error": "no pending request has this id"}
            )
        api_key, version = paired
        summary: dict[str, Any] = {
            "api_key": api_key,
            "api": api_name(api_key),
            "version": version,
            "correlation_id": correlation_id,
        }
        if unexpected:
            summary["unexpected_response"] = True
        try:
            body = decode_response_body(api_key, version, raw)
        except KafkaCodecError as err:
            body = self._api_versions_fallback(api_key, version, raw)
            if body is None:
                summary["error"] = str(err)
                return Decoded(summary)
            summary["answered_version"] = 0
        error_code = getattr(body, "error_code", None)
        if error_code is not None:
            summary["error_code"] = int(error_code)
        if api_key == SASL_HANDSHAKE and version == 0:
            mechanism = self._handshakes.pop(correlation_id, None)
            if mechanism is not None and error_code is not None and int(error_code) == 0:
                self._raw_sasl = _RawSasl(mechanism, _RAW_SASL_EXCHANGES.get(mechanism))
        decoded = Decoded(summary, body=body)
        if api_key == FETCH:
            _attach_records(decoded, _fetch_partitions(body))
        return decoded

    @staticmethod
    def _api_versions_fallback(api_key: int, version: int, raw: bytes) -> Any:
        """A broker refusing an ApiVersions version answers in v0 (UNSUPPORTED_VERSION)."""
        if api_key != API_VERSIONS or version == 0:
            return None
        try:
            return decode_response_body(API_VERSIONS, 0, raw)
        except KafkaCodecError:
            return None


PRODUCE, FETCH, SASL_HANDSHAKE, API_VERSIONS = 0, 1, 17, 18
_MAX_UNANSWERED = 1024
_MAX_HANDSHAKES = 8
_REQ_PREFIX = struct.Struct(">hh")
_REQ_PREFIX_CID = struct.Struct(">hhi")

#: Server tokens that end a SaslHandshake v0 raw-token session, by mechanism (None: unknown).
_RAW_SASL_EXCHANGES = {"PLAIN": 1, "OAUTHBEARER": 1, "SCRAM-SHA-256": 2, "SCRAM-SHA-512": 2}
#: The `api` of a SASL token sent without a Kafka header (either direction).
SASL_RAW_TOKEN = "SaslRawToken"


@dataclass(slots=True)
class _RawSasl:
    """One connection's SaslHandshake v0 token exchange, while it lasts."""

    mechanism: str
    exchanges: int | None
    client_tokens: int = 0
    server_tokens: int = 0

    def summary(self, exchange: int, raw: bytes) -> dict[str, Any]:
        """Only the size: the token's bytes are a credential (client) or the server's nonce."""
        return {
            "api": SASL_RAW_TOKEN,
            "sasl_mechanism": self.mechanism,
            "exchange": exchange,
            "size": len(raw) - 4,
        }


def _whole_request(raw: bytes) -> bool:
    """Whether kio reads `raw` to its last byte as a request of a known API and version."""
    if len(raw) < 12:
        return False
    try:
        decode_request(raw)
    except KafkaCodecError:
        return False
    return True


def _produce_partitions(body: Any) -> list[tuple[str, int, bytes | None]]:
    return [
        (topic.name, int(part.index), part.records)
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
            items += map(_record_view, read_records(batch, _SUMMARY_RECORDS - len(items)))
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


def _record_view(rec: Record) -> dict[str, Any]:
    view: dict[str, Any] = {
        "offset": rec.offset,
        "key": _preview(rec.key),
        "value_len": -1 if rec.value is None else len(rec.value),
    }
    if rec.headers:
        view["headers"] = sorted(k for k, _v in rec.headers)
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
