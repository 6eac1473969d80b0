"""What a Kafka recording knows, built once per `rrlab serve` run and shared by every live
connection: recorded request/response exchanges by match key (the control plane) and a log per
topic-partition (the data plane).

The data plane is not replayed frame by frame: batch boundaries change every run (linger, batch
size, scheduling). The records of every recorded Produce request, with the offsets the broker gave
them, form a produce log that a live Produce is checked against record by record; the record
batches of every recorded Fetch response, by base offset, form a fetch log that answers a live
Fetch from any offset. Records and batches are kept as digests and file positions, not bytes: a
batch is read back from the cassette when served (streamed, memory flat in the cassette's size).
"""

from __future__ import annotations

import bisect
import itertools
from array import array
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.replay.recording import Recording

from . import normalize as norm
from .apis import (
    API_VERSIONS,
    FETCH,
    METADATA,
    PRODUCE,
    SASL_RAW_TOKEN,
    api_name,
    response_correlation_id,
)
from .codec import KafkaDecoder, decode_response_any
from .compression import DecompressionError
from .fields import (
    UNKNOWN_OFFSET,
    high_watermark,
    last_stable_offset,
    log_start_offset,
    metadata_topics,
    topic_id,
)
from .fields import topic_name as topic_of
from .records import (
    RecordsError,
    face_digests,
    read_records,
    read_records_and_faces,
    scan_record_set,
)

TopicPartition = tuple[str, int]


@dataclass(slots=True)
class Exchange:
    """One recorded request and its response."""

    conn: int
    port: int | None
    request_index: int  # frame position of the request within its connection
    response_index: int
    api_key: int
    version: int
    delay_us: int  # response time after the request, as recorded
    used: bool = False
    #: a request the codec could not decode, kept whole in the cassette: the digest of its match
    #: key (`normalize.opaque_request_key`); None for every other request, and for one
    #: the cassette keeps only the header of (matched by API key and version alone)
    request_digest: bytes | None = None


@dataclass(slots=True)
class ProduceLog:
    """The records recorded Produce requests wrote to one partition, in offset order."""

    offsets: array = field(default_factory=lambda: array("q"))
    digests: list[bytes] = field(default_factory=list)
    #: each record's face digest (`records.face_digests`; None: a batch the walk could not
    #: vouch for), what a live Produce is matched by before its records are read
    faces: list[bytes | None] = field(default_factory=list)
    # where each record came from: (conn, request frame position, record number in that frame)
    refs: list[tuple[int, int, int]] = field(default_factory=list)
    log_start_offset: int = -1
    cursor: int = 0

    def sort(self) -> None:
        order = sorted(range(len(self.offsets)), key=self.offsets.__getitem__)
        self.offsets = array("q", (self.offsets[i] for i in order))
        self.digests = [self.digests[i] for i in order]
        self.faces = [self.faces[i] for i in order]
        self.refs = [self.refs[i] for i in order]


@dataclass(slots=True)
class FetchLog:
    """Record batches recorded Fetch responses held for one partition, by base offset."""

    bases: list[int] = field(default_factory=list)
    lasts: list[int] = field(default_factory=list)
    # where each batch lives: (conn, response frame position, byte start, byte end)
    refs: list[tuple[int, int, int, int]] = field(default_factory=list)
    high_watermark: int = 0
    last_stable_offset: int = -1
    log_start_offset: int = -1

    def add(self, base: int, last: int, ref: tuple[int, int, int, int]) -> None:
        i = bisect.bisect_left(self.bases, base)
        if i < len(self.bases) and self.bases[i] == base:
            return  # fetched again: the same batch
        self.bases.insert(i, base)
        self.lasts.insert(i, last)
        self.refs.insert(i, ref)

    def start_at(self, offset: int) -> int:
        """Index of the first batch holding `offset` or after it (len(bases) when none)."""
        i = bisect.bisect_right(self.bases, offset) - 1
        if i >= 0 and self.lasts[i] >= offset:
            return i
        return i + 1


def record_digest(
    key: bytes | None,
    value: bytes | None,
    headers: tuple[tuple[str, bytes | None], ...],
    ignore_fields: tuple[str, ...] = (),
    ignore_headers: tuple[str, ...] = (),
) -> bytes:
    """What a produced record is compared by (key, value, headers; ignore rules applied)."""
    face = norm.RecordFace(key, value, headers)
    return norm.record_key(face, norm.record_rules(ignore_fields, ignore_headers))


class RecordingError(ValueError):
    """A recorded frame the replay model cannot read: which connection, frame and API, and why,
    in one line (the fake broker does not start)."""


@dataclass(frozen=True, slots=True)
class _Pending:
    """A recorded request waiting for its response while a connection is read."""

    position: int
    decoded: Any  # None: a request the codec could not decode (only its header is known)
    t_us: int
    api_key: int
    version: int
    digest: bytes | None = None  # an undecodable request kept whole: its match key's digest


def _opaque(summary: dict[str, Any]) -> bool:
    """A recorded request whose header was read but not its body (a newer version than kio, an
    unknown API): its summary keeps api key, version and correlation id, with an error. Its
    bytes are in the cassette unless rr.redact failed closed on it (`redacted` in its summary:
    an API that may carry a credential, or a cassette recorded before such requests were kept)."""
    return "error" in summary and all(
        isinstance(summary.get(k), int) for k in ("api_key", "version", "correlation_id")
    )


def _where(conn: int, position: int, frame: Any, pending: dict[int, _Pending], err: Exception):
    """`kafka conn 3 frame 12 (Fetch v4 response): AttributeError: ...` for a frame that broke."""
    what = "request"
    api, version = frame.summary.get("api"), frame.summary.get("version")
    if frame.dir is Direction.S2C and len(frame.raw) >= 8:
        what = "response"
        request = pending.get(response_correlation_id(frame.raw))
        if request is not None:
            api, version = api_name(request.api_key), request.version
    named = f"{api} v{version} {what}" if api is not None else what
    return f"kafka conn {conn} frame {position} ({named}): {type(err).__name__}: {err}"


class KafkaWorld:
    def __init__(self, recording: Recording, ignore_fields=(), ignore_headers=()) -> None:
        self.recording = recording
        self.ignore_fields = tuple(ignore_fields)
        self.ignore_headers = tuple(ignore_headers)
        self.exchanges: dict[str, list[Exchange]] = {}
        self.first_key: dict[int, str] = {}  # recorded conn -> key of its first real request
        self.client_ids: dict[int, str | None] = {}  # recorded conn -> its header client id
        self.produce: dict[TopicPartition, ProduceLog] = {}
        # records each recorded Produce request holds, and how many a live Produce matched: the
        # request counts as used only once all of its records were produced again
        self.produce_records: dict[tuple[int, int], int] = {}
        self.produce_matched: dict[tuple[int, int], int] = {}
        self.fetch: dict[TopicPartition, FetchLog] = {}
        self.topic_names: dict[str, str] = {}  # topic id -> name
        # Metadata by version: the latest recorded response, and each topic's latest entry
        # (one without an error preferred), to answer metadata requests never recorded
        self.metadata: dict[int, Any] = {}
        self.metadata_topics: dict[int, dict[str, Any]] = {}
        # exchanges whose request the codec could not decode (a version newer than kio, an
        # unknown API), by (api key, version): answered with the recorded response when the live
        # request has the same bytes, ids masked (or, kept as a header only, the same header)
        self.opaque: dict[tuple[int, int], list[Exchange]] = {}
        # (api key, version) of undecodable requests matched by their header only (noted once)
        self.header_only_noted: set[tuple[int, int]] = set()
        # api key -> (min, max) the recorded broker's ApiVersions answer offered (the latest)
        self.api_ranges: dict[int, tuple[int, int]] = {}
        self._frames: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self.notes: list[str] = []
        for rc in recording.conns:
            if rc.proto is Proto.KAFKA:
                self._learn(rc.id, rc.listen_port)
        for log in self.produce.values():
            log.sort()

    # -- building ------------------------------------------------------------------------------

    def _learn(self, conn: int, port: int | None) -> None:
        decoder = KafkaDecoder(records=False)  # records: read once, by `_learn_produce`
        pending: dict[int, _Pending] = {}
        for position, frame in enumerate(self.recording.index.frames_of(conn)):
            try:
                self._learn_frame(decoder, pending, conn, port, position, frame)
            except Exception as err:  # one line naming where: `rrlab serve` cannot start
                raise RecordingError(_where(conn, position, frame, pending, err)) from err

    def _learn_frame(self, decoder, pending, conn: int, port: int | None, position: int, frame):
        decoded = decoder.decode(frame.dir, frame.raw)
        summary = decoded.summary
        if frame.dir is Direction.C2S:
            recorded = frame.summary
            if decoded.body is None and _opaque(recorded):
                # a request the codec could not read: kept whole, its answer is served to the
                # same bytes (ids masked); kept as a header only (rr.redact failed closed), to
                # the same API key and version
                digest = None if recorded.get("redacted") else norm.opaque_request_digest(frame.raw)
                pending[recorded["correlation_id"]] = _Pending(
                    position, None, frame.t_us, recorded["api_key"], recorded["version"], digest
                )
                return
            if "correlation_id" not in summary or decoded.body is None:
                return  # raw SASL token or an unreadable request: never matched
            api, version = summary["api_key"], summary["version"]
            self.client_ids.setdefault(conn, summary.get("client_id"))
            pending[summary["correlation_id"]] = _Pending(
                position, decoded, frame.t_us, api, version
            )
            if api == PRODUCE and summary.get("expects_response") is False:
                self._learn_produce(conn, position, decoded.body, None)
            return
        if len(frame.raw) < 8:
            return
        corr = response_correlation_id(frame.raw)
        request = pending.get(corr)
        if request is None:
            return
        self._learn_exchange(conn, port, position, frame, decoded, request)
        del pending[corr]  # (kept while it is read: `_where` names its API if that fails)

    def _learn_exchange(self, conn, port, position: int, frame, decoded, request: _Pending):
        api, version = request.api_key, request.version
        exchange = Exchange(
            conn,
            port,
            request.position,
            position,
            api,
            version,
            frame.t_us - request.t_us,
            request_digest=request.digest,
        )
        if request.decoded is None:
            self.opaque.setdefault((api, version), []).append(exchange)
            if api == API_VERSIONS:
                self._learn_api_versions(decode_response_any(api, version, frame.raw)[0])
            return
        if decoded.body is None:
            return
        body = request.decoded.body
        if api == PRODUCE:
            self._learn_produce(conn, request.position, body, decoded.body)
        elif api == FETCH:
            self._learn_fetch(conn, position, frame.raw, decoded.body)
        else:
            if api == METADATA:
                self._learn_metadata(version, decoded.body)
            elif api == API_VERSIONS:
                self._learn_api_versions(decoded.body)
            key = norm.request_key(api, version, body)
            self.exchanges.setdefault(key, []).append(exchange)
            if api != API_VERSIONS:
                self.first_key.setdefault(conn, key)

    def _learn_api_versions(self, body: Any) -> None:
        """The version ranges the recorded broker offered (capped by the proxy), latest kept."""
        ranges = {
            int(e.api_key): (int(e.min_version), int(e.max_version))
            for e in getattr(body, "api_keys", None) or ()
        }
        if ranges:
            self.api_ranges = ranges

    def _learn_metadata(self, version: int, body: Any) -> None:
        self.metadata[version] = body
        known = self.metadata_topics.setdefault(version, {})
        for topic in metadata_topics(body):
            ident, name = topic_id(topic), getattr(topic, "name", None)
            if ident is not None and name:
                self.topic_names[ident] = str(name)
            if not name:
                continue
            previous = known.get(str(name))
            if previous is None or int(topic.error_code) == 0 or int(previous.error_code) != 0:
                known[str(name)] = topic

    def _learn_produce(self, conn: int, position: int, request: Any, response: Any) -> None:
        offsets: dict[TopicPartition, tuple[int, int]] = {}
        if response is not None:
            for topic in response.responses or ():
                name = topic_of(topic, self.topic_names)
                for part in topic.partition_responses or ():
                    offsets[(name, int(part.index))] = (
                        int(part.base_offset),
                        log_start_offset(part),
                    )
        for topic in request.topic_data or ():
            name = topic_of(topic, self.topic_names)
            for part in topic.partition_data or ():
                tp = (name, int(part.index))
                base, log_start = offsets.get(tp, (-1, UNKNOWN_OFFSET))
                if response is not None and base < 0:
                    continue  # the broker refused it: nothing was written
                try:
                    records, faces = _records_and_faces(part.records)
                except RecordsError as err:
                    if not isinstance(err.__cause__, DecompressionError):
                        raise  # a corrupt batch: serve names it and does not start
                    # a batch the proxy recorded but would not unpack (a bomb over the budget):
                    # noted; a live Produce of it misses, as nothing is in the log to match
                    self.notes.append(f"conn {conn} frame {position}: {err}")
                    continue
                if faces is None or len(faces) != len(records):
                    faces = [None] * len(records)
                log = self.produce.setdefault(tp, ProduceLog())
                log.log_start_offset = max(log.log_start_offset, log_start)
                log.faces.extend(faces)
                for n, rec in enumerate(records):
                    log.offsets.append(base + n if base >= 0 else -1)
                    log.digests.append(self.digest(rec.key, rec.value, rec.headers))
                    log.refs.append((conn, position, n))
                    self.produce_records[(conn, position)] = (
                        self.produce_records.get((conn, position), 0) + 1
                    )

    def _learn_fetch(self, conn: int, position: int, raw: bytes, body: Any) -> None:
        for topic in body.responses or ():
            name = topic_of(topic, self.topic_names)
            for part in topic.partitions or ():
                tp = (name, int(part.partition_index))
                log = self.fetch.setdefault(tp, FetchLog())
                log.high_watermark = max(log.high_watermark, high_watermark(part))
                log.last_stable_offset = max(log.last_stable_offset, last_stable_offset(part))
                log.log_start_offset = max(log.log_start_offset, log_start_offset(part))
                data = part.records
                if not data:
                    continue
                start = raw.find(data)  # the records' place in the frame (read back on serve)
                try:
                    batches = scan_record_set(data).batches
                except RecordsError as err:
                    self.notes.append(f"conn {conn} frame {position}: {err}")
                    continue
                pos = 0
                for batch in batches:
                    length = 12 + int.from_bytes(data[pos + 8 : pos + 12], "big")
                    last = batch.base_offset + _last_delta(data, pos)
                    log.add(
                        batch.base_offset, last, (conn, position, start + pos, start + pos + length)
                    )
                    pos += length

    def raw_sasl_tokens(self, handshake: Exchange) -> deque[tuple[int, int, list[int]]] | None:
        """The raw SASL tokens recorded after a SaslHandshake v0 exchange, if its answer had no
        error: (conn, client token frame, the server token frames after it) in order."""
        frames = itertools.islice(
            self.recording.conn(handshake.conn).stream(), handshake.response_index, None
        )  # streamed: the connection goes on with all the traffic after authentication
        answer = next(frames).summary
        if answer.get("error_code", 0) != 0:
            return None
        tokens: deque[tuple[int, int, list[int]]] = deque()
        for frame in frames:
            if frame.summary.get("api") != SASL_RAW_TOKEN:
                break
            if frame.dir is Direction.C2S:
                tokens.append((handshake.conn, frame.index, []))
            elif tokens:
                tokens[-1][2].append(frame.index)
        return tokens or None

    def produced_again(self, ref: tuple[int, int, int]) -> bool:
        """Count one recorded record as produced live; True once its whole request is."""
        frame = (ref[0], ref[1])
        done = self.produce_matched.get(frame, 0) + 1
        self.produce_matched[frame] = done
        return done == self.produce_records.get(frame, 0)

    def digest(self, key, value, headers) -> bytes:
        return record_digest(key, value, tuple(headers), self.ignore_fields, self.ignore_headers)

    # -- serving -------------------------------------------------------------------------------

    def frame_raw(self, conn: int, position: int) -> bytes:
        """A recorded frame's bytes, read from the cassette (a few kept: fetches repeat)."""
        key = (conn, position)
        raw = self._frames.get(key)
        if raw is None:
            raw = self.recording.index.read(conn, position).raw
            self._frames[key] = raw
            if len(self._frames) > 8:
                self._frames.popitem(last=False)
        else:
            self._frames.move_to_end(key)
        return raw

    def batch_bytes(self, ref: tuple[int, int, int, int]) -> bytes:
        conn, position, start, end = ref
        return self.frame_raw(conn, position)[start:end]

    def recorded_records(self, conn: int, position: int) -> dict[tuple[TopicPartition, int], Any]:
        """The records of a recorded Produce request, by (topic-partition, record number)."""
        from .codec import decode_request

        request = decode_request(self.frame_raw(conn, position))
        out = {}
        for topic in request.body.topic_data or ():
            name = topic_of(topic, self.topic_names)
            for part in topic.partition_data or ():
                for n, rec in enumerate(_records(part.records)):
                    out[((name, int(part.index)), n)] = rec
        return out


def _records(data: bytes | None) -> list[Any]:
    """Data records of a Produce partition (control batches left out)."""
    if not data:
        return []
    out: list[Any] = []
    for batch in scan_record_set(data).batches:
        if not batch.is_control:
            out += read_records(batch)
    return out


def _records_and_faces(data: bytes | None) -> tuple[list[Any], list[bytes | None] | None]:
    """`_records(data)` and `produced_faces(data)` in one walk of each batch (a compressed one
    decompressed once): what the world learns of a recorded Produce partition at open."""
    if not data:
        return [], []
    records: list[Any] = []
    faces: list[bytes | None] | None = []
    for batch in scan_record_set(data).batches:
        if batch.is_control:
            continue
        got, walked = read_records_and_faces(batch)
        records += got
        if walked is None:
            faces = None  # one batch the walk cannot vouch for: none of the partition's
        elif faces is not None:
            faces.extend(walked)
    return records, faces


def produced_faces(data: bytes | None) -> list[bytes | None] | None:
    """The face digests of a Produce partition's data records (control batches left out, as
    `_records` does); None when a batch cannot be walked."""
    if not data:
        return []
    out: list[bytes | None] = []
    for batch in scan_record_set(data).batches:
        if batch.is_control:
            continue
        faces = face_digests(batch)
        if faces is None:
            return None
        out += faces
    return out


def _last_delta(data: bytes, pos: int) -> int:
    """A v2 batch's last offset delta (bytes 23..27 of the batch); 0 for legacy sets."""
    if len(data) < pos + 27 or data[pos + 16] != 2:
        return 0
    return int.from_bytes(data[pos + 23 : pos + 27], "big", signed=True)
