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
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from rr.codecs import Direction, Proto, decoder_for
from rr.codecs.kafka_apis import (
    API_VERSIONS,
    FETCH,
    METADATA,
    PRODUCE,
    response_correlation_id,
)
from rr.codecs.kafka_records import RecordsError, read_records, scan_record_set
from rr.normalize import kafka as norm

from .recording import Recording

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


@dataclass(slots=True)
class ProduceLog:
    """The records recorded Produce requests wrote to one partition, in offset order."""

    offsets: array = field(default_factory=lambda: array("q"))
    digests: list[bytes] = field(default_factory=list)
    # where each record came from: (conn, request frame position, record number in that frame)
    refs: list[tuple[int, int, int]] = field(default_factory=list)
    log_start_offset: int = -1
    cursor: int = 0

    def sort(self) -> None:
        order = sorted(range(len(self.offsets)), key=self.offsets.__getitem__)
        self.offsets = array("q", (self.offsets[i] for i in order))
        self.digests = [self.digests[i] for i in order]
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


def topic_of(entity: Any, names: dict[str, str]) -> str:
    """A request/response topic entity's name (Produce/Fetch v13+ name topics by id)."""
    for attr in ("name", "topic"):
        value = getattr(entity, attr, None)
        if value:
            return str(value)
    topic_id = getattr(entity, "topic_id", None)
    return names.get(str(topic_id), str(topic_id))


class KafkaWorld:
    def __init__(self, recording: Recording, ignore_fields=(), ignore_headers=()) -> None:
        self.recording = recording
        self.ignore_fields = tuple(ignore_fields)
        self.ignore_headers = tuple(ignore_headers)
        self.exchanges: dict[str, list[Exchange]] = {}
        self.first_key: dict[int, str] = {}  # recorded conn -> key of its first real request
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
        self._frames: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self.notes: list[str] = []
        for rc in recording.conns:
            if rc.proto is Proto.KAFKA:
                self._learn(rc.id, rc.listen_port)
        for log in self.produce.values():
            log.sort()

    # -- building ------------------------------------------------------------------------------

    def _learn(self, conn: int, port: int | None) -> None:
        decoder = decoder_for(Proto.KAFKA)
        pending: dict[int, tuple[int, Any, Any]] = {}  # corr -> (frame position, decoded, t_us)
        for position, frame in enumerate(self.recording.index.frames_of(conn)):
            decoded = decoder.decode(frame.dir, frame.raw)
            summary = decoded.summary
            if frame.dir is Direction.C2S:
                if "correlation_id" not in summary or decoded.body is None:
                    continue  # raw SASL token or an unreadable request: never matched
                pending[summary["correlation_id"]] = (position, decoded, frame.t_us)
                api = summary["api_key"]
                if api == PRODUCE and summary.get("expects_response") is False:
                    self._learn_produce(conn, position, decoded.body, None)
                continue
            if len(frame.raw) < 8:
                continue
            corr = response_correlation_id(frame.raw)
            request = pending.pop(corr, None)
            if request is None or decoded.body is None:
                continue
            req_pos, req, t_us = request
            api, version = req.summary["api_key"], req.summary["version"]
            if api == PRODUCE:
                self._learn_produce(conn, req_pos, req.body, decoded.body)
            elif api == FETCH:
                self._learn_fetch(conn, position, frame.raw, decoded.body)
            else:
                if api == METADATA:
                    self._learn_metadata(version, decoded.body)
                key = norm.request_key(api, version, req.body)
                self.exchanges.setdefault(key, []).append(
                    Exchange(conn, port, req_pos, position, api, version, frame.t_us - t_us)
                )
                if api != API_VERSIONS:
                    self.first_key.setdefault(conn, key)

    def _learn_metadata(self, version: int, body: Any) -> None:
        self.metadata[version] = body
        known = self.metadata_topics.setdefault(version, {})
        for topic in getattr(body, "topics", ()) or ():
            topic_id, name = getattr(topic, "topic_id", None), getattr(topic, "name", None)
            if topic_id is not None and name:
                self.topic_names[str(topic_id)] = str(name)
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
                        int(part.log_start_offset),
                    )
        for topic in request.topic_data or ():
            name = topic_of(topic, self.topic_names)
            for part in topic.partition_data or ():
                tp = (name, int(part.index))
                base, log_start = offsets.get(tp, (-1, -1))
                if response is not None and base < 0:
                    continue  # the broker refused it: nothing was written
                log = self.produce.setdefault(tp, ProduceLog())
                log.log_start_offset = max(log.log_start_offset, log_start)
                for n, rec in enumerate(_records(part.records)):
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
                log.high_watermark = max(log.high_watermark, int(part.high_watermark))
                log.last_stable_offset = max(log.last_stable_offset, int(part.last_stable_offset))
                log.log_start_offset = max(log.log_start_offset, int(part.log_start_offset))
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
        from rr.codecs.kafka import decode_request

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


def _last_delta(data: bytes, pos: int) -> int:
    """A v2 batch's last offset delta (bytes 23..27 of the batch); 0 for legacy sets."""
    if len(data) < pos + 27 or data[pos + 16] != 2:
        return 0
    return int.from_bytes(data[pos + 23 : pos + 27], "big", signed=True)
